"""Pending copies, withdrawals and drops: what replication planning asks and records.

Backup eligibility is decided here once (``backup_eligible``), as one SQL condition used both
by the planner (``backup_candidates``) and by the summary (``replication_counts``), so the
"unplaceable" figure can never contradict what the planner does.

The planner does not test every live peer: ``backup_candidates(sample=K)`` applies the rule to
the K live peers that accept uploads and follow the file's place on the placement ring
(``store.ring``, served by the index on ``p2p_peers.ring``), a window at a time until enough are
eligible or ``max_windows`` windows were tried. A planning round then costs the same at 10,000
peers as at 100. A file for which no peer in those windows is eligible stays short this round
while the summary may still count it placeable (some peer far along the ring could take it);
both use the same rule, on different sets of peers.
"""
from __future__ import annotations

from sqlalchemy import Float, Integer, and_, bindparam, case, cast, delete, exists, func, select, update
from sqlalchemy.engine import Connection

from .claims import counted_copies, counted_copies_of, not_refuted
from .engine import StoreEngine, transactional
from .ring import file_place
from .schema import dropped, failed_pushes, files, peers, pending, withdrawn

FAILED_PUSH_MEMORY_S = 900.0  # a source whose push failed is passed over this long (p2p_failed_pushes)


def cancel_copies_of(peer_id: str, *, conn: Connection, sha256: str | None = None) -> int:
    """Delete the pending copies peer_id was to send or receive (of sha256 only, if given)."""
    cancel = (pending.c.from_peer_id == peer_id) | (pending.c.to_peer_id == peer_id)
    if sha256 is not None:
        cancel = (pending.c.sha256 == sha256) & cancel
    return conn.execute(delete(pending).where(cancel)).rowcount


def _awaited_by_peer(now: float):
    # Unexpired copies the peer of the enclosing query awaits (served by p2p_pending_to).
    return pending.c.to_peer_id == peers.c.peer_id, pending.c.deadline >= now


def awaited_copies(now: float):
    """Correlated to peers: how many unexpired copies that peer awaits."""
    return select(func.count()).select_from(pending).where(*_awaited_by_peer(now)).scalar_subquery()


def reserved_bytes(now: float):
    """Correlated to peers: the bytes of the unexpired copies that peer awaits, as a REAL.

    Sizes go up to 2^63-1, so two of them overflow an int64 SUM (SQLite then fails the whole
    statement with "integer overflow", and with it every planning round in the network). The sum
    is only compared and shown, so it is added as a REAL, which cannot overflow; it is exact up to
    2^53 bytes (8 PiB), far beyond any disk.
    """
    return (
        select(func.coalesce(func.sum(cast(pending.c.size, Float)), 0.0))
        .where(*_awaited_by_peer(now)).scalar_subquery()
    )


def backup_eligible(sha256, size, live_since: float, now: float, max_pending: int):
    """The one rule for who may receive a copy of sha256 (size bytes), as a condition on peers.

    A backup is live, accepts uploads, neither holds, awaits nor dropped sha256, has room
    (free_bytes unknown, or free_bytes minus the bytes of the copies it awaits is at least
    size) and awaits fewer than max_pending copies. sha256 and size are values, or columns
    of an enclosing query; every argument may be a bindparam (the planner's statements are
    built once, see _CANDIDATES).
    """
    # Each inner query correlates everything but its own table: sha256 may be a column of a
    # query two levels up (replication_counts), which auto-correlation would not reach.
    return and_(
        peers.c.last_seen >= live_since,
        peers.c.accept_uploads.is_(True),
        ~exists().where(files.c.peer_id == peers.c.peer_id, files.c.sha256 == sha256).correlate_except(files),
        ~exists().where(pending.c.to_peer_id == peers.c.peer_id, pending.c.sha256 == sha256)
        .correlate_except(pending),
        ~exists().where(dropped.c.peer_id == peers.c.peer_id, dropped.c.sha256 == sha256)
        .correlate_except(dropped),
        # free_bytes - size cannot overflow (both are 0..2^63-1); the reserved sum is a REAL.
        peers.c.free_bytes.is_(None) | (peers.c.free_bytes - size >= reserved_bytes(now)),
        awaited_copies(now) < max_pending,
    )


def live_holders_of(sha_column, live_since: float):
    """Correlated to sha_column: how many distinct live peers index that sha256."""
    f2 = files.alias()
    return (
        select(func.count(func.distinct(f2.c.peer_id)))
        .select_from(f2.join(peers, peers.c.peer_id == f2.c.peer_id))
        .where(f2.c.sha256 == sha_column, peers.c.last_seen >= live_since)
        .scalar_subquery()
    )


