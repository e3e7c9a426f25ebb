"""Two real directory processes on one PostgreSQL database serve one network."""
import pytest
import requests

from tests.fixtures.directory import entry, sha

pytestmark = [pytest.mark.postgres, pytest.mark.integration]


def _fresh(url):
    """Drop this run's tables so the processes start from an empty schema."""
    from devtools.store_tools import drop_schema
    from directory_api.store import Store

    store = Store(url)
    drop_schema(store)
    store.dispose()


def test_login_through_one_search_through_the_other(directory_factory, pg_url):
    _fresh(pg_url)
    first = directory_factory(database=pg_url, lease=15)
    second = directory_factory(database=pg_url, lease=15)
    login = requests.post(f"{first.url}/api/v1/login", json={
        "peer_id": "alice", "secret": "pw", "grpc_address": "127.0.0.1:50051",
        "files": [entry("Shared Holiday.mp4", n=1)]}, timeout=10)
    assert login.status_code == 200
    token = login.json()["token"]

    found = requests.get(f"{second.url}/api/v1/files", params={"q": "holiday"}, timeout=10).json()
    assert [r["sha256"] for r in found["results"]] == [sha(1)]
    assert found["results"][0]["holders"] == [{"peer_id": "alice", "grpc_address": "127.0.0.1:50051"}]

    # the token issued by one process is honoured by the other
    auth = {"Authorization": f"Bearer {token}"}
    assert requests.post(f"{second.url}/api/v1/heartbeat", json={}, headers=auth, timeout=10).status_code == 200
    r = requests.post(f"{second.url}/api/v1/peers/alice/files", json={"files": [entry("more.txt", n=2)]},
                      headers=auth, timeout=10)
    assert r.status_code == 201
    assert requests.get(f"{first.url}/api/v1/files/{sha(2)}", timeout=10).json()["names"] == ["more.txt"]
    # a wrong secret is refused by either
    bad = requests.post(f"{second.url}/api/v1/login", json={
        "peer_id": "alice", "secret": "nope", "grpc_address": "127.0.0.1:1"}, timeout=10)
    assert bad.status_code == 401
    assert requests.post(f"{first.url}/api/v1/logout", headers=auth, timeout=10).status_code == 204
    assert requests.get(f"{second.url}/api/v1/files", params={"q": "holiday"}, timeout=10).json()["results"] == []


def test_two_processes_plan_each_copy_once(directory_factory, pg_url):
    """Holders heartbeat through different processes; every copy is planned once."""
    _fresh(pg_url)
    # a long lease: on a busy machine a 2 s lease could lapse between login and heartbeat
    procs = [directory_factory(database=pg_url, replication=3, lease=15) for _ in range(2)]
    tokens = {}
    files = [entry(f"f{i}", n=i) for i in range(4)]
    for i, pid in enumerate(["a", "b", "c", "d", "e"]):
        body = {"peer_id": pid, "secret": "pw", "grpc_address": f"127.0.0.1:{6000 + i}"}
        if pid in ("a", "b"):
            body["files"] = files
        tokens[pid] = requests.post(f"{procs[i % 2].url}/api/v1/login", json=body, timeout=10).json()["token"]
    orders = []
    for holder, proc in (("a", procs[0]), ("b", procs[1]), ("a", procs[1]), ("b", procs[0])):
        r = requests.post(f"{proc.url}/api/v1/heartbeat", json={}, timeout=10,
                          headers={"Authorization": f"Bearer {tokens[holder]}"})
        assert r.status_code == 200, r.text
        orders += r.json()["replicate"]
    keys = [(o["sha256"], o["to_peer_id"]) for o in orders]
    # a's and b's claims are unproven, so together one copy: each file needs two more for R = 3
    assert len(keys) == len(set(keys)) == 8
