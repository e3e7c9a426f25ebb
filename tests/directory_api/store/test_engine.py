"""directory_api.store.engine: connections, the four kinds of transaction, dialect hooks."""
import threading

import pytest

from directory_api.store import Store
from directory_api.store.engine import transactional
from tests.directory_api.store.helpers import LIVE, NOW, add_peer
from tests.fixtures.directory import entry


def test_sqlite_pragmas(tmp_path):
    s = Store(f"sqlite:///{tmp_path}/p.db")
    with s.read() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 5000
    s.dispose()


def test_ping(store):
    assert store.ping() is True


def test_a_method_given_conn_runs_in_the_callers_transaction(store):
    add_peer(store, "a")
    with pytest.raises(RuntimeError):
        with store.write() as conn:
            store.end_session("a", 0.0, conn=conn)
            assert store.peer("a", conn=conn)["last_seen"] == 0.0  # seen inside
            raise RuntimeError("roll it back")
    assert store.peer("a")["last_seen"] == NOW  # and undone with the transaction


def test_conn_is_keyword_only(store):
    with store.read() as conn:
        with pytest.raises(TypeError):
            store.peer(conn, "a")


def test_transactional_knows_four_kinds():
    with pytest.raises(ValueError, match="unknown transaction kind"):
        transactional("read_write")


def test_concurrent_writers_do_not_hit_locked_errors(store):
    """Threads renewing leases and re-indexing at once (as gthread workers do) all succeed."""
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
