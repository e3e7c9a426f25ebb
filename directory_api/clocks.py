"""Clock skew between directory processes, detected through the database they share.

Leases compare timestamps that different processes wrote (one renews, another searches), so
all of them must share a clock. Each process therefore writes a heartbeat of life into
``p2p_directory_processes``: its host, pid, start, its own clock and the database's clock at
that moment. The database's clock is the common reference: a process whose own clock is more
than ``SKEW_LIMIT_S`` away from it says so in the log, once when it goes wrong and once when it
is right again. On SQLite (one host, one clock) the skew is 0 within the measurement's error,
through the same code.

``current_processes`` is what metrics and the dashboard read: the processes that beat
recently, each with its skew.
"""
from __future__ import annotations

import logging
import os
import socket
import time

from .liveness import _Periodic
from .store import Store

log = logging.getLogger(__name__)

SKEW_LIMIT_S = 1.0


def measure_skew(store: Store, clock=time.time) -> tuple[float, float]:
    """(own time, database time) at one moment: the own clock read halfway through the round trip."""
    sent = clock()
    db_time = store.database_time()
    received = clock()
    return (sent + received) / 2, db_time


class ClockWatch(_Periodic):
    """This process's heartbeat of life, every interval_s, and the log line on a skew change."""

    def __init__(self, store: Store, interval_s: float = 5.0, clock=time.time, host: str | None = None,
                 pid: int | None = None, limit_s: float = SKEW_LIMIT_S):
        """Prepare (not start) the thread; clock is the one liveness uses (injectable)."""
        super().__init__("p2p-clock-watch", interval_s)
        self.store, self.clock, self.limit_s = store, clock, limit_s
        self.host, self.pid = host or socket.gethostname(), os.getpid() if pid is None else pid
        self.started_at = clock()
        self.process_id: int | None = None
        self.skew_s: float | None = None
        self.skewed = False

    @property
    def name(self) -> str:
        """host:pid of this process."""
        return f"{self.host}:{self.pid}"

    def start(self) -> "ClockWatch":
        """Register this process (first beat at once), then beat every interval in the background."""
        try:
            self.beat()
        except Exception:  # the database may be restarting: the thread registers later
            log.exception("could not register this directory process; will retry")
        return super().start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop beating and remove this process's row."""
        super().stop(timeout)
        if self.process_id is not None:
            try:
                self.store.forget_process(self.process_id)
            except Exception:
                log.warning("could not remove this directory process's row; the sweep will")
            self.process_id = None

    def beat(self) -> float:
        """Write this process's clock beside the database's; log a change of state; returns the skew."""
        own, db_time = measure_skew(self.store, self.clock)
        if self.process_id is None or not self.store.record_process_clock(self.process_id, own, db_time):
            self.process_id = self.store.register_process(self.host, self.pid, self.started_at, own, db_time)
        self.skew_s = own - db_time
        skewed = abs(self.skew_s) > self.limit_s
        if skewed != self.skewed:
            if skewed:
                log.warning("clock skew: this process (%s) is %+.3f s off the database's clock (limit %.1f s); "
                            "leases need one clock: check NTP on this host", self.name, self.skew_s, self.limit_s)
            else:
                log.info("clock skew: this process (%s) is back within %.1f s of the database's clock (%+.3f s)",
                         self.name, self.limit_s, self.skew_s)
            self.skewed = skewed
        return self.skew_s

    def tick(self) -> None:
        """One heartbeat of life."""
        self.beat()


def current_processes(store: Store, within_s: float = 30.0, limit_s: float = SKEW_LIMIT_S) -> list[dict]:
    """The directory processes that beat within the last within_s seconds (database time), each
    {host, pid, started_at, own_time, db_time, skew_s, skewed, age_s}, oldest first."""
    now = store.database_time()
    found = []
    for row in store.directory_processes(now - within_s):
        row["skewed"] = abs(row["skew_s"]) > limit_s
        row["age_s"] = max(0.0, now - row["db_time"])
        found.append(row)
    return found


def spread(processes: list[dict]) -> float:
    """The largest difference between two processes' skews (0 for fewer than two)."""
    skews = [p["skew_s"] for p in processes]
    return max(skews) - min(skews) if len(skews) > 1 else 0.0
