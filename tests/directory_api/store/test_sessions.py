"""directory_api.store.sessions: registration, secrets, tokens, leases, the sweep's delete."""
from tests.directory_api.store.helpers import LIVE, NOW, add_peer
from tests.fixtures.directory import entry, sha


def test_register_is_first_come(store):
    assert store.register_peer("a", "h1", NOW)
    assert not store.register_peer("a", "h2", NOW)
    assert store.secret_hash("a") == "h1"
    assert store.secret_hash("nobody") is None


def test_authenticate_needs_a_live_lease(store):
    add_peer(store, "a", token="t")
    assert store.authenticate("t", LIVE) == "a"
    assert store.authenticate("t", NOW + 1) is None  # lease over
    assert store.authenticate("other", LIVE) is None


def test_new_session_kills_old_token(store):
    add_peer(store, "a", token="t1")
    store.start_session("a", "t2", "127.0.0.1:1", NOW)
    assert store.authenticate("t1", LIVE) is None
    assert store.authenticate("t2", LIVE) == "a"


def test_a_new_session_cancels_the_copies_it_was_to_send_or_receive(store):
    add_peer(store, "a", files=[entry("x", n=1), entry("y", n=2)])
    add_peer(store, "b", files=[entry("z", n=3)])
    add_peer(store, "c")
    store.add_pending_copy(sha(1), "x", 10, "a", "b", NOW, NOW + 30)  # b receives
    store.add_pending_copy(sha(3), "z", 10, "b", "c", NOW, NOW + 30)  # b sends
    store.add_pending_copy(sha(2), "y", 10, "a", "c", NOW, NOW + 30)  # b is not part of it
    store.start_session("b", "t-b2", "127.0.0.1:2", NOW + 1)
    assert store.pending_for(sha(1), NOW) == [] and store.pending_for(sha(3), NOW) == []
    assert [p["to_peer_id"] for p in store.pending_for(sha(2), NOW)] == ["c"]


def test_renew_lease_updates_only_given_fields(store):
    add_peer(store, "a", token="t", free_bytes=100, accept_uploads=True)
    session = store.renew_lease("t", LIVE, NOW + 5, accept_uploads=False)
    assert session.peer_id == "a"
    row = store.peer("a")
    assert row["last_seen"] == NOW + 5 and row["accept_uploads"] is False and row["free_bytes"] == 100
    store.renew_lease("t", LIVE, NOW + 6, free_bytes=None, set_free_bytes=True)
    assert store.peer("a")["free_bytes"] is None
    assert store.renew_lease("t", NOW + 100, NOW + 7) is None  # expired token renews nothing


def test_lease_session_reads_what_renew_lease_would_answer(store):
    add_peer(store, "a", token="t", files=[entry("x", n=1)])
    add_peer(store, "b")
    assert store.lease_session("t", LIVE, NOW).has_handouts is False
    store.add_pending_copy(sha(1), "x", 10, "a", "b", NOW, NOW + 30)
    session = store.lease_session("t", LIVE, NOW)
    assert (session.peer_id, session.has_handouts) == ("a", True)
    assert store.peer("a")["last_seen"] == NOW  # nothing written
    assert store.lease_session("t", NOW + 100, NOW) is None


def test_batched_renewals_never_move_last_seen_back_nor_outlive_a_logout(store):
    add_peer(store, "a", token="ta")
    add_peer(store, "b", token="tb")
    store.renew_lease("ta", LIVE, NOW + 10)
    store.end_session("b", 0.0)
    store.renew_leases([
        {"pid": "a", "th": "ta", "now": NOW + 5, "set_free": True, "free": 1, "acc": None},
        {"pid": "b", "th": "tb", "now": NOW + 5, "set_free": False, "free": None, "acc": None},
    ])
    assert store.peer("a")["last_seen"] == NOW + 10 and store.peer("a")["free_bytes"] is None
    assert store.peer("b")["last_seen"] == 0.0


def test_end_session(store):
    add_peer(store, "a", token="t", files=[entry("x")])
    store.end_session("a", 0.0)
    assert store.authenticate("t", LIVE) is None
    assert store.search("", LIVE, 10)["results"] == []
    assert store.live_peers(LIVE) == []


def test_end_session_cancels_the_peers_copies(store):
    add_peer(store, "a", files=[entry("x", n=1)])
    add_peer(store, "b")
    store.add_pending_copy(sha(1), "x", 10, "a", "b", NOW, NOW + 30)
    store.end_session("a", 0.0)
    assert store.pending_for(sha(1), NOW) == []


def test_live_peers_counts_files(store):
    add_peer(store, "a", files=[entry("x"), entry("y")], free_bytes=7)
    add_peer(store, "b")
    add_peer(store, "gone", last_seen=NOW - 100)
    peers = {p["peer_id"]: p for p in store.live_peers(LIVE)}
    assert set(peers) == {"a", "b"}
    assert peers["a"]["files"] == 2 and peers["a"]["free_bytes"] == 7 and peers["b"]["files"] == 0


def test_mark_planned(store):
    add_peer(store, "a", token="t")
    store.mark_planned("a", NOW + 3)
    assert store.lease_session("t", LIVE, NOW).planned_at == NOW + 3


def test_reaping_dead_peers_forgets_their_index_and_copies_but_not_their_secret(store):
    add_peer(store, "old", last_seen=NOW - 1000, files=[entry("x", n=1)])
    add_peer(store, "a", files=[entry("y", n=2)])
    store.add_pending_copy(sha(2), "y", 10, "a", "old", NOW, NOW + 30)
    assert store.reap_dead_peers(NOW - 500) == 1
    assert store.secret_hash("old") == "hash" and not store.register_peer("old", "other", NOW)
    assert store.peer_files("old") == [] and store.pending_for(sha(2), NOW) == []
    assert [r["sha256"] for r in store.search("", 0, 10)["results"]] == [sha(2)]
    assert store.reap_dead_peers(NOW - 500) == 0  # a reaped peer is passed by
    # it logs in again as ever
    store.start_session("old", "t-again", "127.0.0.1:1", NOW, files_=[entry("x", n=1)])
    assert store.authenticate("t-again", LIVE) == "old"


def test_forget_peer_releases_the_peer_id(store):
    add_peer(store, "a", files=[entry("y", n=2)])
    store.start_client_session("a", "ct", NOW, NOW + 60)
    assert store.forget_peer("a") and not store.forget_peer("a")
    assert store.secret_hash("a") is None and store.authenticate_client("ct", NOW) is None
    assert store.search("", 0, 10)["results"] == []
    assert store.register_peer("a", "new", NOW)


def test_sweep_forgets_withdrawals_of_vanished_files(store):
    add_peer(store, "a", files=[entry("x", n=1)])
    store.delete_file("a", sha(1), NOW, withdraw=True)
    assert store.is_withdrawn(sha(1))
    store.reap_dead_peers(NOW + 1)
    assert not store.is_withdrawn(sha(1))
