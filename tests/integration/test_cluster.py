"""Two directory processes behind HAProxy on one PostgreSQL database: one dies, nobody notices.

Real processes throughout: ``devtools.cluster`` starts two gunicorn directories and HAProxy in
front (as ``make cluster`` does), two real peers (``python -m peer_node serve``) and a REST
client point at the load balancer, and one directory is SIGKILLed (with its worker) while the
client searches, heartbeats and publishes in a bounded loop.
"""
import re
import time
from pathlib import Path

import pytest
import requests

from devtools.cluster import Cluster, ClusterConfig, ClusterError
from tests.fixtures.directory import entry
from tests.integration.helpers import holders_of, live_peers, wait_until

pytestmark = [pytest.mark.postgres, pytest.mark.integration]

LEASE_S = 6
KILL_AT = 15  # client rounds of search + heartbeat + publish before the kill
AFTER_KILL_S = 3.0  # then rounds go on this long (HAProxy notices a dead directory in 0.6 s)
MAX_ROUNDS = 400


def _fresh(url):
    from devtools.store_tools import drop_schema
    from directory_api.store import Store

    store = Store(url)
    drop_schema(store)
    store.create_schema()
    store.dispose()


@pytest.fixture
def cluster(pg_url, tmp_path):
    """Two directories (R = 2, 6 s lease) behind HAProxy on the test schema; stopped by PID."""
    _fresh(pg_url)
    config = ClusterConfig(directories=2, database_url=pg_url, workdir=tmp_path / "lb", check_ms=300, env={
        "DIRECTORY_LEASE_S": str(LEASE_S), "DIRECTORY_REPLICATION": "2",
        # the client never pushes the copies it is told to: none may expire and be planned again
        "DIRECTORY_REPLICATION_DEADLINE_S": "600"})
    started = Cluster(config, say=lambda line: None)
    try:
        started.start()
    except ClusterError as exc:
        if "haproxy" in str(exc):
            pytest.skip(f"no HAProxy: {exc}")
        raise
    yield started
    started.stop()


class Client:
    """A REST-only holder (it shares files, accepts no uploads) that counts its failed requests."""

    def __init__(self, base):
        self.api, self.http = base + "/api/v1", requests.Session()
        self.failures, self.orders, self.unpublished = [], [], set()
        body = {"peer_id": "client", "secret": "client-secret", "grpc_address": "127.0.0.1:9",
                "accept_uploads": False, "files": [entry(f"client/first-{i}.bin", n=f"first-{i}") for i in range(3)]}
        answer = self.http.post(f"{self.api}/login", json=body, timeout=10)
        answer.raise_for_status()
        self.http.headers["Authorization"] = f"Bearer {answer.json()['token']}"

    def call(self, method, path, **kw):
        try:
            answer = self.http.request(method, self.api + path, timeout=10, **kw)
        except requests.RequestException as exc:
            self.failures.append(f"{method} {path}: {type(exc).__name__}")
            return None
        if not answer.ok:
            self.failures.append(f"{method} {path}: {answer.status_code} {answer.text[:200]}")
            return None
        return answer.json() if answer.content else {}

    def round(self, i):
        """One search, one heartbeat (collecting its orders), one publish."""
        self.call("GET", "/files", params={"q": "shared"})
        beat = self.call("POST", "/heartbeat", json={})
        if beat is not None:
            self.orders += [(o["sha256"], o["to_peer_id"]) for o in beat["replicate"]]
        name = f"client/round-{i:03}.bin"
        if self.call("POST", "/peers/client/files", json={"files": [entry(name, n=f"r{i}")]}) is None:
            self.unpublished.add(name)


def test_a_directory_dies_behind_the_load_balancer(cluster, peer_factory):
    lb = cluster.url
    peers = [peer_factory(lb, peer_id=f"peer{n}", files={f"shared-{n}.txt": f"file of peer {n}\n".encode()})
             for n in (1, 2)]
    for peer in peers:
        peer.wait_for_output(r"logged in to", timeout=20)
    wait_until(lambda: live_peers(lb) == ["peer1", "peer2"], timeout=20)
    client = Client(lb)
    seen_live, killed_at, rounds = set(), None, 0
    while rounds < MAX_ROUNDS and (killed_at is None or time.monotonic() - killed_at < AFTER_KILL_S):
        if rounds == KILL_AT:
            cluster.directories[0].child.kill()
            killed_at = time.monotonic()
        client.round(rounds)
        seen_live.add(tuple(live_peers(lb)))
        rounds += 1
    assert rounds > KILL_AT + 5, "too few rounds after the kill"
    assert len(client.failures) <= 1, client.failures

    # no peer expired, none had to log in again
    assert seen_live == {("client", "peer1", "peer2")}
    for peer in peers:
        assert peer.output.count("logged in to") == 1 and "refused our session" not in peer.output

    # nothing published is lost: the client's files, both peers' files
    mine = requests.get(f"{lb}/api/v1/peers/client/files", timeout=10).json()["files"]
    assert {f["name"] for f in mine} >= {f"client/round-{i:03}.bin" for i in range(rounds)} - client.unpublished
    for n in (1, 2):
        found = requests.get(f"{lb}/api/v1/files", params={"q": f"shared-{n}"}, timeout=10).json()["results"]
        assert [r["name"] for r in found] == [f"shared-{n}.txt"]

    # each planned copy was ordered once: R = 2, so each client file got one order, once
    assert client.orders and len(client.orders) == len(set(client.orders)), client.orders
    # the peers copy each other's file, each copy pushed once
    for n, other in ((1, "peer2"), (2, "peer1")):
        digest = requests.get(f"{lb}/api/v1/files", params={"q": f"shared-{n}"}, timeout=10).json()["results"][0]
        wait_until(lambda: other in holders_of(lb, digest["sha256"]), timeout=30)
    for peer in peers:
        pushes = re.findall(r"replicated (\S+) \((\w+)\) to (\S+)", peer.output)
        assert len(pushes) == len(set(pushes)), pushes

    # a file added after the kill is found through the load balancer
    Path(peers[0].folder, "after-the-kill.txt").write_bytes(b"new\n")
    wait_until(lambda: requests.get(f"{lb}/api/v1/files", params={"q": "after-the-kill"}, timeout=10)
               .json()["results"], timeout=20)
    assert client.call("POST", "/peers/client/files", json={"files": [entry("client/late.bin", n="late")]}) is not None
    late = requests.get(f"{lb}/api/v1/files", params={"q": "client/late"}, timeout=10).json()["results"]
    assert [r["holders"] for r in late] == [[{"peer_id": "client", "grpc_address": "127.0.0.1:9"}]]
    assert cluster.directories[1].child.running() and cluster.haproxy.running()

