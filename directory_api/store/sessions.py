"""Peers and their sessions: registration, secrets, tokens and leases.

The heartbeat path runs here thousands of times a second: its statements are built once, and a
heartbeat with no work is a single statement.
"""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import BigInteger, Boolean, bindparam, case, delete, exists, func, select, update
from sqlalchemy.engine import Connection

from .copies import cancel_copies_of
from .engine import transactional
from .publish import Publish
from .ring import ring_key
from .schema import (audits, dropped, failed_pushes, files, peers, pending, publications, staged_files,
                     verify_orders, withdrawn)


@dataclass(frozen=True)
class PeerSession:
    """What a successful heartbeat learns about the peer in one round trip."""

    peer_id: str
    planned_at: float
    has_handouts: bool = False  # copies planned for this peer to push wait to be handed out


# The heartbeat path runs these thousands of times a second: build them once, not per call.
_AUTHENTICATE = select(peers.c.peer_id).where(
    peers.c.token_hash == bindparam("th"), peers.c.last_seen >= bindparam("ls")
)
_RENEW: dict[tuple[bool, bool], object] = {}
_RENEW_BATCHED = (
    update(peers)
    .where(peers.c.peer_id == bindparam("pid"), peers.c.token_hash == bindparam("th"),
           peers.c.last_seen < bindparam("now"))
    .values(
        last_seen=bindparam("now"),
        free_bytes=case((bindparam("set_free", type_=Boolean), bindparam("free", type_=BigInteger)),
                        else_=peers.c.free_bytes),
        accept_uploads=func.coalesce(bindparam("acc", type_=Boolean), peers.c.accept_uploads),
    )
)
# Asked in the heartbeat's own UPDATE, so a heartbeat with no work is a single statement.
_HAS_HANDOUTS_OF_RENEWED = (
    exists()
    .where(pending.c.from_peer_id == peers.c.peer_id, pending.c.handed_at.is_(None),
           pending.c.deadline >= bindparam("now"))
    .label("has_handouts")
)
_LEASE_SESSION = select(peers.c.peer_id, peers.c.planned_at, _HAS_HANDOUTS_OF_RENEWED).where(
    peers.c.token_hash == bindparam("th"), peers.c.last_seen >= bindparam("ls")
)


def _renew_statement(set_free: bool, set_accept: bool):
    key = (set_free, set_accept)
    if key not in _RENEW:
        values = {"last_seen": bindparam("now")}
        if set_free:
            values["free_bytes"] = bindparam("free")
        if set_accept:
            values["accept_uploads"] = bindparam("acc")
        _RENEW[key] = (
            update(peers)
            .where(peers.c.token_hash == bindparam("th"), peers.c.last_seen >= bindparam("ls"))
            .values(**values)
            .returning(peers.c.peer_id, peers.c.planned_at, _HAS_HANDOUTS_OF_RENEWED)
        )
    return _RENEW[key]


_REAP_BATCH = 500  # peer_ids an IN list of the sweep's deletes holds


