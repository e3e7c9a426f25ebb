"""directory_api.store.copies: pending copies, the one backup eligibility rule, the summary counts."""
import sys
import threading

import pytest
from sqlalchemy import text

from directory_api.store.copies import cancel_copies_of
from directory_api.store.writelock import WriteLock
from tests.directory_api.store.helpers import LIVE, NOW, add_peer, prove
from tests.fixtures.directory import entry, sha
from tests.integration.helpers import wait_until

SIZE = 50


def test_pending_copy_is_unique_and_completes_on_index(store):
    add_peer(store, "a", files=[entry("x", n=1)])
    add_peer(store, "b")
    assert store.add_pending_copy(sha(1), "x", 10, "a", "b", NOW, NOW + 30)
    assert not store.add_pending_copy(sha(1), "x", 10, "a", "b", NOW, NOW + 30)  # already planned
    handouts = store.take_handouts("a", NOW)
    assert handouts == [{"sha256": sha(1), "name": "x", "to_peer_id": "b", "size": 10,
                         "to_address": store.peer("b")["grpc_address"]}]
    assert store.take_handouts("a", NOW) == []  # handed out once
    assert len(store.pending_for(sha(1), NOW)) == 1
    store.upsert_files("b", [entry("x", n=1)])
    assert store.pending_for(sha(1), NOW) == []


def test_expired_copies_are_dropped(store):
    add_peer(store, "a", files=[entry("x", n=1)])
    add_peer(store, "b")
    store.add_pending_copy(sha(1), "x", 10, "a", "b", NOW, NOW + 30)
    assert store.drop_expired_copies(NOW + 10) == 0
    assert store.drop_expired_copies(NOW + 31) == 1
    assert store.add_pending_copy(sha(1), "x", 10, "a", "b", NOW + 31, NOW + 60)


def test_copies_of_dead_peers_are_dropped_when_asked_with_live_since(store):
    add_peer(store, "a", files=[entry("x", n=1)])
    add_peer(store, "b", last_seen=NOW - 100)
    store.add_pending_copy(sha(1), "x", 10, "a", "b", NOW, NOW + 30)
    assert store.drop_expired_copies(NOW) == 0
    assert store.drop_expired_copies(NOW, LIVE) == 1


def test_cancel_copies_of_a_peer(store):
    add_peer(store, "a", files=[entry("x", n=1), entry("y", n=2)])
    add_peer(store, "b")
    add_peer(store, "c")
    store.add_pending_copy(sha(1), "x", 10, "a", "b", NOW, NOW + 30)
    store.add_pending_copy(sha(2), "y", 10, "a", "b", NOW, NOW + 30)
    store.add_pending_copy(sha(1), "x", 10, "a", "c", NOW, NOW + 30)
    with store.write() as conn:
        assert cancel_copies_of("b", sha256=sha(1), conn=conn) == 1
    assert [p["to_peer_id"] for p in store.pending_for(sha(1), NOW)] == ["c"]
    with store.write() as conn:
        assert cancel_copies_of("a", conn=conn) == 2
    assert store.pending_for(sha(1), NOW) == store.pending_for(sha(2), NOW) == []


def test_under_replicated_for_holder(store):
    add_peer(store, "a", files=[entry("x", n=1), entry("y", n=2)])
    add_peer(store, "b", files=[entry("y", n=2)])
    add_peer(store, "c")
    prove(store, "b", sha(2))  # a real second copy of y; a's claims are unproven
    short = store.under_replicated_for_holder("a", 2, LIVE, NOW, 10)
    assert [(s["sha256"], s["live_holders"], s["pending"], s["need"]) for s in short] == [(sha(1), 1, 0, 1)]
    store.add_pending_copy(sha(1), "x", 10, "a", "c", NOW, NOW + 30)
    assert store.under_replicated_for_holder("a", 2, LIVE, NOW, 10) == []
    assert [s["need"] for s in store.under_replicated_for_holder("a", 3, LIVE, NOW, 10)] == [1, 1]


