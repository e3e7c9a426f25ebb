"""The SQLite write lock: one writer at a time across threads and processes, never forever."""
import multiprocessing
import threading
import time

import pytest

from directory_api.errors import WriteLockTimeout
from directory_api.store.writelock import WriteLock


def _bump(lock: WriteLock, counter, rounds: int) -> None:
    """Read-pause-write a shared counter under the lock: lost updates show a broken lock."""
    for _ in range(rounds):
        with lock:
            value = counter.read_text()
            time.sleep(0.0005)
            counter.write_text(str(int(value) + 1))


@pytest.fixture
def counter(tmp_path):
    path = tmp_path / "counter"
    path.write_text("0")
    return path


def test_threads_take_turns(tmp_path, counter):
    lock = WriteLock(str(tmp_path / "db-writelock"))
    threads = [threading.Thread(target=_bump, args=(lock, counter, 50)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert counter.read_text() == "200"


def test_processes_take_turns_even_with_a_lock_made_before_fork(tmp_path, counter):
    lock = WriteLock(str(tmp_path / "db-writelock"))
    with lock:  # the parent opens its descriptor first; children must not share it
        pass
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_bump, args=(lock, counter, 40)) for _ in range(3)]
    for p in procs:
        p.start()
    _bump(lock, counter, 40)
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert counter.read_text() == "160"


def test_in_memory_database_locks_threads_only():
    lock = WriteLock(None)
    with lock:
        assert not lock._thread_lock.acquire(blocking=False)
    assert lock._thread_lock.acquire(blocking=False)


def test_a_writer_that_never_finishes_times_out_with_a_clear_error(tmp_path):
    lock = WriteLock(str(tmp_path / "db-writelock"), timeout_s=0.2)
    held = threading.Event()
    release = threading.Event()

    def hold():
        with lock:
            held.set()
            release.wait(5)

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait(5)
    try:
        with pytest.raises(WriteLockTimeout, match="locked by another writer for 0.2 s") as info:
            with lock:
                pass
        assert info.value.timeout_s == 0.2
    finally:
        release.set()
        holder.join()
