"""directory_api.store.index: replacing, upserting, deleting and browsing a peer's index."""
from tests.directory_api.store.helpers import LIVE, NOW, add_peer, prove
from tests.fixtures.directory import entry, sha


def candidates(store, sha256, size=10):
    return {c["peer_id"] for c in store.backup_candidates(sha256, size, LIVE, NOW, 4)}


def test_replace_upsert_delete(store):
    add_peer(store, "a", files=[entry("one"), entry("two")])
    assert [f["name"] for f in store.peer_files("a")] == ["one", "two"]
    store.replace_files("a", [entry("three")])
    assert [f["name"] for f in store.peer_files("a")] == ["three"]
    store.upsert_files("a", [entry("three", n=99, size=5), entry("four")])
    files = {f["name"]: f for f in store.peer_files("a")}
    assert files["three"]["sha256"] == sha(99) and files["three"]["size"] == 5 and "four" in files
    assert store.delete_file("a", sha(99)) == 1
    assert store.delete_file("a", sha(99)) == 0
    assert [f["name"] for f in store.peer_files("a")] == ["four"]


def test_pieces_round_trip(store):
    add_peer(store, "a", files=[entry("p", size=3, piece_size=2, pieces=[sha(1), sha(2)]), entry("plain")])
    by_name = {f["name"]: f for f in store.peer_files("a")}
    assert by_name["p"]["piece_size"] == 2 and by_name["p"]["pieces"] == [sha(1), sha(2)]
    assert "pieces" not in by_name["plain"] and "piece_size" not in by_name["plain"]


def test_a_running_peers_replace_records_what_it_dropped(store):
    add_peer(store, "a", files=[entry("x", n=1), entry("y", n=2)])
    add_peer(store, "b", files=[entry("x", n=1)])
    store.replace_files("a", [entry("y", n=2)], NOW)  # a's user deleted x
    assert candidates(store, sha(1)) == set()  # so x is never copied back to a
    store.upsert_files("a", [entry("x again", n=1)])  # a shares it again: the mark is lifted
    add_peer(store, "c")
    store.replace_files("a", [entry("y", n=2)])  # a login's index (no now) records nothing
    assert candidates(store, sha(1)) == {"a", "c"}


def test_indexing_completes_the_copy_the_peer_awaited(store):
    add_peer(store, "a", files=[entry("x", n=1)])
    add_peer(store, "b")
    store.add_pending_copy(sha(1), "x", 10, "a", "b", NOW, NOW + 30)
    store.upsert_files("b", [entry("x under another name", n=1)])
    assert store.pending_for(sha(1), NOW) == []


def test_a_dropping_sender_loses_its_copies_of_that_file(store):
    add_peer(store, "a", files=[entry("x", n=1), entry("y", n=2)])
    add_peer(store, "b")
    store.add_pending_copy(sha(1), "x", 10, "a", "b", NOW, NOW + 30)
    store.add_pending_copy(sha(2), "y", 10, "a", "b", NOW, NOW + 30)
    store.replace_files("a", [entry("y", n=2)], NOW)
    assert store.pending_for(sha(1), NOW) == []
    assert len(store.pending_for(sha(2), NOW)) == 1


def test_delete_cancels_only_the_callers_copies_of_that_file(store):
    add_peer(store, "a", files=[entry("x", n=1), entry("y", n=2)])
    add_peer(store, "b", files=[entry("x", n=1)])
    add_peer(store, "c")
    add_peer(store, "d")
    store.add_pending_copy(sha(1), "x", 10, "a", "c", NOW, NOW + 30)
    store.add_pending_copy(sha(1), "x", 10, "b", "d", NOW, NOW + 30)
    store.add_pending_copy(sha(2), "y", 10, "a", "d", NOW, NOW + 30)
    assert store.delete_file("a", sha(1), NOW) == 1
    assert [p["to_peer_id"] for p in store.pending_for(sha(1), NOW)] == ["d"]  # b's own copy stays
    assert len(store.pending_for(sha(2), NOW)) == 1
    assert not store.is_withdrawn(sha(1))


def test_withdraw_stops_planning_until_the_peer_shares_again(store):
    add_peer(store, "a", files=[entry("x", n=1)])
    add_peer(store, "b", files=[entry("x", n=1)])
    add_peer(store, "c")
    prove(store, "b", sha(1))
    store.add_pending_copy(sha(1), "x", 10, "b", "c", NOW, NOW + 30)
    assert store.delete_file("a", sha(1), NOW, withdraw=True) == 1
    assert store.is_withdrawn(sha(1)) and store.pending_for(sha(1), NOW) == []
    assert [f["name"] for f in store.peer_files("b")] == ["x"]  # b's own record is untouched
    assert store.under_replicated_for_holder("b", 3, LIVE, NOW, 10) == []
    assert store.replication_counts(3, LIVE, NOW, 4)["withdrawn"] == 1
    store.upsert_files("a", [entry("x again", n=1)])
    prove(store, "a", sha(1))
    assert not store.is_withdrawn(sha(1))
    assert store.under_replicated_for_holder("b", 3, LIVE, NOW, 10)[0]["need"] == 1


def test_delete_of_a_file_the_peer_does_not_have_changes_nothing(store):
    add_peer(store, "a", files=[entry("x", n=1)])
    add_peer(store, "b")
    store.add_pending_copy(sha(1), "x", 10, "a", "b", NOW, NOW + 30)
    assert store.delete_file("b", sha(1), NOW, withdraw=True) == 0
    assert not store.is_withdrawn(sha(1)) and len(store.pending_for(sha(1), NOW)) == 1
