"""directory_api.store against SQLite and PostgreSQL."""
import time

import pytest

from directory_api.store import CursorError, decode_cursor, encode_cursor
from tests.fixtures.directory import entry, sha

NOW = 1_000_000.0
LIVE = NOW - 10  # live_since used by most tests: anyone seen at NOW is live


def add_peer(store, peer_id, last_seen=NOW, files=(), token=None, **kw):
    assert store.register_peer(peer_id, "hash", last_seen)
    store.start_session(peer_id, token or f"tok-{peer_id}", f"127.0.0.1:{len(peer_id) + 9000}", last_seen,
                        files_=list(files), **kw)


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


def test_renew_lease_updates_only_given_fields(store):
    add_peer(store, "a", token="t", free_bytes=100, accept_uploads=True)
    session = store.renew_lease("t", LIVE, NOW + 5, accept_uploads=False)
    assert session.peer_id == "a"
    row = store.peer("a")
    assert row["last_seen"] == NOW + 5 and row["accept_uploads"] is False and row["free_bytes"] == 100
    store.renew_lease("t", LIVE, NOW + 6, free_bytes=None, set_free_bytes=True)
    assert store.peer("a")["free_bytes"] is None
    assert store.renew_lease("t", NOW + 100, NOW + 7) is None  # expired token renews nothing


def test_end_session(store):
    add_peer(store, "a", token="t", files=[entry("x")])
    store.end_session("a", 0.0)
    assert store.authenticate("t", LIVE) is None
    assert store.search("", LIVE, 10)["results"] == []
    assert store.live_peers(LIVE) == []


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
    add_peer(store, "a", files=[entry("p", size=3, piece_size=2, pieces=[sha(1), sha(2)])])
    assert store.peer_files("a")[0]["pieces"] == [sha(1), sha(2)]
    detail = store.file_detail(sha("p"), LIVE, NOW)
    assert detail["piece_size"] == 2 and detail["pieces"] == [sha(1), sha(2)]


@pytest.mark.parametrize("query,expected", [
    ("hello", {"Hello World.mp3", "say-hello.txt"}),
    ("HELLO", {"Hello World.mp3", "say-hello.txt"}),
    ("o wor", {"Hello World.mp3"}),
    ("ll", set()),          # short queries match prefixes only
    ("sa", {"say-hello.txt"}),
    ("100%", {"100% pure.ogg"}),
    ("_", set()),            # LIKE wildcards are literal
    ("", {"Hello World.mp3", "say-hello.txt", "100% pure.ogg"}),
    ("nothing", set()),
])
def test_search_substring_and_prefix(store, query, expected):
    add_peer(store, "a", files=[entry("Hello World.mp3"), entry("say-hello.txt"), entry("100% pure.ogg")])
    assert {r["name"] for r in store.search(query, LIVE, 50)["results"]} == expected


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


def test_cursor_round_trip_and_rejects_junk():
    assert decode_cursor(encode_cursor(1234)) == 1234
    for junk in ["", "abc", "!!!", encode_cursor(1)[:-2] + "zz"]:
        with pytest.raises(CursorError):
            decode_cursor(junk)


def test_live_peers_counts_files(store):
    add_peer(store, "a", files=[entry("x"), entry("y")], free_bytes=7)
    add_peer(store, "b")
    add_peer(store, "gone", last_seen=NOW - 100)
    peers = {p["peer_id"]: p for p in store.live_peers(LIVE)}
    assert set(peers) == {"a", "b"}
    assert peers["a"]["files"] == 2 and peers["a"]["free_bytes"] == 7 and peers["b"]["files"] == 0


def test_file_detail(store):
    add_peer(store, "a", files=[entry("x", n=1), entry("x2", n=1)])
    add_peer(store, "b", files=[entry("y", n=1)])
    detail = store.file_detail(sha(1), LIVE, NOW)
    assert detail["names"] == ["x", "x2", "y"]
    assert [h["peer_id"] for h in detail["holders"]] == ["a", "b"]
    assert store.file_detail(sha(2), LIVE, NOW) is None


