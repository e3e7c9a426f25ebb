"""directory_api.replication: who gets a copy, when, and that it is never planned twice."""
import collections
import time

import pytest

from directory_api.config import DirectoryConfig
from directory_api.liveness import Liveness
from directory_api.replication import Planner, rank_backups, rendezvous_score
from tests.fixtures.directory import entry, sha


def test_rendezvous_is_stable_and_balanced():
    peers = [f"peer{i}" for i in range(5)]
    winners = collections.Counter(
        max(peers, key=lambda p: rendezvous_score(sha(i), p)) for i in range(2000)
    )
    assert set(winners) == set(peers)
    assert max(winners.values()) < 1.3 * min(winners.values())
    assert rendezvous_score(sha(1), "a") == rendezvous_score(sha(1), "a")


def test_rank_backups_filters_room_and_load():
    cands = [
        {"peer_id": "full", "free_bytes": 100, "reserved": 60, "pending": 0},
        {"peer_id": "busy", "free_bytes": None, "reserved": 0, "pending": 4},
        {"peer_id": "roomy", "free_bytes": 100, "reserved": 0, "pending": 0},
        {"peer_id": "unknown", "free_bytes": None, "reserved": 0, "pending": 3},
    ]
    assert {c["peer_id"] for c in rank_backups(sha(1), 50, cands, 4)} == {"roomy", "unknown"}


def test_planner_disabled_at_r1(app):
    ctx = app.extensions["p2p"]
    assert not ctx.planner.enabled and not ctx.planner.due(0.0, time.time())


@pytest.fixture
def repl_client(make_app):
    """A test client of a directory with R = 2 that plans on every heartbeat."""
    return make_app(replication=2, replication_interval_s=0, lease_s=5)


def login(client, pid, **kw):
    from tests.fixtures.directory import PeerClient

    return PeerClient(client, pid, **kw)


def test_heartbeat_hands_out_a_copy_then_it_completes(repl_client):
    client = repl_client.test_client()
    a = login(client, "a", files=[entry("doc.pdf", n=1)])
    b = login(client, "b")
    orders = a.heartbeat().get_json()["replicate"]
    assert orders == [{"sha256": sha(1), "name": "doc.pdf", "to_peer_id": "b", "to_address": b.address}]
    assert a.heartbeat().get_json()["replicate"] == []  # handed out once
    detail = client.get(f"/api/v1/files/{sha(1)}").get_json()["replication"]
    assert detail["live_holders"] == 1 and [p["to_peer_id"] for p in detail["pending"]] == ["b"]
    summary = client.get("/api/v1/replication").get_json()
    assert summary["below_target"] == 1 and summary["pending_copies"] == 1 and summary["unplaceable"] == 0
    b.add_files([entry("doc.pdf", n=1)])  # the backup indexes what it received
    detail = client.get(f"/api/v1/files/{sha(1)}").get_json()["replication"]
    assert detail == {"target": 2, "live_holders": 2, "pending": [], "withdrawn": False}
    assert client.get("/api/v1/replication").get_json()["at_target"] == 1
    assert a.heartbeat().get_json()["replicate"] == [] and b.heartbeat().get_json()["replicate"] == []


def test_no_eligible_backup_is_reported_not_looped(repl_client):
    client = repl_client.test_client()
    a = login(client, "a", files=[entry("big", n=1, size=1000)])
    login(client, "refuses", accept_uploads=False)
    login(client, "small", free_bytes=10)
    for _ in range(3):
        assert a.heartbeat().get_json()["replicate"] == []
    summary = client.get("/api/v1/replication").get_json()
    assert summary["below_target"] == 1 and summary["unplaceable"] == 1 and summary["pending_copies"] == 0


def test_pending_copies_per_backup_are_bounded(make_app):
    client = make_app(replication=2, replication_interval_s=0, max_pending_per_peer=2).test_client()
    a = login(client, "a", files=[entry(f"f{i}", n=i) for i in range(5)])
    login(client, "b")
    assert len(a.heartbeat().get_json()["replicate"]) == 2