def test_under_replicated_starts_at_start_and_wraps_around(store):
    add_peer(store, "a", files=[entry(f"f{i}", n=i) for i in range(5)])
    digests = sorted(sha(i) for i in range(5))
    got = store.under_replicated_for_holder("a", 2, LIVE, NOW, 3, start=digests[3])
    assert [s["sha256"] for s in got] == [digests[3], digests[4], digests[0]]


def eligibility_state(store, case):
    """a holds x (SIZE bytes); b is the would-be backup, set up as the case says."""
    login = {"free_bytes": 100}
    if case == "refuses uploads":
        login["accept_uploads"] = False
    if case in ("unknown room", "at the pending limit", "under the pending limit"):
        login["free_bytes"] = None
    if case == "exactly enough room":
        login["free_bytes"] = SIZE
    if case == "too little room":
        login["free_bytes"] = SIZE - 1
    if case == "room after its reserved copies":
        login["free_bytes"] = 60 + SIZE
    add_peer(store, "a", files=[entry("x", n=1, size=SIZE)])
    add_peer(store, "b", last_seen=NOW - 100 if case == "dead" else NOW,
             files=[entry("x", n=1, size=SIZE)] if case == "holds it" else [], **login)
    awaited = {"reserved copy leaves too little room": [60], "room after its reserved copies": [60],
               "expired reserved copies do not count": [60], "at the pending limit": [1] * 4,
               "under the pending limit": [1] * 3}.get(case, [])
    deadline = NOW - 1 if case == "expired reserved copies do not count" else NOW + 30
    for i, size in enumerate(awaited):
        store.add_pending_copy(sha(100 + i), f"other{i}", size, "a", "b", NOW - 60, deadline)
    if case == "awaits it":
        store.add_pending_copy(sha(1), "x", SIZE, "a", "b", NOW, NOW + 30)
    if case == "dropped it":
        store.upsert_files("b", [entry("x", n=1, size=SIZE)])
        store.replace_files("b", [], NOW)


ELIGIBILITY = [
    ("plenty of room", True),
    ("unknown room", True),
    ("exactly enough room", True),
    ("too little room", False),
    ("reserved copy leaves too little room", False),
    ("room after its reserved copies", True),
    ("expired reserved copies do not count", True),
    ("at the pending limit", False),
    ("under the pending limit", True),
    ("refuses uploads", False),
    ("dead", False),
    ("holds it", False),
    ("awaits it", False),
    ("dropped it", False),
]


@pytest.mark.parametrize("case,eligible", ELIGIBILITY)
def test_one_eligibility_rule_for_candidates_and_the_summary(store, case, eligible):
    eligibility_state(store, case)
    candidates = store.backup_candidates(sha(1), SIZE, LIVE, NOW, 4)
    assert [c["peer_id"] for c in candidates] == (["b"] if eligible else [])
    if case not in ("holds it", "awaits it"):  # then x is at target, or a copy of it is pending
        assert store.replication_counts(2, LIVE, NOW, 4)["unplaceable"] == (0 if eligible else 1)


def test_a_backup_that_shares_other_files_can_take_this_one(store):
    """The summary once counted a file as unplaceable when its only backup held any file at all."""
    add_peer(store, "a", files=[entry("x", n=1)])
    add_peer(store, "b", files=[entry("z", n=3)])
    assert [c["peer_id"] for c in store.backup_candidates(sha(1), 10, LIVE, NOW, 4)] == ["b"]
    assert store.replication_counts(2, LIVE, NOW, 4)["unplaceable"] == 0  # x goes to b, z to a


def test_candidates_carry_their_load(store):
    eligibility_state(store, "room after its reserved copies")
    [b] = store.backup_candidates(sha(1), SIZE, LIVE, NOW, 4)
    assert (b["free_bytes"], b["pending"], b["reserved"]) == (110, 1, 60)


