"""directory_api.store.publish: a big index staged in pages, invisible to search until its commit."""
import pytest

from directory_api.errors import IndexConflict
from tests.directory_api.store.helpers import LIVE, NOW, add_peer
from tests.fixtures.directory import entry, sha


def names(store, peer_id="a"):
    return [f["name"] for f in store.peer_files(peer_id)]


def found(store, query):
    return sorted(r["name"] for r in store.search(query, LIVE, 50)["results"])


def test_pages_stay_invisible_until_the_commit_swaps_the_index(store):
    add_peer(store, "a", files=[entry("old one.txt", n=1)])
    assert store.publish_page("a", "g1", 0, [entry("new one.txt", n=2)], False, NOW) == \
        {"indexed": 1, "staged": 1, "committed": False}
    assert store.publish_page("a", "g1", 1, [entry("new two.txt", n=3)], False, NOW)["staged"] == 2
    assert found(store, "one") == ["old one.txt"] and names(store) == ["old one.txt"]  # the old index, whole
    assert store.publish_page("a", "g1", 2, [entry("new three.txt", n=4)], True, NOW) == \
        {"indexed": 1, "staged": 3, "committed": True}
    assert names(store) == ["new one.txt", "new three.txt", "new two.txt"]
    assert found(store, "new") == ["new one.txt", "new three.txt", "new two.txt"] and found(store, "old") == []


def test_a_page_sent_again_changes_nothing_and_a_gap_is_refused(store):
    add_peer(store, "a")
    store.publish_page("a", "g", 0, [entry("x", n=1)], False, NOW)
    assert store.publish_page("a", "g", 0, [entry("x", n=1)], False, NOW) == \
        {"indexed": 0, "staged": 1, "committed": False}
    with pytest.raises(IndexConflict) as err:
        store.publish_page("a", "g", 5, [entry("y", n=2)], True, NOW)
    assert err.value.expected_page == 1
    assert store.publish_page("a", "g", 1, [entry("y", n=2)], True, NOW)["committed"] is True
    # the commit sent again (its answer was lost) is answered, not refused
    assert store.publish_page("a", "g", 1, [entry("y", n=2)], True, NOW)["committed"] is True
    assert names(store) == ["x", "y"]


def test_a_name_on_two_pages_rolls_the_second_back(store):
    add_peer(store, "a")
    store.publish_page("a", "g", 0, [entry("x", n=1)], False, NOW)
    with pytest.raises(IndexConflict) as err:
        store.publish_page("a", "g", 1, [entry("fresh", n=3), entry("x", n=2)], False, NOW)
    assert err.value.duplicate == "x"
    assert store.publish_page("a", "g", 1, [entry("fresh", n=3)], True, NOW)["staged"] == 2  # page 1 again, whole


def test_page_zero_of_a_new_generation_drops_an_unfinished_one(store):
    add_peer(store, "a")
    store.publish_page("a", "g1", 0, [entry("abandoned", n=1)], False, NOW)
    store.publish_page("a", "g2", 0, [entry("kept", n=2)], True, NOW)
    assert names(store) == ["kept"]
    with pytest.raises(IndexConflict):
        store.publish_page("a", "g1", 1, [entry("late", n=3)], True, NOW)  # g1 is gone


def test_the_first_commit_of_a_session_records_nothing_as_dropped(store):
    add_peer(store, "a", files=[entry("x", n=1), entry("y", n=2)])
    add_peer(store, "b")
    store.start_session("a", "tok-a2", "127.0.0.1:9001", NOW)  # a new process logs in without files
    store.publish_page("a", "g1", 0, [entry("y", n=2)], True, NOW)  # x was lost with its disk
    assert {c["peer_id"] for c in store.backup_candidates(sha(1), 10, LIVE, NOW, 4)} == {"a", "b"}
    store.publish_page("a", "g2", 0, [], True, NOW)  # while running, its user deletes y
    assert {c["peer_id"] for c in store.backup_candidates(sha(2), 10, LIVE, NOW, 4)} == {"b"}


def test_a_new_session_forgets_staged_pages(store):
    add_peer(store, "a")
    store.publish_page("a", "g", 0, [entry("x", n=1)], False, NOW)
    store.start_session("a", "tok-a2", "127.0.0.1:9001", NOW)
    with pytest.raises(IndexConflict):
        store.publish_page("a", "g", 1, [entry("y", n=2)], True, NOW)