def test_expired_copy_is_planned_again_elsewhere(make_app):
    app = make_app(replication=2, replication_interval_s=0, replication_deadline_s=0.3, lease_s=5)
    client = app.test_client()
    a = login(client, "a", files=[entry("x", n=1)])
    b, c = login(client, "b"), login(client, "c")
    [first] = a.heartbeat().get_json()["replicate"]
    # the chosen backup dies mid-copy
    client.post("/api/v1/logout", headers=(b if first["to_peer_id"] == "b" else c).auth)
    time.sleep(0.4)
    [second] = a.heartbeat().get_json()["replicate"]
    assert second["to_peer_id"] != first["to_peer_id"]


def test_dead_holder_triggers_new_copy(make_app):
    client = make_app(replication=2, replication_interval_s=0).test_client()
    a = login(client, "a", files=[entry("x", n=1)])
    b = login(client, "b", files=[entry("x", n=1)])
    login(client, "c")
    assert a.heartbeat().get_json()["replicate"] == []
    client.post("/api/v1/logout", headers=b.auth)
    assert [o["to_peer_id"] for o in a.heartbeat().get_json()["replicate"]] == ["c"]


def test_delete_cancels_copies_of_that_file(repl_client):
    client = repl_client.test_client()
    a = login(client, "a", files=[entry("x", n=1)])
    login(client, "b")
    assert a.heartbeat().get_json()["replicate"]
    assert client.delete(f"/api/v1/peers/a/files/{sha(1)}", headers=a.auth).status_code == 204
    assert client.get("/api/v1/replication").get_json()["pending_copies"] == 0
    assert a.heartbeat().get_json()["replicate"] == []


def test_withdrawn_file_is_not_replicated_again(repl_client):
    client = repl_client.test_client()
    a = login(client, "a", files=[entry("x", n=1)])
    b = login(client, "b", files=[entry("x", n=1)])
    login(client, "c")
    client.post("/api/v1/logout", headers=b.auth)  # x is below target: a would get an order...
    r = client.delete(f"/api/v1/peers/a/files/{sha(1)}?withdraw=true", headers=a.auth)
    assert r.status_code == 204
    b.login()  # ...but after the withdrawal b's copy stays b's own file, and is not copied
    assert b.heartbeat().get_json()["replicate"] == []
    detail = client.get(f"/api/v1/files/{sha(1)}").get_json()
    assert detail["replication"]["withdrawn"] is True and [h["peer_id"] for h in detail["holders"]] == ["b"]


def test_withdraw_flag_is_validated(repl_client):
    client = repl_client.test_client()
    a = login(client, "a", files=[entry("x", n=1)])
    r = client.delete(f"/api/v1/peers/a/files/{sha(1)}?withdraw=maybe", headers=a.auth)
    assert r.status_code == 400 and r.get_json()["field"] == "withdraw"


def test_planning_is_throttled_per_holder(make_app):
    client = make_app(replication=2, replication_interval_s=60).test_client()
    a = login(client, "a", files=[entry("x", n=1)])
    assert a.heartbeat().get_json()["replicate"] == []  # planned now: nobody to copy to
    login(client, "b")
    assert a.heartbeat().get_json()["replicate"] == []  # not due again for 60 s


def test_two_planners_never_double_plan(tmp_path):
    """Two directories on one database plan the same file at once: one copy only."""
    from directory_api.store import Store

    store = Store(f"sqlite:///{tmp_path}/p.db")
    store.create_schema()
    now = time.time()
    for pid in ("a", "b", "c"):
        store.register_peer(pid, "h", now)
        store.start_session(pid, f"t{pid}", "127.0.0.1:1", now)
    store.replace_files("a", [entry("x", n=1)])
    store.replace_files("b", [entry("x", n=1)])
    store.end_session("b", 0.0)  # below target again
    cfg = DirectoryConfig(database_url=store.url, replication=3, replication_interval_s=0)
    planners = [Planner(cfg, store, Liveness(cfg)) for _ in range(2)]
    # interleave: both see the same shortage before either records anything
    short = [store.under_replicated_for_holder("a", 3, now - 10, now, 10) for _ in planners]
    assert short[0] == short[1] and short[0][0]["need"] == 2
    with store.write() as conn:
        assert planners[0].plan_for_holder(conn, "a", now) == 1  # only c is eligible
    with store.write() as conn:
        assert planners[1].plan_for_holder(conn, "a", now) == 0
    assert store.add_pending_copy(sha(1), "x", 10, "a", "c", now, now + 30) is False
    assert [p["to_peer_id"] for p in store.pending_for(sha(1), now)] == ["c"]
    store.dispose()