class Sessions(Publish):
    """Peers, secrets, tokens and leases (a new session replaces the peer's index when given one)."""

    @transactional("read")
    def secret_hash(self, peer_id: str, *, conn: Connection) -> str | None:
        """The stored secret hash of peer_id, or None if it never registered."""
        return conn.execute(select(peers.c.secret_hash).where(peers.c.peer_id == peer_id)).scalar()

    @transactional("write")
    def register_peer(self, peer_id: str, secret_hash: str, now: float, *, conn: Connection) -> bool:
        """Insert a new peer; False (and nothing changes) if peer_id is already taken."""
        stmt = self._insert(peers).values(
            peer_id=peer_id, secret_hash=secret_hash, grpc_address="", last_seen=0.0, registered_at=now,
            ring=ring_key(peer_id),
        )
        # RETURNING, not rowcount: psycopg reports no rowcount for INSERT ... ON CONFLICT.
        stmt = stmt.on_conflict_do_nothing(index_elements=["peer_id"]).returning(peers.c.peer_id)
        return conn.execute(stmt).first() is not None

    @transactional("write")
    def start_session(
        self,
        peer_id: str,
        token_hash: str,
        grpc_address: str,
        now: float,
        accept_uploads: bool = True,
        free_bytes: int | None = None,
        files_: list[dict] | None = None,
        *,
        conn: Connection,
    ) -> None:
        """Make peer_id live with a new token (the old one dies); replace its index if files_ given.

        Copies it was to send or receive are cancelled: a new session is a new process, so
        any transfer of the old one is gone, and the copy may be planned again at once.
        """
        conn.execute(
            update(peers)
            .where(peers.c.peer_id == peer_id)
            .values(
                token_hash=token_hash,
                grpc_address=grpc_address,
                last_seen=now,
                accept_uploads=accept_uploads,
                free_bytes=free_bytes,
                planned_at=0.0,
            )
        )
        cancel_copies_of(peer_id, conn=conn)
        # An index sent with login is the session's first; without one, the first commit of a
        # paged publication takes that place (neither records anything as dropped).
        self._reset_publication(peer_id, fresh=files_ is None, conn=conn)
        if files_ is not None:
            self.replace_files(peer_id, files_, conn=conn)

    @transactional("read_one")
    def authenticate(self, token_hash: str, live_since: float, *, conn: Connection) -> str | None:
        """The live peer owning this token hash, or None."""
        return conn.execute(_AUTHENTICATE, {"th": token_hash, "ls": live_since}).scalar()

    @transactional("write_one")
    def renew_lease(
        self,
        token_hash: str,
        live_since: float,
        now: float,
        free_bytes: int | None = None,
        accept_uploads: bool | None = None,
        set_free_bytes: bool = False,
        *,
        conn: Connection,
    ) -> PeerSession | None:
        """Heartbeat: one UPDATE that renews a live token's lease and tells whether copies wait
        to be handed out; None if the token is dead."""
        params = {"th": token_hash, "ls": live_since, "now": now, "free": free_bytes, "acc": accept_uploads}
        row = conn.execute(_renew_statement(set_free_bytes, accept_uploads is not None), params).first()
        return PeerSession(row.peer_id, row.planned_at, bool(row.has_handouts)) if row else None

    @transactional("read_one")
    def lease_session(self, token_hash: str, live_since: float, now: float, *, conn: Connection) -> PeerSession | None:
        """The session of a live token, as renew_lease answers it, without writing; None if dead."""
        row = conn.execute(_LEASE_SESSION, {"th": token_hash, "ls": live_since, "now": now}).first()
        return PeerSession(row.peer_id, row.planned_at, bool(row.has_handouts)) if row else None

    @transactional("write")
    def renew_leases(self, renewals: list[dict], *, conn: Connection) -> None:
        """Write many heartbeats in one transaction: {pid, th, now, free, set_free, acc} each.

        A renewal applies only while the peer still has that token (a logout, a death or a new
        login in between wins) and never moves last_seen back.
        """
        if renewals:
            conn.execute(_RENEW_BATCHED, renewals)

    @transactional("write")
    def mark_planned(self, peer_id: str, now: float, *, conn: Connection) -> None:
        """Remember when this holder's files were last checked for replication."""
        conn.execute(update(peers).where(peers.c.peer_id == peer_id).values(planned_at=now))

    @transactional("write")
    def end_session(self, peer_id: str, dead_at: float, *, conn: Connection) -> None:
        """Log a peer out or mark it dead: its token dies, last_seen moves to dead_at,
        and the copies it was to send or receive are cancelled."""
        conn.execute(update(peers).where(peers.c.peer_id == peer_id).values(token_hash=None, last_seen=dead_at))
        cancel_copies_of(peer_id, conn=conn)

    @transactional("read")
    def peer(self, peer_id: str, *, conn: Connection) -> dict | None:
        """One peer's public row (peer_id, grpc_address, last_seen, accept_uploads, free_bytes)."""
        row = conn.execute(
            select(
                peers.c.peer_id, peers.c.grpc_address, peers.c.last_seen, peers.c.accept_uploads, peers.c.free_bytes
            ).where(peers.c.peer_id == peer_id)
        ).first()
        return dict(row._mapping) if row else None

    @transactional("read")
    def live_peers(self, live_since: float, *, conn: Connection) -> list[dict]:
        """Every live peer with the number of files it indexed, ordered by peer_id."""
        # Correlated count: only live peers' files are counted, each through the peer_id index.
        n_files = select(func.count()).select_from(files).where(files.c.peer_id == peers.c.peer_id)
        rows = conn.execute(
            select(
                peers.c.peer_id,
                peers.c.grpc_address,
                peers.c.last_seen,
                peers.c.accept_uploads,
                peers.c.free_bytes,
                n_files.scalar_subquery().label("files"),
            )
            .where(peers.c.last_seen >= live_since)
            .order_by(peers.c.peer_id)
        )
        return [dict(r._mapping) for r in rows]

    @transactional("write")
    def reap_dead_peers(self, dead_before: float, *, conn: Connection) -> int:
        """Forget what peers last seen before dead_before ran: token, index, copies, publication.

        Their rows stay, with the secret hash: a registered peer_id is its owner's until an
        operator releases it (forget_peer), or anyone could take over a name by waiting. A
        reaped peer's last_seen becomes 0, so later sweeps pass it by. Returns how many were reaped.
        """
        ids = conn.execute(select(peers.c.peer_id).where(peers.c.last_seen < dead_before,
                                                         peers.c.last_seen > 0)).scalars().all()
        for at in range(0, len(ids), _REAP_BATCH):
            chunk = ids[at:at + _REAP_BATCH]
            conn.execute(delete(pending).where(pending.c.from_peer_id.in_(chunk) | pending.c.to_peer_id.in_(chunk)))
            conn.execute(delete(audits).where(audits.c.target_peer_id.in_(chunk) | audits.c.auditor_peer_id.in_(chunk)))
            for table in (verify_orders, failed_pushes):
                conn.execute(delete(table).where(table.c.peer_id.in_(chunk)))
            for table in (files, dropped, staged_files, publications):
                conn.execute(delete(table).where(table.c.peer_id.in_(chunk)))
            conn.execute(update(peers).where(peers.c.peer_id.in_(chunk))
                         .values(token_hash=None, last_seen=0.0, free_bytes=None, planned_at=0.0))
        # A withdrawal is forgotten once nobody indexes that sha256 any more.
        conn.execute(delete(withdrawn).where(~exists().where(files.c.sha256 == withdrawn.c.sha256)))
        conn.execute(delete(dropped).where(~exists().where(files.c.sha256 == dropped.c.sha256)))
        return len(ids)

    @transactional("write")
    def forget_peer(self, peer_id: str, *, conn: Connection) -> bool:
        """Delete peer_id with its secret, sessions, index and copies (the operator's release); False if unknown."""
        return conn.execute(delete(peers).where(peers.c.peer_id == peer_id)).rowcount > 0
