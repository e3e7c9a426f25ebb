"""DirectoryClient's claim reports (corrupt, verified, audit results) against a stub HTTP server."""
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from peer_node.directory import DirectoryClient
from peer_node.errors import DirectoryError, Unauthorized

SHA = "ab" * 32


class Stub(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen = []
    status = 204

    def log_message(self, *args):
        pass

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        Stub.seen.append((self.path, self.headers.get("Authorization"), body))
        status = Stub.status
        data = b"" if status in (202, 204) else json.dumps(
            {"type": "about:blank", "title": "Conflict", "status": status, "detail": "answered already"}).encode()
        self.send_response(status)
        if data:
            self.send_header("Content-Type", "application/problem+json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def client():
    Stub.seen, Stub.status = [], 204
    server = ThreadingHTTPServer(("127.0.0.1", 0), Stub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    c = DirectoryClient(f"http://127.0.0.1:{server.server_address[1]}", retry=0)
    c.token = "t0k"
    yield c
    c.close()
    server.shutdown()
    server.server_close()


def test_report_corrupt_and_verified_post_to_the_holders_entry(client):
    Stub.status = 202
    client.report_corrupt("bad-peer", SHA)
    Stub.status = 204
    client.report_verified("good.peer", SHA)
    assert Stub.seen == [(f"/api/v1/peers/bad-peer/files/{SHA}/corrupt", "Bearer t0k", {}),
                         (f"/api/v1/peers/good.peer/files/{SHA}/verified", "Bearer t0k", {})]


@pytest.mark.parametrize("audit_id, ok, detail, body", [
    (12, True, "", {"ok": True}),
    ("9f3a", False, "bytes differ", {"ok": False, "detail": "bytes differ"}),
])
def test_audit_result_posts_ok_and_detail(client, audit_id, ok, detail, body):
    client.audit_result(audit_id, ok, detail)
    assert Stub.seen == [(f"/api/v1/audits/{audit_id}", "Bearer t0k", body)]


def test_a_refused_report_is_a_directory_error_with_its_status(client):
    Stub.status = 409
    with pytest.raises(DirectoryError) as err:
        client.audit_result(1, True)
    assert err.value.status == 409 and "answered already" in str(err.value)


def test_reports_need_a_session(client):
    client.token = None
    with pytest.raises(Unauthorized):
        client.report_corrupt("p", SHA)
    assert Stub.seen == []
