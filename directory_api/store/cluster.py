"""Coordination of several directory processes through the database they share.

Nothing here is a lock of one process: work that must happen once is claimed in the database.

- ``claim_task``: a periodic job (the sweep, later audits) runs once per interval across every
  process: a process runs it only after moving the task's ``last_run`` forward itself, in one
  conditional UPDATE that a second process, seeing the new value, cannot repeat.
- ``claim_planning``: the same for one holder's planning round (``p2p_peers.planned_at``): two
  heartbeats of one peer that land on two processes plan once.
- On PostgreSQL both first take ``pg_try_advisory_xact_lock``: the loser moves on at once
  instead of queueing on the row lock behind the winner's whole transaction. On SQLite the
  write transaction (BEGIN IMMEDIATE) already admits one writer at a time.
- ``p2p_directory_processes``: every process writes its own clock and the database's, so clock
  skew between processes (leases compare timestamps written by different processes) shows.
"""
from __future__ import annotations

import zlib

from sqlalchemy import bindparam, delete, func, insert, select, text, update
from sqlalchemy.engine import Connection

from .engine import StoreEngine, transactional
from .schema import directory_processes, peers, tasks

# The first key of every advisory lock the directory takes (the second names the work): one
# number of its own, so locks of other programs on the same database never collide with ours.
ADVISORY_CLASS = 7_202_612
_DB_TIME = {
    "postgresql": text("SELECT EXTRACT(EPOCH FROM clock_timestamp())::float8"),
    "sqlite": text("SELECT (julianday('now') - 2440587.5) * 86400.0"),
}
_CLAIM_PLANNING = (
    update(peers)
    .where(peers.c.peer_id == bindparam("pid"), peers.c.planned_at <= bindparam("due_before"))
    .values(planned_at=bindparam("now"))
    .returning(peers.c.peer_id)
)


def advisory_key(name: str) -> int:
    """The second key of the advisory lock for a piece of work (a signed 32-bit number)."""
    return zlib.crc32(name.encode()) - (1 << 31)


class Cluster(StoreEngine):
    """Claims of work that must happen once, and the directory processes' clocks."""

    def try_lock(self, name: str, *, conn: Connection) -> bool:
        """Take the advisory lock of this work for the caller's transaction; False if another
        transaction holds it (SQLite: always True, its write transaction already excludes)."""
        if self.dialect != "postgresql":
            return True
        return bool(conn.execute(text("SELECT pg_try_advisory_xact_lock(:c, :k)"),
                                 {"c": ADVISORY_CLASS, "k": advisory_key(name)}).scalar())

    @transactional("write")
    def claim_task(self, name: str, now: float, every_s: float, by: str = "", *, conn: Connection) -> bool:
        """True if this caller may run the task now: it last ran every_s or more ago (by
        anyone's record) and nobody else is claiming it; the claim is recorded at once."""
        if not self.try_lock(f"task:{name}", conn=conn):
            return False
        conn.execute(self._insert(tasks).values(name=name, last_run=0.0, run_by=None)
                     .on_conflict_do_nothing(index_elements=["name"]))
        claimed = conn.execute(
            update(tasks).where(tasks.c.name == name, tasks.c.last_run <= now - every_s)
            .values(last_run=now, run_by=by[:300]).returning(tasks.c.name)
        ).first()
        return claimed is not None

    @transactional("write")
    def claim_planning(self, peer_id: str, now: float, interval_s: float, *, conn: Connection) -> bool:
        """True if this caller plans peer_id's round now (its last round is interval_s old and
        no other transaction is planning it); moves planned_at to now in the caller's
        transaction, so the claim and the round's copies commit together."""
        if not self.try_lock(f"plan:{peer_id}", conn=conn):
            return False
        row = conn.execute(_CLAIM_PLANNING, {"pid": peer_id, "now": now, "due_before": now - interval_s}).first()
        return row is not None

    @transactional("read_one")
    def database_time(self, *, conn: Connection) -> float:
        """The database server's clock, in seconds since the epoch."""
        return float(conn.execute(_DB_TIME[self.dialect]).scalar())

    @transactional("write")
    def register_process(self, host: str, pid: int, started_at: float, own_time: float, db_time: float,
                         *, conn: Connection) -> int:
        """Record a starting directory process; returns its row id."""
        return conn.execute(
            insert(directory_processes).values(host=host[:255], pid=pid, started_at=started_at, own_time=own_time,
                                               db_time=db_time, skew_s=own_time - db_time)
            .returning(directory_processes.c.id)
        ).scalar()

    @transactional("write")
    def record_process_clock(self, process_id: int, own_time: float, db_time: float, *, conn: Connection) -> bool:
        """Write a process's heartbeat of life: its clock and the database's at that moment.
        False if its row is gone (the sweep forgot it): register again."""
        done = conn.execute(
            update(directory_processes).where(directory_processes.c.id == process_id)
            .values(own_time=own_time, db_time=db_time, skew_s=own_time - db_time)
        ).rowcount
        return bool(done)

    @transactional("write")
    def forget_process(self, process_id: int, *, conn: Connection) -> None:
        """Remove a process's row (it is stopping)."""
        conn.execute(delete(directory_processes).where(directory_processes.c.id == process_id))

    @transactional("write")
    def forget_silent_processes(self, db_time_before: float, *, conn: Connection) -> int:
        """Remove the rows of processes whose last heartbeat of life is older than db_time_before."""
        return conn.execute(delete(directory_processes).where(directory_processes.c.db_time < db_time_before)).rowcount

    @transactional("read")
    def directory_processes(self, db_time_since: float, *, conn: Connection) -> list[dict]:
        """Processes that wrote their clock at or after db_time_since (database time), oldest first:
        id, host, pid, started_at, own_time, db_time, skew_s (own clock minus the database's)."""
        rows = conn.execute(
            select(directory_processes).where(directory_processes.c.db_time >= db_time_since)
            .order_by(directory_processes.c.started_at, directory_processes.c.id)
        )
        return [dict(r._mapping) for r in rows]

    @transactional("read")
    def task_runs(self, *, conn: Connection) -> dict[str, dict]:
        """When each coordinated task last ran and by whom: {name: {last_run, run_by}}."""
        rows = conn.execute(select(tasks.c.name, tasks.c.last_run, tasks.c.run_by))
        return {r.name: {"last_run": r.last_run, "run_by": r.run_by} for r in rows}

    @transactional("read")
    def count_processes(self, *, conn: Connection) -> int:
        """How many directory processes have a row."""
        return conn.execute(select(func.count()).select_from(directory_processes)).scalar()
