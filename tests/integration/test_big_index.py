"""Big folders (issue 13): an index of any size goes up in pages, and the peer client fails over on 503."""
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from peer_node.directory import DirectoryClient, retry_policy
from tests.fixtures.directory import entry
from tests.integration.helpers import wait_until

pytestmark = pytest.mark.integration

N_FILES = 100_000


class Unavailable(BaseHTTPRequestHandler):
    """A directory URL whose every answer is 503, as behind a gateway whose backend is down."""

    protocol_version = "HTTP/1.1"
    hits = 0

    def log_message(self, *args):
        pass

    def _route(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        Unavailable.hits += 1
        body = b'{"type": "about:blank", "title": "Service Unavailable", "status": 503, "detail": "down"}'
        self.send_response(503)
        self.send_header("Content-Type", "application/problem+json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = _route


@pytest.fixture
def unavailable_url():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Unavailable)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    Unavailable.hits = 0
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_the_client_fails_over_from_a_503_url_and_publishes_in_pages(unavailable_url, directory_factory):
    directory_proc = directory_factory(lease=60)  # no heartbeat is sent here
    client = DirectoryClient([unavailable_url, directory_proc.url],
                             retry=retry_policy(retries=1, backoff=0.01, jitter=0.01))
    client.login("big", "big-secret", "127.0.0.1:7001")
    assert client.url == directory_proc.url and Unavailable.hits == 2
    files = [entry(f"dir{i % 50}/file-{i:05}.bin", n=i) for i in range(12_001)]
    assert client.publish_index("big", files, max_entries=5000) == 12_001
    [peer] = client.peers()
    assert peer["files"] == 12_001
    assert [r["name"] for r in client.search("file-12000")] == ["dir0/file-12000.bin"]


def test_search_never_shows_a_half_published_index(directory_proc):
    client = DirectoryClient(directory_proc.url)
    client.login("p", "p-secret", "127.0.0.1:7002", files=[entry("old.txt", n="old")])
    url = f"{directory_proc.url}/api/v1/peers/p/files"
    auth = {"Authorization": f"Bearer {client.token}"}
    page = requests.put(url, params={"generation": "g", "page": 0}, json={"files": [entry("new.txt", n="new")]},
                        headers=auth, timeout=5)
    assert page.json() == {"indexed": 1, "staged": 1, "committed": False}
    assert [r["name"] for r in client.search("txt")] == ["old.txt"]
    requests.put(url, params={"generation": "g", "page": 1, "last": "true"}, json={"files": []}, headers=auth,
                 timeout=5).raise_for_status()
    assert [r["name"] for r in client.search("txt")] == ["new.txt"]


def test_a_peer_with_100000_files_logs_in_and_is_fully_searchable(peer_factory, directory_factory, tmp_path):
    directory = directory_factory(lease=10)
    folder = tmp_path / "big-folder"
    for d in range(100):
        os.makedirs(folder / f"d{d:02}")
    for i in range(N_FILES):
        # tiny files of distinct bytes (so 100,000 distinct sha256): what is measured is the index
        fd = os.open(folder / f"d{i % 100:02}" / f"f{i:06}.dat", os.O_CREAT | os.O_WRONLY, 0o644)
        os.write(fd, b"%d" % i)
        os.close(fd)
    start = time.monotonic()
    # the first scan hashes every file before the peer serves (about 7 s here for 100,000)
    peer = peer_factory(directory.url, peer_id="bigpeer", folder=str(folder), rescan_interval=600,
                        ready_timeout=90)

    def indexed():
        live = requests.get(f"{directory.url}/api/v1/peers", timeout=10).json()
        return live and live[0]["files"] == N_FILES

    wait_until(indexed, timeout=150, interval=0.5)
    elapsed = time.monotonic() - start
    print(f"\n{N_FILES:,} files: peer start to fully searchable in {elapsed:.1f} s; output:\n"
          + "".join(line for line in peer.lines if "sharing" in line or "logged in" in line or "published" in line))
    peer.wait_for_output(r"published 100000 file\(s\)", timeout=10)
    hit = requests.get(f"{directory.url}/api/v1/files", params={"q": "f099999.dat"}, timeout=10).json()
    assert [r["name"] for r in hit["results"]] == ["d99/f099999.dat"]
    short = requests.get(f"{directory.url}/api/v1/files", params={"q": "F0"}, timeout=10).json()
    assert len(short["results"]) == 20 and short["next_cursor"]  # contains, any case, paged
