"""One writer at a time on a SQLite database, queued instead of polled.

SQLite allows one write transaction per database. A second writer does not wait in a queue:
its busy handler sleeps and retries (1, 2, 5, 10 ... 100 ms), so under a burst of heartbeats
from 2 gunicorn workers x 8 threads most of them sleep while the lock is already free again,
and the slowest wait hundreds of milliseconds for a transaction that takes a tenth of one.
Taking this lock before BEGIN IMMEDIATE turns that into a queue: threads of one process wait
on a ``threading.Lock``, processes on one host on ``flock`` of a file beside the database;
both wake the next waiter the moment the holder releases.

Writers that do not take it (another program, ``sqlite3`` by hand) still meet SQLite's own
busy timeout, so correctness never depends on this lock: only waiting does.
"""
from __future__ import annotations

import fcntl
import os
import threading

from ..errors import WriteLockTimeout


class WriteLock:
    """A context manager that admits one writer of this host to a SQLite database at a time."""

    def __init__(self, lock_path: str | None, timeout_s: float = 30.0):
        """lock_path: a file beside the database (None for an in-memory database: threads only)."""
        self.lock_path = lock_path
        self.timeout_s = timeout_s
        self._thread_lock = threading.Lock()
        self._fd: int | None = None
        self._fd_pid: int | None = None

    def _file(self) -> int | None:
        # flock belongs to an open file description: a descriptor inherited through fork()
        # (gunicorn --preload) would be shared by parent and child and exclude neither, so
        # each process opens its own.
        if self.lock_path is None:
            return None
        if self._fd is None or self._fd_pid != os.getpid():
            self._fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            self._fd_pid = os.getpid()
        return self._fd

    def __enter__(self) -> "WriteLock":
        if not self._thread_lock.acquire(timeout=self.timeout_s):
            raise WriteLockTimeout(self.timeout_s)
        try:
            fd = self._file()
            if fd is not None:
                # Other processes hold it only for one short transaction each; blocking here
                # releases the GIL and wakes as soon as the holder unlocks.
                fcntl.flock(fd, fcntl.LOCK_EX)
        except BaseException:
            self._thread_lock.release()
            raise
        return self

    def __exit__(self, *exc) -> None:
        try:
            if self._fd is not None and self._fd_pid == os.getpid():
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._thread_lock.release()

    def close(self) -> None:
        """Close this process's lock file descriptor."""
        if self._fd is not None and self._fd_pid == os.getpid():
            os.close(self._fd)
        self._fd = self._fd_pid = None
