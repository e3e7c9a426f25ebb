"""Removals: why peers left the network (lease lapsed, unreachable report, logout), the newest few kept.

They exist for people (the dashboard's "recent removals"): nothing decides anything from them.
"""
from __future__ import annotations

from sqlalchemy import and_, delete, exists, func, literal, select
from sqlalchemy.engine import Connection

from .engine import StoreEngine, transactional
from .schema import peers, removals

LEASE_LAPSED = "lease lapsed"
UNREACHABLE = "unreachable report"
LOGOUT = "logout"
REASONS = (LEASE_LAPSED, UNREACHABLE, LOGOUT)
KEEP = 500  # removals kept; older ones are deleted as new ones come in


class Removals(StoreEngine):
    """Record and read the recent removals."""

    @transactional("write")
    def record_removal(self, peer_id: str, reason: str, at: float, *, conn: Connection) -> None:
        """Record that peer_id left at `at` for reason (one of REASONS)."""
        if reason not in REASONS:
            raise ValueError(f"unknown removal reason {reason!r}")
        conn.execute(self._insert(removals).values(peer_id=peer_id, reason=reason, at=at)
                     .on_conflict_do_nothing(index_elements=["peer_id", "at"]))
        self._trim(conn)

    @transactional("write")
    def record_lapsed(self, live_since: float, lease_s: float, not_before: float, *, conn: Connection) -> int:
        """Record a LEASE_LAPSED removal, at last_seen + lease_s, for each peer whose lease lapsed
        while it still had its token, once; returns how many were new.

        not_before: peers last seen before it are too old to report (the sweep deletes them).
        A logout or an unreachable report already recorded after the peer's last heartbeat wins.
        """
        lapsed_at = (peers.c.last_seen + literal(lease_s)).label("at")
        later = exists().where(removals.c.peer_id == peers.c.peer_id, removals.c.at >= peers.c.last_seen)
        candidates = select(peers.c.peer_id, literal(LEASE_LAPSED).label("reason"), lapsed_at).where(
            and_(peers.c.token_hash.is_not(None), peers.c.last_seen < live_since,
                 peers.c.last_seen >= not_before, ~later)
        )
        stmt = (self._insert(removals).from_select(["peer_id", "reason", "at"], candidates)
                .on_conflict_do_nothing(index_elements=["peer_id", "at"]).returning(removals.c.id))
        added = len(conn.execute(stmt).all())
        if added:
            self._trim(conn)
        return added

    @transactional("read")
    def recent_removals(self, limit: int = 20, *, conn: Connection) -> list[dict]:
        """The newest removals first: peer_id, reason, at."""
        rows = conn.execute(select(removals.c.peer_id, removals.c.reason, removals.c.at)
                            .order_by(removals.c.at.desc(), removals.c.id.desc()).limit(limit))
        return [dict(r._mapping) for r in rows]

    @staticmethod
    def _trim(conn: Connection) -> None:
        newest = conn.execute(select(func.max(removals.c.id))).scalar()
        if newest is not None and newest > KEEP:
            conn.execute(delete(removals).where(removals.c.id <= newest - KEEP))