def test_replication_counts(store):
    add_peer(store, "a", files=[entry("x", n=1), entry("y", n=2), entry("z", n=3)])
    add_peer(store, "b", files=[entry("y", n=2), entry("z", n=3)])
    add_peer(store, "c", files=[entry("z", n=3)], accept_uploads=False)
    prove(store, "b", sha(2), sha(3))
    prove(store, "c", sha(3))
    counts = store.replication_counts(2, LIVE, NOW, 4)
    assert counts == {"target": 2, "files_total": 3, "at_target": 1, "below_target": 1, "above_target": 1,
                      "pending_copies": 0, "unplaceable": 0, "withdrawn": 0}  # b can take x
    store.end_session("b", 0.0)  # now only c is left for x, and it refuses
    assert store.replication_counts(2, LIVE, NOW, 4)["unplaceable"] == 2  # x and y


def _waits_for_the_first_writer(store, thread) -> bool:
    """True once thread is queued behind the open write transaction."""
    if store.dialect == "sqlite":
        frame = sys._current_frames().get(thread.ident)
        while frame is not None:
            if frame.f_code is WriteLock.__enter__.__code__:
                return True
            frame = frame.f_back
        return False
    with store.engine.connect() as conn:
        return conn.execute(text(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock' AND query LIKE :insert"), {"insert": "INSERT INTO p2p_pending_copies%"}
        ).scalar() > 0


def test_concurrent_plans_of_one_copy_conflict(store):
    """Two transactions (as in two directory processes) insert the same copy: one wins."""
    add_peer(store, "a", files=[entry("x", n=1)])
    add_peer(store, "b")
    results = {}
    with store.write() as conn:
        assert store.add_pending_copy(sha(1), "x", 10, "a", "b", NOW, NOW + 30, conn=conn)

        def other():
            results["second"] = store.add_pending_copy(sha(1), "x", 10, "a", "b", NOW, NOW + 30)

        thread = threading.Thread(target=other)
        thread.start()
        wait_until(lambda: _waits_for_the_first_writer(store, thread), timeout=10, interval=0.01)
        assert "second" not in results
    thread.join(10)
    assert results == {"second": False}
    assert len(store.pending_for(sha(1), NOW)) == 1


# -- backup candidates drawn from the ring -------------------------------------------------


def _clockwise(store, sha256, peer_ids):
    """peer_ids ordered clockwise on the ring from the file's place."""
    from directory_api.store.ring import RING_BITS, file_place, ring_key

    place = file_place(sha256)
    return sorted(peer_ids, key=lambda p: (ring_key(p) - place) % (1 << RING_BITS))


@pytest.fixture
def ring_of_peers(store):
    """a holds x; 40 more live peers, every fifth refusing uploads."""
    add_peer(store, "a", files=[entry("x", n=1)])
    others = [f"p{i:02}" for i in range(40)]
    for i, pid in enumerate(others):
        add_peer(store, pid, accept_uploads=i % 5 != 0)
    return [p for i, p in enumerate(others) if i % 5 != 0]


def test_a_sample_is_the_next_live_accepting_peers_on_the_ring(store, ring_of_peers):
    everyone = {c["peer_id"] for c in store.backup_candidates(sha(1), 10, LIVE, NOW, 4)}
    assert everyone == set(ring_of_peers)
    sampled = store.backup_candidates(sha(1), 10, LIVE, NOW, 4, sample=5)
    assert [c["peer_id"] for c in sampled] == sorted(_clockwise(store, sha(1), ring_of_peers)[:5])
    assert set(sampled[0]) == {"peer_id", "grpc_address", "free_bytes", "pending", "reserved"}


def test_more_windows_are_read_while_too_few_are_eligible(store, ring_of_peers):
    order = _clockwise(store, sha(1), ring_of_peers)
    for pid in order[:4]:  # the first window's peers already hold x
        store.upsert_files(pid, [entry("x", n=1)])
    got = store.backup_candidates(sha(1), 10, LIVE, NOW, 4, sample=4, need=2)
    assert [c["peer_id"] for c in got] == sorted(order[4:8])
    none = store.backup_candidates(sha(1), 10, LIVE, NOW, 4, sample=4, need=2, max_windows=1)
    assert none == []


def test_the_ring_wraps_around_and_stops_at_the_files_place(store, ring_of_peers):
    got = store.backup_candidates(sha(1), 10, LIVE, NOW, 4, sample=7, need=100, max_windows=50)
    assert sorted(c["peer_id"] for c in got) == sorted(ring_of_peers)  # each peer once, all of them
