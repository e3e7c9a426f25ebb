"""directory_api.store.search: name search (contains at every length, all) and one file's details."""
import pytest

from directory_api.store.search import _fts_match
from tests.directory_api.store.helpers import LIVE, NOW, add_peer
from tests.fixtures.directory import entry, sha


@pytest.mark.parametrize("query,expected", [
    ("hello", {"Hello World.mp3", "say-hello.txt"}),
    ("HELLO", {"Hello World.mp3", "say-hello.txt"}),
    ("o wor", {"Hello World.mp3"}),
    ("ll", {"Hello World.mp3", "say-hello.txt"}),  # short queries: contains too, not only a prefix
    ("LL", {"Hello World.mp3", "say-hello.txt"}),
    ("w", {"Hello World.mp3"}),
    ("sa", {"say-hello.txt"}),
    ("%", {"100% pure.ogg"}),
    ("100%", {"100% pure.ogg"}),
    ("_", set()),            # LIKE wildcards are literal
    ("", {"Hello World.mp3", "say-hello.txt", "100% pure.ogg"}),
    ("nothing", set()),
])
def test_search_contains_in_any_case(store, query, expected):
    add_peer(store, "a", files=[entry("Hello World.mp3"), entry("say-hello.txt"), entry("100% pure.ogg")])
    assert {r["name"] for r in store.search(query, LIVE, 50)["results"]} == expected


@pytest.mark.parametrize("query", ["ab", "AB", "b", "B"])
def test_a_short_query_matches_anywhere_in_the_name(store, query):
    """The issue's case: q=ab used to miss xxabc.txt (it matched only the start of a name)."""
    add_peer(store, "a", files=[entry("xxabc.txt", n=1), entry("nothing here", n=2)])
    assert [r["name"] for r in store.search(query, LIVE, 50)["results"]] == ["xxabc.txt"]


@pytest.mark.parametrize("query", ["é", "É", "éT", "ÉT"])
def test_a_short_non_ascii_query_matches_any_case(store, query):
    add_peer(store, "a", files=[entry("Été.txt", n=1), entry("summer.txt", n=2)])
    assert [r["name"] for r in store.search(query, LIVE, 50)["results"]] == ["Été.txt"]


def test_short_queries_page_through_every_match(store):
    add_peer(store, "a", files=[entry(f"{i:03}-x{'ab' if i % 3 == 0 else 'cd'}.bin", n=i) for i in range(60)])
    seen, after = [], 0
    while True:
        page = store.search("AB", LIVE, 7, after)
        seen += [r["name"] for r in page["results"]]
        if page["next_after"] is None:
            break
        after = page["next_after"]
    assert seen == [f"{i:03}-xab.bin" for i in range(0, 60, 3)]


def test_names_must_contain_the_whole_query_not_only_its_trigrams(store):
    add_peer(store, "a", files=[entry("abc-def-ghi.txt", n=1), entry("abcdefghi.txt", n=2)])
    assert [r["name"] for r in store.search("abcdefghi", LIVE, 50)["results"]] == ["abcdefghi.txt"]


@pytest.mark.parametrize("query,match,exact", [
    ("abc", '"abc"', 0),
    ("Midnight", '"mid" AND "nig" AND "ght"', 0),
    ("abcd", '"abc" AND "bcd"', 0),
    ('a"b', '"a""b"', 0),
    ("café", '"café"', 1),  # not ASCII: the exact phrase
])
def test_fts_match_uses_every_third_trigram_of_ascii_queries(query, match, exact):
    assert _fts_match(query) == (match, exact)


def test_search_groups_by_sha256_with_live_holders_only(store):
    add_peer(store, "a", files=[entry("song.mp3", n=1)])
    add_peer(store, "b", files=[entry("my song.mp3", n=1)])
    add_peer(store, "dead", last_seen=NOW - 100, files=[entry("song.mp3", n=1), entry("dead song.mp3", n=2)])
    results = store.search("song", LIVE, 50)["results"]
    assert len(results) == 1
    assert results[0]["sha256"] == sha(1)
    assert [h["peer_id"] for h in results[0]["holders"]] == ["a", "b"]


def test_search_pages_never_repeat_a_file(store):
    # 30 contents, each held by two peers under matching names: 60 rows, 30 results.
    add_peer(store, "a", files=[entry(f"track {i:02}.ogg", n=i) for i in range(30)])
    add_peer(store, "b", files=[entry(f"copy of track {i:02}.ogg", n=i) for i in range(30)])
    seen, after, pages = [], 0, 0
    while True:
        page = store.search("track", LIVE, 7, after)
        seen += [r["sha256"] for r in page["results"]]
        pages += 1
        if page["next_after"] is None:
            break
        after = page["next_after"]
    assert len(seen) == len(set(seen)) == 30
    assert pages == 5


def test_file_detail(store):
    add_peer(store, "a", files=[entry("x", n=1), entry("x2", n=1)])
    add_peer(store, "b", files=[entry("y", n=1)])
    detail = store.file_detail(sha(1), LIVE, NOW)
    assert detail["names"] == ["x", "x2", "y"]
    assert [h["peer_id"] for h in detail["holders"]] == ["a", "b"]
    assert detail["pending"] == [] and detail["withdrawn"] is False
    assert store.file_detail(sha(2), LIVE, NOW) is None


def test_file_detail_has_pieces_pending_copies_and_the_withdrawal(store):
    add_peer(store, "a", files=[entry("p", n=1, size=3, piece_size=2, pieces=[sha(10), sha(11)])])
    add_peer(store, "b", files=[entry("p", n=1, size=3)])
    add_peer(store, "c")
    store.add_pending_copy(sha(1), "p", 3, "a", "c", NOW, NOW + 30)
    detail = store.file_detail(sha(1), LIVE, NOW)
    assert detail["piece_size"] == 2 and detail["pieces"] == [sha(10), sha(11)]
    assert [(p["to_peer_id"], p["from_peer_id"], p["deadline"]) for p in detail["pending"]] == [("c", "a", NOW + 30)]
    store.delete_file("b", sha(1), NOW, withdraw=True)
    assert store.file_detail(sha(1), LIVE, NOW)["withdrawn"] is True
    assert store.file_detail(sha(1), LIVE, NOW + 31)["pending"] == []  # not once expired


def test_a_dead_holder_makes_no_file_detail(store):
    add_peer(store, "a", last_seen=NOW - 100, files=[entry("x", n=1)])
    assert store.file_detail(sha(1), LIVE, NOW) is None
