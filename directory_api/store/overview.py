"""What operators look at: counts for /metrics and the short lists of the dashboard.

Each is one or two statements bounded by a LIMIT or an index; the per-file counts read the
live peers' index once (the callers cache them for a few seconds).
"""
from __future__ import annotations

from sqlalchemy import Integer, func, select
from sqlalchemy.engine import Connection

from .claims import counted_copies, not_refuted
from .engine import StoreEngine, transactional
from .schema import files, peers, pending


def _per_file(live_since: float):
    """Every sha256 held by a live peer: its name, size and copies as the counting rule counts them."""
    return (
        select(
            files.c.sha256,
            func.min(files.c.name).label("name"),
            func.max(files.c.size).label("size"),
            counted_copies(files.c.proof, files.c.peer_id).label("holders"),
        )
        .select_from(files.join(peers, peers.c.peer_id == files.c.peer_id))
        .where(peers.c.last_seen >= live_since, not_refuted(files.c.proof))
        .group_by(files.c.sha256)
        .subquery()
    )


class Overview(StoreEngine):
    """Counts and short lists over peers, files and pending copies."""

    @transactional("read")
    def overview_counts(self, target: int, live_since: float, now: float, *, conn: Connection) -> dict:
        """live_peers, files (distinct sha256 with a live holder), below_target, copies_in_flight, target."""
        live = conn.execute(select(func.count()).select_from(peers).where(peers.c.last_seen >= live_since)).scalar()
        per_file = _per_file(live_since)
        n_files, below = conn.execute(
            select(func.count(), func.coalesce(func.sum((per_file.c.holders < target).cast(Integer)), 0))
        ).one()
        in_flight = conn.execute(select(func.count()).select_from(pending).where(pending.c.deadline >= now)).scalar()
        return {"live_peers": live, "files": n_files, "below_target": below, "copies_in_flight": in_flight,
                "target": target}

    @transactional("read")
    def live_peer_rows(self, live_since: float, limit: int, *, conn: Connection) -> list[dict]:
        """At most limit live peers, most recently seen first: peer_id, grpc_address, last_seen, files."""
        n_files = select(func.count()).select_from(files).where(files.c.peer_id == peers.c.peer_id)
        rows = conn.execute(
            select(peers.c.peer_id, peers.c.grpc_address, peers.c.last_seen,
                   n_files.scalar_subquery().label("files"))
            .where(peers.c.last_seen >= live_since)
            .order_by(peers.c.last_seen.desc(), peers.c.peer_id)
            .limit(limit)
        )
        return [dict(r._mapping) for r in rows]

    @transactional("read")
    def replication_rows(self, live_since: float, limit: int, *, conn: Connection) -> list[dict]:
        """At most limit files, fewest live holders first: sha256, name, size, holders."""
        per_file = _per_file(live_since)
        rows = conn.execute(
            select(per_file).order_by(per_file.c.holders, per_file.c.name, per_file.c.sha256).limit(limit)
        )
        return [dict(r._mapping) for r in rows]

    @transactional("read")
    def copies_in_flight(self, now: float, limit: int, *, conn: Connection) -> list[dict]:
        """At most limit unexpired pending copies, oldest first: sha256, name, from/to peer, created_at,
        deadline, handed_at."""
        rows = conn.execute(
            select(pending.c.sha256, pending.c.name, pending.c.from_peer_id, pending.c.to_peer_id,
                   pending.c.created_at, pending.c.deadline, pending.c.handed_at)
            .where(pending.c.deadline >= now)
            .order_by(pending.c.created_at, pending.c.sha256, pending.c.to_peer_id)
            .limit(limit)
        )
        return [dict(r._mapping) for r in rows]