_to = peers.alias("to")
# Handing out is one UPDATE ... RETURNING: of two processes answering two heartbeats of one
# holder at once, the second waits for the first's row locks, then finds handed_at set.
_HANDOUTS = (
    update(pending)
    .where(pending.c.from_peer_id == bindparam("src"), pending.c.handed_at.is_(None),
           pending.c.deadline >= bindparam("now"))
    .values(handed_at=bindparam("now"))
    .returning(pending.c.sha256, pending.c.name, pending.c.to_peer_id, pending.c.size,
               select(_to.c.grpc_address).where(_to.c.peer_id == pending.c.to_peer_id)
               .scalar_subquery().label("to_address"))
)


def handouts_statement():
    """The statement take_handouts runs (for EXPLAIN in the benchmark report)."""
    return _HANDOUTS


_ring = peers.alias("ring_window")
# One window of the ring: the next :k live peers that accept uploads, from place :place on.
_RING_WINDOW = (
    select(_ring.c.peer_id, _ring.c.ring)
    .where(_ring.c.ring >= bindparam("place"), _ring.c.last_seen >= bindparam("ls"),
           _ring.c.accept_uploads.is_(True))
    .order_by(_ring.c.ring)
    .limit(bindparam("k"))
)


def sample_statement():
    """The ring window backup_candidates reads (for EXPLAIN in the benchmark report)."""
    return _RING_WINDOW


def _candidates(restricted: bool):
    """backup_candidates' statement, built once: building the rule's expression per call cost
    more than the database's work on a window of 32 peers."""
    now = bindparam("now")
    eligible = backup_eligible(bindparam("sha"), bindparam("size"), bindparam("ls"), now, bindparam("max_pending"))
    query = select(peers.c.peer_id, peers.c.grpc_address, peers.c.free_bytes,
                   awaited_copies(now).label("pending"), reserved_bytes(now).label("reserved")).where(eligible)
    if restricted:
        query = query.where(peers.c.peer_id.in_(bindparam("ids", expanding=True)))
    return query.order_by(peers.c.peer_id)


_CANDIDATES = {restricted: _candidates(restricted) for restricted in (False, True)}


