"""peer_node.directory against a stub HTTP server: decoding, problem+json, 401, fail-over."""
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from peer_node.directory import DirectoryClient, pages_of, retry_policy
from peer_node.errors import DirectoryError, DirectoryUnavailable, NotFound, Unauthorized


class Stub(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as a production server would
    seen = []

    def log_message(self, *args):
        pass

    def _answer(self, status, body=None, ctype="application/json"):
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        if body is not None:
            self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _route(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        Stub.seen.append((self.command, self.path, self.headers.get("Authorization"), body))
        if self.path == "/api/v1/login":
            if body["secret"] != "good":
                return self._answer(401, {"type": "about:blank", "title": "Unauthorized", "status": 401,
                                          "detail": "wrong secret"}, "application/problem+json")
            return self._answer(200, {"token": "t0k", "peer_id": body["peer_id"], "lease_s": 2,
                                      "registered": True})
        if self.path == "/api/v1/heartbeat":
            if self.headers.get("Authorization") != "Bearer t0k":
                return self._answer(401, {"title": "Unauthorized", "status": 401, "detail": "unknown token"},
                                    "application/problem+json")
            return self._answer(200, {"lease_s": 2, "replicate": []})
        if self.path.startswith("/api/v1/files?"):
            if "cursor=2" in self.path:
                return self._answer(200, {"results": [{"name": "b"}], "next_cursor": None})
            return self._answer(200, {"results": [{"name": "a"}], "next_cursor": "2"})
        if self.path.startswith("/api/v1/files/"):
            return self._answer(404, {"title": "Not Found", "status": 404, "detail": "no such file"},
                                "application/problem+json")
        if self.path == "/api/v1/logout":
            return self._answer(204)
        return self._answer(500, {"title": "boom", "status": 500})

    do_GET = do_POST = do_PUT = do_DELETE = _route


@pytest.fixture
def stub_url():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Stub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    Stub.seen = []
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_login_heartbeat_logout_with_bearer_token(stub_url):
    c = DirectoryClient(stub_url)
    assert c.login("p", "good", "127.0.0.1:1", files=[])["lease_s"] == 2
    assert c.heartbeat(free_bytes=10, accept_uploads=True) == {"lease_s": 2, "replicate": []}
    assert Stub.seen[-1][2] == "Bearer t0k" and Stub.seen[-1][3] == {"free_bytes": 10, "accept_uploads": True}
    c.logout()
    assert c.token is None


def test_problem_json_becomes_our_errors(stub_url):
    c = DirectoryClient(stub_url)
    with pytest.raises(Unauthorized, match="wrong secret"):
        c.login("p", "bad", "a:1")
    c.token = "stale"
    with pytest.raises(Unauthorized) as err:
        c.heartbeat()
    assert err.value.status == 401
    with pytest.raises(NotFound):
        c.file("0" * 64)
    with pytest.raises(DirectoryError) as err:
        c.peers()
    assert err.value.status == 500


def test_search_follows_cursor(stub_url):
    assert [r["name"] for r in DirectoryClient(stub_url).search("x")] == ["a", "b"]


def test_fail_over_to_the_next_url(stub_url):
    c = DirectoryClient(["http://127.0.0.1:9", stub_url])
    assert [r["name"] for r in c.search("x")] == ["a", "b"]
    assert c.url == stub_url


def test_all_down():
    with pytest.raises(DirectoryUnavailable, match="127.0.0.1:9"):
        DirectoryClient("http://127.0.0.1:9,http://127.0.0.1:9".split(",")).peers()


class Flaky(BaseHTTPRequestHandler):
    """Answers 503 (as a gateway or a directory whose store is busy would) `failures` times, then 200."""

    protocol_version = "HTTP/1.1"
    failures = 0
    hits = 0

    def log_message(self, *args):
        pass

    def _route(self):
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        Flaky.hits += 1
        ok = Flaky.hits > Flaky.failures
        data = json.dumps({"results": [{"name": "flaky"}], "next_cursor": None} if ok else
                          {"title": "Service Unavailable", "status": 503, "detail": "busy"}).encode()
        self.send_response(200 if ok else 503)
        self.send_header("Content-Type", "application/json" if ok else "application/problem+json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = _route


@pytest.fixture
def flaky_url():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Flaky)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    Flaky.hits = 0
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_503_is_retried_with_back_off_on_the_same_url(flaky_url):
    Flaky.failures = 2
    c = DirectoryClient([flaky_url], retry=retry_policy(retries=2, backoff=0.01, jitter=0.01))
    assert [r["name"] for r in c.search("x")] == ["flaky"]
    assert Flaky.hits == 3


def test_a_url_that_keeps_answering_503_fails_over_to_the_next(flaky_url, stub_url):
    Flaky.failures = 10**9
    c = DirectoryClient([flaky_url, stub_url], retry=retry_policy(retries=1, backoff=0.01, jitter=0.01))
    assert [r["name"] for r in c.search("x")] == ["a", "b"]
    assert c.url == stub_url and Flaky.hits == 2  # tried, retried once, then the next URL


def test_every_url_answering_503_is_unavailable(flaky_url):
    Flaky.failures = 10**9
    c = DirectoryClient([flaky_url], retry=retry_policy(retries=1, backoff=0.01, jitter=0.01))
    with pytest.raises(DirectoryUnavailable):
        c.peers()


def test_the_back_off_is_jittered():
    from urllib3.exceptions import ConnectTimeoutError

    policy = retry_policy(retries=3, backoff=0.2, jitter=0.5)
    waits = {policy.increment("GET", "/x", error=ConnectTimeoutError()).increment(
        "GET", "/x", error=ConnectTimeoutError()).get_backoff_time() for _ in range(20)}
    assert len(waits) > 1 and all(0.4 <= w <= 0.9 for w in waits)


@pytest.mark.parametrize("n, max_entries, pages", [(0, 5, [0]), (5, 5, [5]), (12, 5, [5, 5, 2])])
def test_pages_of_splits_by_entries(n, max_entries, pages):
    files = [{"name": f"f{i}", "size": 1, "sha256": "a" * 64} for i in range(n)]
    assert [len(p) for p in pages_of(files, max_entries)] == pages


def test_pages_of_splits_by_bytes():
    files = [{"name": "x" * 100, "size": 1, "sha256": "a" * 64, "pieces": ["b" * 64] * 100} for _ in range(10)]
    split = list(pages_of(files, 1000, max_bytes=20_000))
    assert [len(p) for p in split] == [2, 2, 2, 2, 2]
    assert all(len(json.dumps({"files": p})) < 20_000 for p in split)
