"""A read of the whole network that the requests of one process share.

Counts over every file (GET /replication, the dashboard's overview, /metrics' figures) are one
pass over p2p_files: a millisecond at a few thousand files, 4-14 s at 1M on SQLite. Made again
for every request, a handful of clients asking in a loop (anyone may) would keep every thread
and both cores busy. So one caller makes the read at a time, and the others get the last answer
meanwhile; and an answer that took at least SLOW_S is kept for SLOW_FACTOR times as long as it
took, so such a read costs at most 1/SLOW_FACTOR of a core however many clients ask. A fast read
is made again on every call (unless the caller asks for a minimum age), so small networks see
every change at once, as before.
"""
from __future__ import annotations

import threading
import time
from typing import Any, Callable

SLOW_S = 0.5  # well above what a read of a small network takes, even on a busy machine
SLOW_FACTOR = 10.0
_NOTHING = object()  # no answer yet


class SharedRead:
    """read() made by one caller at a time; its answer shared as the module docstring says."""

    def __init__(self, read: Callable[[], Any], clock: Callable[[], float] = time.monotonic):
        self.read, self.clock = read, clock
        self._cond = threading.Condition()
        self._busy = False
        self._value: Any = _NOTHING
        self._at = 0.0  # when the answer kept was read
        self._keep_s = 0.0  # how long it may be given out again, from its cost

    def get(self, min_age_s: float = 0.0) -> Any:
        """The answer of read(): the kept one while it is young enough or another caller reads
        again; else a new one (exceptions of read() reach the caller that made it)."""
        with self._cond:
            while True:
                if self._value is not _NOTHING:
                    age = self.clock() - self._at
                    if age < max(min_age_s, self._keep_s) or self._busy:
                        return self._value
                if not self._busy:
                    break
                self._cond.wait()  # the first answer is on its way; the reader's own wait bounds ours
            self._busy = True
        try:
            started = self.clock()
            value = self.read()
            took = self.clock() - started
        except BaseException:
            with self._cond:
                self._busy = False
                self._cond.notify_all()
            raise
        with self._cond:
            self._value, self._at = value, started
            self._keep_s = SLOW_FACTOR * took if took >= SLOW_S else 0.0
            self._busy = False
            self._cond.notify_all()
        return value
