"""directory_api.replication: who gets a copy, when, and that it is never planned twice."""
import collections
import time

import pytest

from directory_api.config import DirectoryConfig
from directory_api.liveness import Liveness
from directory_api.replication import Planner, rank_backups, rendezvous_score
from protos import tickets
from tests.fixtures.directory import entry, sha


def test_rendezvous_is_stable_and_balanced():
    peers = [f"peer{i}" for i in range(5)]
    winners = collections.Counter(
        max(peers, key=lambda p: rendezvous_score(sha(i), p)) for i in range(2000)
    )
    assert set(winners) == set(peers)
    assert max(winners.values()) < 1.3 * min(winners.values())
    assert rendezvous_score(sha(1), "a") == rendezvous_score(sha(1), "a")


def test_rank_backups_only_orders_by_rendezvous_score():
    cands = [{"peer_id": f"p{i}"} for i in range(6)]
    ranked = [c["peer_id"] for c in rank_backups(sha(1), cands)]
    assert sorted(ranked) == [c["peer_id"] for c in cands]  # eligibility is the store's: nothing dropped
    scores = [rendezvous_score(sha(1), p) for p in ranked]
    assert scores == sorted(scores, reverse=True)


def test_planner_disabled_at_r1(app):
    ctx = app.extensions["p2p"]
    assert not ctx.planner.enabled and not ctx.planner.due(0.0, 1e9)


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
    ticket = orders[0].pop("ticket")
    assert orders == [{"sha256": sha(1), "name": "doc.pdf", "to_peer_id": "b", "to_address": b.address, "size": 10}]
    # the upload ticket the backup checks: from a, to b, this file at this size
    key = repl_client.extensions["p2p"].signer.key.public_key()
    claims = tickets.verify(ticket, {tickets.key_id(key): key}, time.time(), purpose=tickets.UPLOAD, sha256=sha(1),
                            me="b", size=10)
    assert (claims.sub, claims.aud) == ("a", "b")
    assert a.heartbeat().get_json()["replicate"] == []  # handed out once
    detail = client.get(f"/api/v1/files/{sha(1)}").get_json()["replication"]
    assert detail["live_holders"] == 1 and [p["to_peer_id"] for p in detail["pending"]] == ["b"]
    summary = client.get("/api/v1/replication").get_json()
    assert summary["below_target"] == 1 and summary["pending_copies"] == 1 and summary["unplaceable"] == 0
    b.add_files([entry("doc.pdf", n=1)])  # the backup indexes what it received
    detail = client.get(f"/api/v1/files/{sha(1)}").get_json()["replication"]
    # The confirmed push proved b's copy; a's own claim is still unproven: 1 + min(1, 1) = 2 copies.
    assert detail == {"target": 2, "live_holders": 2, "pending": [], "withdrawn": False,
                      "proven": 1, "unproven": 1, "refuted": 0}
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


def test_expired_copy_is_planned_again(make_app, clock):
    app = make_app(replication=2, replication_interval_s=0, replication_deadline_s=0.3, lease_s=5, clock=clock)
    client = app.test_client()
    a = login(client, "a", files=[entry("x", n=1)])
    login(client, "b")
    [first] = a.heartbeat().get_json()["replicate"]
    clock.advance(0.2)
    assert a.heartbeat().get_json()["replicate"] == []  # still pending: handed out once
    clock.advance(0.2)  # past its deadline: b never indexed it
    [again] = a.heartbeat().get_json()["replicate"]
    assert again == first


def test_a_backup_that_dies_mid_copy_is_replaced_at_once(make_app):
    app = make_app(replication=2, replication_interval_s=0, lease_s=5)
    client = app.test_client()
    a = login(client, "a", files=[entry("x", n=1)])
    b, c = login(client, "b"), login(client, "c")
    [first] = a.heartbeat().get_json()["replicate"]
    client.post("/api/v1/logout", headers=(b if first["to_peer_id"] == "b" else c).auth)
    [second] = a.heartbeat().get_json()["replicate"]  # no deadline to wait for
    assert second["to_peer_id"] != first["to_peer_id"]


def test_dead_holder_triggers_new_copy(make_app):
    client = make_app(replication=2, replication_interval_s=0).test_client()
    a = login(client, "a", files=[entry("x", n=1)])
    b = login(client, "b", files=[entry("x", n=1)])
    login(client, "c")
    client.application.extensions["p2p"].store.set_proof("b", sha(1), 1, 0.0)  # b's is a real copy
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
    now = 1_000_000.0
    for pid in ("a", "b", "c"):
        store.register_peer(pid, "h", now)
        store.start_session(pid, f"t{pid}", "127.0.0.1:1", now)
    store.replace_files("a", [entry("x", n=1)])
    store.replace_files("b", [entry("x", n=1)])
    store.end_session("b", 0.0)  # below target again
    cfg = DirectoryConfig(database_url=store.url, replication=3, replication_interval_s=0)
    planners = [Planner(cfg, store, Liveness(cfg, clock=lambda: now)) for _ in range(2)]
    # interleave: both see the same shortage before either records anything
    short = [store.under_replicated_for_holder("a", 3, now - 10, now, 10) for _ in planners]
    assert short[0] == short[1] and short[0][0]["need"] == 2
    with store.write() as conn:
        assert planners[0].plan_for_holder("a", now, conn=conn) == 1  # only c is eligible
    with store.write() as conn:
        assert planners[1].plan_for_holder("a", now, conn=conn) == 0
    assert store.add_pending_copy(sha(1), "x", 10, "a", "c", now, now + 30) is False
    assert [p["to_peer_id"] for p in store.pending_for(sha(1), now)] == ["c"]
    store.dispose()


@pytest.mark.parametrize("free_bytes, max_pending, placeable", [
    (100, 4, False),   # 100 free, but 60 are reserved for the copy it awaits: no room for 50
    (110, 4, True),    # 110 - 60 >= 50
    (None, 4, True),   # unknown room counts as room
    (None, 1, False),  # it already awaits as many copies as it may
])
def test_the_summary_counts_as_unplaceable_exactly_what_the_planner_cannot_place(
        tmp_path, free_bytes, max_pending, placeable):
    """The summary used to ignore reserved bytes: a backup whose free_bytes minus its reserved
    bytes was too small made the summary say "placeable" while the planner placed nothing."""
    from directory_api.store import Store

    now = 1_000_000.0
    store = Store(f"sqlite:///{tmp_path}/agree.db")
    store.create_schema()
    for pid, files, free in [("a", [entry("x", n=1, size=50), entry("y", n=2, size=60)], None), ("b", [], free_bytes)]:
        store.register_peer(pid, "h", now)
        store.start_session(pid, f"t-{pid}", "127.0.0.1:1", now, free_bytes=free, files_=files)
    store.add_pending_copy(sha(2), "y", 60, "a", "b", now, now + 30)  # b awaits y: 60 bytes reserved
    cfg = DirectoryConfig(replication=2, replication_interval_s=0, max_pending_per_peer=max_pending)
    planner = Planner(cfg, store, Liveness(cfg, clock=lambda: now))
    summary = planner.summary()
    assert (summary["below_target"], summary["pending_copies"]) == (2, 1)  # x needs a copy, y has one
    with store.write() as conn:
        planned = planner.plan_for_holder("a", now, conn=conn)
    assert summary["unplaceable"] == (0 if placeable else 1)
    assert planned == (1 if placeable else 0)
    store.dispose()
