"""directory_api.store.audits: the queue of unproven claims, handing out once, answering once."""
from directory_api.store.claims import REFUTED
from tests.directory_api.store.helpers import LIVE, NOW, add_peer, prove
from tests.fixtures.directory import entry, sha

DUE = NOW - 3600  # claims last audited at or before this are due


def seed(store):
    """a holds x proven; b and c claim it unproven; c also claims y (which nobody proven holds)."""
    add_peer(store, "a", files=[entry("x", n=1)])
    add_peer(store, "b", files=[entry("x", n=1), entry("x again", n=1)])
    add_peer(store, "c", files=[entry("x", n=1), entry("y", n=2)])
    prove(store, "a", sha(1))


def test_candidates_are_unproven_live_claims_once_each_with_a_proven_auditor(store):
    seed(store)
    found = {(c["peer_id"], c["sha256"]): c["auditor"] for c in store.audit_candidates(DUE, LIVE, NOW, 10)}
    assert found == {("b", sha(1)): "a", ("c", sha(1)): "a", ("c", sha(2)): None}


def test_candidates_leave_out_dead_targets_empty_files_refuted_and_recent_claims(store):
    seed(store)
    add_peer(store, "dead", last_seen=LIVE - 1, files=[entry("x", n=1)])
    add_peer(store, "empty", files=[entry("nothing", n=3, size=0)])
    store.set_proof("b", sha(1), REFUTED, NOW)
    store.defer_claim("c", sha(2), NOW - 10)  # audited 10 s ago
    assert [(c["peer_id"], c["sha256"]) for c in store.audit_candidates(DUE, LIVE, NOW, 10)] == [("c", sha(1))]


def test_only_a_live_proven_holder_other_than_the_target_audits(store):
    add_peer(store, "a", last_seen=LIVE - 1, files=[entry("x", n=1)])
    add_peer(store, "b", files=[entry("x", n=1)])
    prove(store, "a", sha(1))
    assert [c["auditor"] for c in store.audit_candidates(DUE, LIVE, NOW, 10)] == [None]


def test_an_audit_moves_its_claim_to_the_back_of_the_queue_and_is_handed_out_once(store):
    seed(store)
    store.add_audit("1" * 32, sha(1), "b", "a", 0, 10, NOW, NOW + 60)
    left = [(c["peer_id"], c["sha256"]) for c in store.audit_candidates(DUE, LIVE, NOW, 10)]
    assert ("b", sha(1)) not in left
    assert store.claims_work("a", NOW) == (False, True)
    [order] = store.take_audits("a", NOW, LIVE)
    assert order == {"audit_id": "1" * 32, "sha256": sha(1), "target_peer_id": "b",
                     "target_address": store.peer("b")["grpc_address"], "offset": 0, "length": 10}
    assert store.take_audits("a", NOW, LIVE) == []
    assert store.claims_work("a", NOW) == (False, False)


def test_an_audit_of_a_dead_target_or_past_its_deadline_is_not_handed_out(store):
    seed(store)
    store.add_audit("1" * 32, sha(1), "b", "a", 0, 10, NOW, NOW + 60)
    assert store.take_audits("a", NOW + 61, LIVE) == []
    assert store.take_audits("a", NOW, NOW + 1) == []  # b is not live since NOW + 1
    assert len(store.take_audits("a", NOW, LIVE)) == 1


def test_an_audit_is_answered_once_by_its_auditor(store):
    seed(store)
    store.add_audit("1" * 32, sha(1), "b", "a", 0, 10, NOW, NOW + 60)
    assert store.answer_audit("2" * 32, "a", True, "", NOW) == ("unknown", None)
    assert store.answer_audit("1" * 32, "c", True, "", NOW) == ("not_yours", None)
    status, audit = store.answer_audit("1" * 32, "a", False, "bytes differ", NOW)
    assert status == "answered" and audit == {"audit_id": "1" * 32, "sha256": sha(1), "target_peer_id": "b"}
    assert store.answer_audit("1" * 32, "a", True, "", NOW) == ("already", None)
    row = store.audit("1" * 32)
    assert (row["ok"], row["detail"], row["answered_at"]) == (False, "bytes differ", NOW)
    assert store.audit_counts(NOW) == {"open": 0, "passed": 0, "failed": 1}


def test_old_audits_are_dropped(store):
    seed(store)
    store.add_audit("1" * 32, sha(1), "b", "a", 0, 10, NOW, NOW + 60)
    assert store.audit_counts(NOW) == {"open": 1, "passed": 0, "failed": 0}
    assert store.drop_old_audits(NOW + 60) == 0
    assert store.drop_old_audits(NOW + 61) == 1
    assert store.audit("1" * 32) is None


def test_a_reaped_peer_takes_its_audits_and_orders_along(store):
    seed(store)
    store.add_audit("1" * 32, sha(1), "b", "a", 0, 10, NOW, NOW + 60)
    store.order_verify("b", sha(1), "a", NOW, 60)
    store.end_session("b", 0.5)  # last seen long ago (0 marks a peer already reaped)
    assert store.reap_dead_peers(1.0) == 1
    assert store.audit("1" * 32) is None and store.claims_work("b", NOW) == (False, False)
