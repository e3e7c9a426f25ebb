"""directory_api.store.overview: the counts behind /metrics and the dashboard's short lists."""
from tests.directory_api.store.helpers import LIVE, NOW, add_peer, prove
from tests.fixtures.directory import entry, sha


def seed(store):
    add_peer(store, "a", files=[entry("shared.txt"), entry("only-a.txt")])
    add_peer(store, "b", last_seen=NOW - 5, files=[entry("shared.txt")])
    add_peer(store, "dead", last_seen=LIVE - 1, files=[entry("dead-only.txt"), entry("only-a.txt")])
    prove(store, "b", sha("shared.txt"))  # a real second copy: the counting rule counts two


def test_counts_see_only_live_peers_and_their_files(store):
    seed(store)
    assert store.overview_counts(2, LIVE, NOW) == {
        "live_peers": 2, "files": 2, "below_target": 1, "copies_in_flight": 0, "target": 2}
    assert store.overview_counts(1, LIVE, NOW)["below_target"] == 0


def test_counts_of_an_empty_store(store):
    assert store.overview_counts(2, LIVE, NOW) == {
        "live_peers": 0, "files": 0, "below_target": 0, "copies_in_flight": 0, "target": 2}


def test_copies_in_flight_are_the_unexpired_pending_ones(store):
    seed(store)
    assert store.add_pending_copy(sha("only-a.txt"), "only-a.txt", 10, "a", "b", NOW, NOW + 30)
    assert store.overview_counts(2, LIVE, NOW)["copies_in_flight"] == 1
    assert store.overview_counts(2, LIVE, NOW + 31)["copies_in_flight"] == 0
    assert store.copies_in_flight(NOW, 10) == [{
        "sha256": sha("only-a.txt"), "name": "only-a.txt", "from_peer_id": "a", "to_peer_id": "b",
        "created_at": NOW, "deadline": NOW + 30, "handed_at": None}]
    assert store.copies_in_flight(NOW + 31, 10) == []


def test_live_peer_rows_most_recent_first_with_their_file_counts(store):
    seed(store)
    rows = store.live_peer_rows(LIVE, 10)
    assert [(r["peer_id"], r["files"], r["last_seen"]) for r in rows] == [("a", 2, NOW), ("b", 1, NOW - 5)]
    assert rows[0]["grpc_address"].startswith("127.0.0.1:")
    assert [r["peer_id"] for r in store.live_peer_rows(LIVE, 1)] == ["a"]


def test_unproven_claims_count_as_one_copy_together(store):
    seed(store)
    store.set_proof("b", sha("shared.txt"), 0, NOW)
    assert store.overview_counts(2, LIVE, NOW)["below_target"] == 2
    assert [r["holders"] for r in store.replication_rows(LIVE, 10)] == [1, 1]


def test_replication_rows_fewest_holders_first(store):
    seed(store)
    rows = store.replication_rows(LIVE, 10)
    assert [(r["name"], r["holders"]) for r in rows] == [("only-a.txt", 1), ("shared.txt", 2)]
    assert rows[0]["sha256"] == sha("only-a.txt") and rows[0]["size"] == 10
    assert len(store.replication_rows(LIVE, 1)) == 1