class Copies(StoreEngine):
    """Queries and changes of pending copies, withdrawals and the replication summary."""

    @transactional("read")
    def is_withdrawn(self, sha256: str, *, conn: Connection) -> bool:
        """True if sha256 was withdrawn from replication."""
        return conn.execute(select(withdrawn.c.sha256).where(withdrawn.c.sha256 == sha256)).first() is not None

    @transactional("read")
    def pending_for(self, sha256: str, now: float, *, conn: Connection) -> list[dict]:
        """Unexpired pending copies of one sha256."""
        to = peers.alias("to")
        rows = conn.execute(
            select(pending.c.to_peer_id, to.c.grpc_address.label("to_address"), pending.c.from_peer_id,
                   pending.c.deadline, pending.c.handed_at)
            .select_from(pending.join(to, to.c.peer_id == pending.c.to_peer_id))
            .where(pending.c.sha256 == sha256, pending.c.deadline >= now)
            .order_by(pending.c.to_peer_id)
        )
        return [dict(r._mapping) for r in rows]

    @transactional("write")
    def drop_expired_copies(self, now: float, live_since: float | None = None, *, conn: Connection) -> int:
        """Delete pending copies past their deadline, so they can be planned again.

        With live_since, also those whose sender or backup is no longer live: that copy
        cannot complete, and counting it would keep the file below target until its deadline.
        """
        stale = pending.c.deadline < now
        self._record_failed_pushes(stale, now, conn=conn)
        conn.execute(delete(failed_pushes).where(failed_pushes.c.at < now - FAILED_PUSH_MEMORY_S))
        if live_since is not None:
            dead = select(peers.c.peer_id).where(peers.c.last_seen < live_since)
            stale = stale | pending.c.to_peer_id.in_(dead) | pending.c.from_peer_id.in_(dead)
        return conn.execute(delete(pending).where(stale)).rowcount

    def _record_failed_pushes(self, expired, now: float, *, conn: Connection) -> None:
        """Remember the senders of handed-out copies that expire now unconfirmed (expired: a
        condition on pending), so the planner takes another source for a while."""
        source = select(pending.c.sha256, pending.c.from_peer_id, bindparam("at", now, type_=Float)).where(
            expired, pending.c.handed_at.is_not(None))
        stmt = self._insert(failed_pushes).from_select(["sha256", "peer_id", "at"], source)
        conn.execute(stmt.on_conflict_do_update(index_elements=["sha256", "peer_id"],
                                                set_={"at": stmt.excluded.at}))

    @transactional("read")
    def passed_over_as_source(self, sha256: str, peer_id: str, since: float, live_since: float,
                              *, conn: Connection) -> bool:
        """True if a push of sha256 handed to peer_id failed at or after since and another live holder
        whose claim is not refuted can send it instead."""
        other = files.alias("other_source")
        failed = exists().where(failed_pushes.c.sha256 == sha256, failed_pushes.c.peer_id == peer_id,
                                failed_pushes.c.at >= since)
        elsewhere = exists().where(other.c.sha256 == sha256, other.c.peer_id != peer_id, not_refuted(other.c.proof),
                                   exists().where(peers.c.peer_id == other.c.peer_id,
                                                  peers.c.last_seen >= live_since))
        return bool(conn.execute(select(failed & elsewhere)).scalar())

    @transactional("write")
    def drop_stale_copies_of(self, sha256: str, now: float, live_since: float, *, conn: Connection) -> int:
        """Delete the pending copies of one sha256 that are past their deadline or whose sender
        or backup is no longer live (so another peer may be planned for it at once); the senders
        of handed-out copies past their deadline are remembered (passed_over_as_source)."""
        # Keyed probes of the two peers of each copy of this file, never a list of every dead peer.
        def live(peer_column):
            return exists().where(peers.c.peer_id == peer_column, peers.c.last_seen >= live_since)

        self._record_failed_pushes((pending.c.sha256 == sha256) & (pending.c.deadline < now), now, conn=conn)
        stale = (pending.c.deadline < now) | ~live(pending.c.to_peer_id) | ~live(pending.c.from_peer_id)
        return conn.execute(delete(pending).where(pending.c.sha256 == sha256, stale)).rowcount

    @transactional("read")
    def under_replicated_for_holder(
        self, peer_id: str, target: int, live_since: float, now: float, limit: int, start: str = "",
        *, conn: Connection,
    ) -> list[dict]:
        """Files peer_id holds whose counted copies (store.claims) plus unexpired pending copies fall short of target.

        At most limit rows, in sha256 order from start, wrapping around to the lowest.
        Each row: sha256, name, size, live_holders, pending, need (= copies still to plan).
        """
        inner = (
            select(
                files.c.sha256,
                func.min(files.c.name).label("name"),
                func.max(files.c.size).label("size"),
            )
            # A refuted claim is no source (store.claims): another holder plans that file.
            .where(files.c.peer_id == peer_id, not_refuted(files.c.proof),
                   ~exists().where(withdrawn.c.sha256 == files.c.sha256))
            .group_by(files.c.sha256)
            .subquery()
        )
        # Copies as the counting rule counts them: unproven claims together are one.
        live2 = counted_copies_of(inner.c.sha256, live_since)
        sender, backup = peers.alias("sender"), peers.alias("backup")
        planned2 = (
            select(func.count())
            .select_from(pending.join(sender, sender.c.peer_id == pending.c.from_peer_id)
                         .join(backup, backup.c.peer_id == pending.c.to_peer_id))
            .where(pending.c.sha256 == inner.c.sha256, pending.c.deadline >= now,
                   sender.c.last_seen >= live_since, backup.c.last_seen >= live_since)
            .scalar_subquery()
        )
        counted = select(
            inner.c.sha256, inner.c.name, inner.c.size, live2.label("live_holders"), planned2.label("pending")
        ).subquery()
        rows = conn.execute(
            select(counted)
            .where(counted.c.live_holders + counted.c.pending < target)
            .order_by(case((counted.c.sha256 >= start, 0), else_=1), counted.c.sha256)
            .limit(limit)
        )
        return [
            dict(r._mapping, need=target - r.live_holders - r.pending) for r in rows
        ]

    @transactional("read")
    def backup_candidates(
        self, sha256: str, size: int, live_since: float, now: float, max_pending: int,
        sample: int | None = None, need: int = 1, max_windows: int = 4, *, conn: Connection,
    ) -> list[dict]:
        """The peers eligible (backup_eligible) to receive a copy of sha256, ordered by peer_id.

        sample None: every live peer is tested. sample K: windows of K live peers that accept
        uploads, clockwise on the ring from the file's place, until need are eligible, the
        ring is exhausted or max_windows were tried. Each row: peer_id, grpc_address,
        free_bytes, pending (count of unexpired copies it awaits) and reserved (bytes of those
        copies). Which of them wins is the planner's decision.
        """
        params = {"sha": sha256, "size": size, "ls": live_since, "now": now, "max_pending": max_pending}
        if sample is None:
            return [dict(r._mapping) for r in conn.execute(_CANDIDATES[False], params)]
        found: dict[str, dict] = {}
        start = place = file_place(sha256)
        wrapped = False
        for _ in range(max_windows):
            window = conn.execute(_RING_WINDOW, {"place": place, "ls": live_since, "k": sample}).all()
            full, circled = len(window) == sample, False
            if wrapped:  # past the ring's end: stop at the file's own place
                before = [w for w in window if w.ring < start]
                circled, window = len(before) < len(window), before
            if window:
                rows = conn.execute(_CANDIDATES[True], {**params, "ids": [w.peer_id for w in window]})
                found.update({r.peer_id: dict(r._mapping) for r in rows})
            if len(found) >= need or (wrapped and (circled or not full)):
                break
            if full:
                place = window[-1].ring + 1
            else:  # the ring ends here: go on from its start
                wrapped, place = True, 0
        return [found[k] for k in sorted(found)]

    @transactional("write")
    def add_pending_copy(
        self, sha256: str, name: str, size: int, from_peer_id: str, to_peer_id: str, now: float, deadline: float,
        *, conn: Connection,
    ) -> bool:
        """Record a planned copy; False if (sha256, to_peer_id) is already planned (by anyone)."""
        stmt = self._insert(pending).values(
            sha256=sha256, name=name, size=size, from_peer_id=from_peer_id, to_peer_id=to_peer_id,
            created_at=now, deadline=deadline, handed_at=None,
        )
        stmt = stmt.on_conflict_do_nothing(index_elements=["sha256", "to_peer_id"]).returning(pending.c.sha256)
        return conn.execute(stmt).first() is not None

    @transactional("write")
    def take_handouts(self, from_peer_id: str, now: float, *, conn: Connection) -> list[dict]:
        """Unexpired copies planned for this holder not yet handed out, each handed out once
        (whichever process asks first); ordered by sha256, then backup."""
        rows = conn.execute(_HANDOUTS, {"src": from_peer_id, "now": now}).all()
        return sorted((dict(r._mapping) for r in rows), key=lambda h: (h["sha256"], h["to_peer_id"]))

    @transactional("read")
    def replication_counts(
        self, target: int, live_since: float, now: float, max_pending_per_peer: int, *, conn: Connection
    ) -> dict:
        """Whole-network replication figures: files_total, at/below/above target, pending, unplaceable.

        Copies are counted by the one rule (store.claims: proven + min(1, unproven)); a file
        only refuted claims hold is not counted at all.

        A file is unplaceable when it is below target, no copy of it is pending, it is not
        withdrawn, and no peer is eligible to receive it (the planner's own rule).
        Scans the whole index: meant for operators, not for hot paths.
        """
        per_file = (
            select(
                files.c.sha256,
                func.max(files.c.size).label("size"),
                counted_copies(files.c.proof, files.c.peer_id).label("live_holders"),
            )
            .select_from(files.join(peers, peers.c.peer_id == files.c.peer_id))
            .where(peers.c.last_seen >= live_since, not_refuted(files.c.proof))
            .group_by(files.c.sha256)
            .subquery()
        )
        totals = conn.execute(
            select(
                func.count(),
                func.coalesce(func.sum((per_file.c.live_holders == target).cast(Integer)), 0),
                func.coalesce(func.sum((per_file.c.live_holders < target).cast(Integer)), 0),
                func.coalesce(func.sum((per_file.c.live_holders > target).cast(Integer)), 0),
            )
        ).one()
        pending_copies = conn.execute(
            select(func.count()).select_from(pending).where(pending.c.deadline >= now)
        ).scalar()
        eligible = exists().where(
            backup_eligible(per_file.c.sha256, per_file.c.size, live_since, now, max_pending_per_peer)
        )
        has_pending = exists().where(pending.c.sha256 == per_file.c.sha256, pending.c.deadline >= now)
        is_withdrawn = exists().where(withdrawn.c.sha256 == per_file.c.sha256)
        unplaceable = conn.execute(
            select(func.count())
            .select_from(per_file)
            .where(per_file.c.live_holders < target, ~has_pending, ~is_withdrawn, ~eligible)
        ).scalar()
        n_withdrawn = conn.execute(select(func.count()).select_from(withdrawn)).scalar()
        return {
            "target": target,
            "files_total": totals[0],
            "at_target": totals[1],
            "below_target": totals[2],
            "above_target": totals[3],
            "pending_copies": pending_copies,
            "unplaceable": unplaceable,
            "withdrawn": n_withdrawn,
        }