def test_pending_copy_is_unique_and_completes_on_index(store):
    add_peer(store, "a", files=[entry("x", n=1)])
    add_peer(store, "b")
    assert store.add_pending_copy(sha(1), "x", 10, "a", "b", NOW, NOW + 30)
    assert not store.add_pending_copy(sha(1), "x", 10, "a", "b", NOW, NOW + 30)  # already planned
    handouts = store.take_handouts("a", NOW)
    assert handouts == [{"sha256": sha(1), "name": "x", "to_peer_id": "b",
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


def test_under_replicated_and_candidates(store):
    add_peer(store, "a", files=[entry("x", n=1), entry("y", n=2)])
    add_peer(store, "b", files=[entry("y", n=2)])
    add_peer(store, "c", accept_uploads=False)
    add_peer(store, "d", free_bytes=5)
    short = store.under_replicated_for_holder("a", 2, LIVE, NOW, 10)
    assert [(s["sha256"], s["live_holders"], s["need"]) for s in short] == [(sha(1), 1, 1)]
    cands = {c["peer_id"]: c for c in store.backup_candidates(sha(1), LIVE, NOW)}
    assert set(cands) == {"b", "d"}  # c refuses uploads, a holds it
    assert cands["d"]["free_bytes"] == 5 and cands["b"]["pending"] == 0
    store.add_pending_copy(sha(1), "x", 10, "a", "b", NOW, NOW + 30)
    assert store.under_replicated_for_holder("a", 2, LIVE, NOW, 10) == []
    assert set(c["peer_id"] for c in store.backup_candidates(sha(1), LIVE, NOW)) == {"d"}


def test_replication_counts(store):
    add_peer(store, "a", files=[entry("x", n=1), entry("y", n=2), entry("z", n=3)])
    add_peer(store, "b", files=[entry("y", n=2), entry("z", n=3)])
    add_peer(store, "c", files=[entry("z", n=3)], accept_uploads=False)
    counts = store.replication_counts(2, LIVE, NOW, 4)
    assert counts == {"target": 2, "files_total": 3, "at_target": 1, "below_target": 1, "above_target": 1,
                      "pending_copies": 0, "unplaceable": 1, "withdrawn": 0}  # only c is left for x; it refuses


def test_delete_dead_peers_cascades(store):
    add_peer(store, "old", last_seen=NOW - 1000, files=[entry("x", n=1)])
    add_peer(store, "a", files=[entry("y", n=2)])
    store.add_pending_copy(sha(2), "y", 10, "a", "old", NOW, NOW + 30)
    assert store.delete_dead_peers(NOW - 500) == 1
    assert store.peer("old") is None and store.pending_for(sha(2), NOW) == []
    assert store.search("", 0, 10)["results"][0]["sha256"] == sha(2)


def test_bulk_seed_then_search(store):
    now = time.time()
    peers = ({"peer_id": f"p{i}", "grpc_address": f"127.0.0.1:{2000 + i}", "last_seen": now} for i in range(20))
    files = ({"peer_id": f"p{i % 20}", "name": f"dir/file-{i:05}.bin", "sha256": sha(i), "size": i}
             for i in range(2000))
    assert store.bulk_seed(peers, files, batch=500) == (20, 2000)
    page = store.search("file-0199", now - 10, 50)
    assert [r["name"] for r in page["results"]] == [f"dir/file-0199{d}.bin" for d in range(10)]
    # the name index stays in sync after seeding
    store.upsert_files("p0", [entry("fresh-name.bin", n="fresh")])
    assert store.search("fresh-nam", now - 10, 5)["results"][0]["name"] == "fresh-name.bin"


def test_concurrent_plans_of_one_copy_conflict(store):
    """Two transactions (as in two directory processes) insert the same copy: one wins."""
    import threading

    add_peer(store, "a", files=[entry("x", n=1)])
    add_peer(store, "b")
    results = {}
    with store.write() as conn:
        assert store.add_pending_copy(sha(1), "x", 10, "a", "b", NOW, NOW + 30, conn=conn)

        def other():
            results["second"] = store.add_pending_copy(sha(1), "x", 10, "a", "b", NOW, NOW + 30)

        thread = threading.Thread(target=other)
        thread.start()
        time.sleep(0.3)  # the second insert now waits for the first transaction
        assert "second" not in results
    thread.join(10)
    assert results == {"second": False}
    assert len(store.pending_for(sha(1), NOW)) == 1


def test_withdraw_stops_planning_until_the_peer_shares_again(store):
    add_peer(store, "a", files=[entry("x", n=1)])
    add_peer(store, "b", files=[entry("x", n=1)])
    add_peer(store, "c")
    store.add_pending_copy(sha(1), "x", 10, "b", "c", NOW, NOW + 30)
    assert store.delete_file("a", sha(1), NOW, withdraw=True) == 1
    assert store.is_withdrawn(sha(1)) and store.pending_for(sha(1), NOW) == []
    assert [f["name"] for f in store.peer_files("b")] == ["x"]  # b's own record is untouched
    assert store.under_replicated_for_holder("b", 3, LIVE, NOW, 10) == []
    assert store.replication_counts(3, LIVE, NOW, 4)["withdrawn"] == 1
    store.upsert_files("a", [entry("x again", n=1)])
    assert not store.is_withdrawn(sha(1))
    assert store.under_replicated_for_holder("b", 3, LIVE, NOW, 10)[0]["need"] == 1


def test_sweep_forgets_withdrawals_of_vanished_files(store):
    add_peer(store, "a", files=[entry("x", n=1)])
    store.delete_file("a", sha(1), NOW, withdraw=True)
    assert store.is_withdrawn(sha(1))
    store.delete_dead_peers(0.0)
    assert not store.is_withdrawn(sha(1))


def test_sqlite_pragmas(tmp_path):
    from directory_api.store import Store

    s = Store(f"sqlite:///{tmp_path}/p.db")
    with s.read() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 5000
    s.dispose()


def test_concurrent_writers_do_not_hit_locked_errors(store):
    """Threads renewing leases and re-indexing at once (as gthread workers do) all succeed."""
    import threading

    for i in range(4):
        add_peer(store, f"p{i}", token=f"t{i}")
    errors = []

    def work(i):
        try:
            for n in range(15):
                assert store.renew_lease(f"t{i}", LIVE, NOW + n) is not None
                store.upsert_files(f"p{i}", [entry(f"p{i}-{n}", n=f"{i}-{n}")])
                store.search("p", LIVE, 5)
        except Exception as exc:  # collected, so the failure names the thread's error
            errors.append(repr(exc))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert len(store.search("", LIVE, 200)["results"]) == 60
