"""directory_api.store.cluster: work claimed once across processes, and the processes' clocks."""
import threading

from directory_api.store import Store
from tests.directory_api.store.helpers import NOW, add_peer
from tests.fixtures.directory import entry, sha


def test_a_task_is_claimed_once_per_interval(store):
    assert store.claim_task("sweep", NOW, 10, by="host:1")
    assert not store.claim_task("sweep", NOW + 5, 10, by="host:2")  # host:1 ran it 5 s ago
    assert store.task_runs()["sweep"] == {"last_run": NOW, "run_by": "host:1"}
    assert store.claim_task("sweep", NOW + 10, 10, by="host:2")
    assert store.claim_task("audit", NOW + 5, 10)  # another task has its own record


def test_two_stores_racing_for_one_task_run_it_once(store):
    """Threads with their own Store (as processes would be) claim the same task at once."""
    stores = [Store(store.url) for _ in range(4)]
    won, barrier = [], threading.Barrier(len(stores))

    def claim(s):
        barrier.wait(5)
        if s.claim_task("race", NOW, 60):
            won.append(s)

    threads = [threading.Thread(target=claim, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(won) == 1
    for s in stores:
        s.dispose()
    assert store.task_runs()["race"]["last_run"] == NOW


def test_planning_rounds_are_claimed_once(store):
    add_peer(store, "a")
    with store.write() as conn:
        assert store.claim_planning("a", NOW, 5, conn=conn)
    with store.write() as conn:
        assert not store.claim_planning("a", NOW + 1, 5, conn=conn)  # planned 1 s ago
    with store.write() as conn:
        assert store.claim_planning("a", NOW + 5, 5, conn=conn)
    with store.write() as conn:
        assert not store.claim_planning("nobody", NOW, 5, conn=conn)


def test_an_uncommitted_claim_keeps_others_out(store):
    """While one transaction plans a holder, another one's claim fails instead of waiting."""
    first, second = store, Store(store.url)
    add_peer(first, "a")
    with first.write() as conn:
        assert first.claim_planning("a", NOW, 5, conn=conn)
        if first.dialect == "postgresql":  # SQLite's second writer would wait for the first
            with second.write() as other:
                assert not second.claim_planning("a", NOW, 5, conn=other)
    with second.write() as other:
        assert not second.claim_planning("a", NOW + 1, 5, conn=other)
    second.dispose()


def test_handouts_race_hands_each_copy_out_once(store):
    """Two heartbeats of one holder answered at once by two processes: each copy goes out once."""
    stores = [store] + [Store(store.url) for _ in range(2)]
    s = store
    add_peer(s, "a", files=[entry(f"f{i}", n=i) for i in range(20)])
    add_peer(s, "b")
    for i in range(20):
        assert s.add_pending_copy(sha(i), f"f{i}", 10, "a", "b", NOW, NOW + 30)
    got, barrier = [], threading.Barrier(len(stores))

    def take(st):
        barrier.wait(5)
        got.extend(st.take_handouts("a", NOW))

    threads = [threading.Thread(target=take, args=(st,)) for st in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(h["sha256"] for h in got) == sorted(sha(i) for i in range(20))
    for st in stores[1:]:
        st.dispose()


def test_process_clocks_are_recorded_and_forgotten(store):
    db_now = store.database_time()
    assert abs(db_now - __import__("time").time()) < 5  # the test machine's clock is the database's
    pid = store.register_process("host-a", 41, db_now - 10, db_now + 2.5, db_now)
    other = store.register_process("host-b", 42, db_now - 5, db_now - 0.25, db_now)
    assert store.record_process_clock(pid, db_now + 3.0, db_now + 1)
    rows = store.directory_processes(db_now - 1)
    assert [(r["host"], r["pid"], r["skew_s"]) for r in rows] == [("host-a", 41, 2.0), ("host-b", 42, -0.25)]
    assert store.forget_silent_processes(db_now + 0.5) == 1  # host-b last wrote at db_now
    store.forget_process(pid)
    assert store.directory_processes(0) == []
    assert not store.record_process_clock(other, db_now, db_now)  # gone: the caller registers again
