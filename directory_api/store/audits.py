"""Audits of unproven claims: the queue, handing out once, answering once (the rules: directory_api/audits.py).

- The queue is ``p2p_files`` itself: unproven entries of live peers, least recently audited first
  (``proof_at``, served by ``p2p_files_proof``). Scheduling an audit moves the target's
  ``proof_at`` to now, in the transaction that records the audit, so the same claim is not
  audited again before the interval, whichever process schedules next.
- Handing out is one UPDATE ... RETURNING (as copies are, store.copies): of two processes
  answering two heartbeats of one auditor at once, the second finds ``handed_at`` set.
- Answering is one conditional UPDATE: an audit is answered once, by its auditor only.
"""
from __future__ import annotations

from sqlalchemy import and_, bindparam, delete, exists, func, insert, select, update
from sqlalchemy.engine import Connection

from .claims import PROVEN, UNPROVEN, unindexed
from .engine import StoreEngine, transactional
from .schema import audits, files, peers, verify_orders

_target, _tpeer = files.alias("target"), peers.alias("target_peer")
_held, _hpeer = files.alias("auditor_copy"), peers.alias("auditor_peer")
_open_audit = exists().where(audits.c.target_peer_id == _target.c.peer_id, audits.c.sha256 == _target.c.sha256,
                             audits.c.answered_at.is_(None), audits.c.deadline >= bindparam("now"))
# One proven live holder of the same bytes, drawn at random, audits the claim: it reads a piece of
# the target's and compares it with its own.
_AUDITOR = (
    select(_held.c.peer_id)
    .select_from(_held.join(_hpeer, _hpeer.c.peer_id == _held.c.peer_id))
    .where(_held.c.sha256 == _target.c.sha256, _held.c.proof == PROVEN, _held.c.peer_id != _target.c.peer_id,
           _hpeer.c.last_seen >= bindparam("ls"))
    .order_by(func.random())
    .limit(1)
    .scalar_subquery()
)
# The queue in index order (p2p_files_proof: proof, proof_at), each row's checks a keyed sub-plan,
# so the LIMIT stops the scan: a join would read (and sort) every unproven claim of the network.
_CANDIDATES = (
    select(_target.c.peer_id, _target.c.sha256, _target.c.size, _target.c.piece_size, _AUDITOR.label("auditor"))
    .where(_target.c.proof == UNPROVEN, _target.c.proof_at <= bindparam("due_before"), _target.c.size > 0,
           exists().where(_tpeer.c.peer_id == _target.c.peer_id, _tpeer.c.last_seen >= bindparam("ls")),
           ~_open_audit)
    .order_by(_target.c.proof_at)
    .limit(bindparam("n"))
)
_DEFER = (
    update(files)
    .where(files.c.peer_id == bindparam("pid"), files.c.sha256 == bindparam("s"),
           unindexed(files.c.proof) == UNPROVEN, unindexed(files.c.proof_at) < bindparam("until"))
    .values(proof_at=bindparam("until"))
)
_tp = peers.alias("to_audit")
_TAKE = (
    update(audits)
    .where(audits.c.auditor_peer_id == bindparam("pid"), audits.c.handed_at.is_(None),
           audits.c.deadline >= bindparam("now"),
           # A target that died since cannot answer: its audit waits (and expires) rather than fail.
           exists().where(_tp.c.peer_id == audits.c.target_peer_id, _tp.c.last_seen >= bindparam("ls")))
    .values(handed_at=bindparam("now"))
    .returning(audits.c.audit_id, audits.c.sha256, audits.c.target_peer_id, audits.c.piece_offset,
               audits.c.piece_length,
               select(_tp.c.grpc_address).where(_tp.c.peer_id == audits.c.target_peer_id)
               .scalar_subquery().label("target_address"))
)


def candidates_statement():
    """The statement audit_candidates runs (for EXPLAIN)."""
    return _CANDIDATES


class Audits(StoreEngine):
    """The audits of unproven claims."""

    @transactional("read")
    def audit_candidates(self, due_before: float, live_since: float, now: float, limit: int,
                         *, conn: Connection) -> list[dict]:
        """Unproven claims of live peers last audited at or before due_before, oldest first, one row
        per (peer_id, sha256): peer_id, sha256, size, piece_size, auditor (None: no proven live
        holder of those bytes to audit it)."""
        rows = conn.execute(_CANDIDATES, {"due_before": due_before, "ls": live_since, "now": now, "n": limit})
        found: dict[tuple[str, str], dict] = {}
        for row in rows:
            found.setdefault((row.peer_id, row.sha256), dict(row._mapping))
        return list(found.values())

    @transactional("write")
    def defer_claim(self, peer_id: str, sha256: str, until: float, *, conn: Connection) -> None:
        """Move an unproven claim's place in the queue to until (never back)."""
        conn.execute(_DEFER, {"pid": peer_id, "s": sha256, "until": until})

    @transactional("write")
    def add_audit(self, audit_id: str, sha256: str, target: str, auditor: str, offset: int, length: int,
                  now: float, deadline: float, *, conn: Connection) -> None:
        """Record an audit of target's claim of sha256 and move that claim to the back of the queue."""
        conn.execute(insert(audits).values(
            audit_id=audit_id, sha256=sha256, target_peer_id=target, auditor_peer_id=auditor, piece_offset=offset,
            piece_length=length, created_at=now, deadline=deadline))
        conn.execute(_DEFER, {"pid": target, "s": sha256, "until": now})

    @transactional("write")
    def take_audits(self, auditor: str, now: float, live_since: float, *, conn: Connection) -> list[dict]:
        """Unexpired audits for this auditor not yet handed out, of live targets, each handed out once:
        audit_id, sha256, target_peer_id, target_address, offset, length."""
        rows = conn.execute(_TAKE, {"pid": auditor, "now": now, "ls": live_since}).all()
        orders = [{"audit_id": r.audit_id, "sha256": r.sha256, "target_peer_id": r.target_peer_id,
                   "target_address": r.target_address, "offset": r.piece_offset, "length": r.piece_length}
                  for r in rows]
        return sorted(orders, key=lambda o: o["audit_id"])

    @transactional("write")
    def answer_audit(self, audit_id: str, auditor: str, ok: bool, detail: str, now: float,
                     *, conn: Connection) -> tuple[str, dict | None]:
        """Record the auditor's answer, once: ("answered", the audit) or ("unknown" | "not_yours" |
        "already", None); nothing changes unless "answered"."""
        row = conn.execute(
            update(audits)
            .where(audits.c.audit_id == audit_id, audits.c.auditor_peer_id == auditor, audits.c.answered_at.is_(None))
            .values(answered_at=now, ok=ok, detail=detail[:1000])
            .returning(audits.c.audit_id, audits.c.sha256, audits.c.target_peer_id)
        ).first()
        if row is not None:
            return "answered", dict(row._mapping)
        found = conn.execute(select(audits.c.auditor_peer_id).where(audits.c.audit_id == audit_id)).first()
        if found is None:
            return "unknown", None
        return ("not_yours" if found.auditor_peer_id != auditor else "already"), None

    @transactional("read")
    def audit(self, audit_id: str, *, conn: Connection) -> dict | None:
        """One audit's row, or None."""
        row = conn.execute(select(audits).where(audits.c.audit_id == audit_id)).first()
        return dict(row._mapping) if row else None

    @transactional("write")
    def drop_old_audits(self, before: float, orders_before: float | None = None, *, conn: Connection) -> int:
        """Delete audits whose deadline is older than before, answered or not (and, with
        orders_before, verify orders handed out before it); returns the audits deleted."""
        if orders_before is not None:
            conn.execute(delete(verify_orders).where(verify_orders.c.handed_at < orders_before))
        return conn.execute(delete(audits).where(audits.c.deadline < before)).rowcount

    @transactional("read")
    def audit_counts(self, now: float, *, conn: Connection) -> dict:
        """Audits kept: {open (unanswered, unexpired), passed, failed}."""
        open_ = and_(audits.c.answered_at.is_(None), audits.c.deadline >= now)
        row = conn.execute(select(
            func.count().filter(open_), func.count().filter(audits.c.ok.is_(True)),
            func.count().filter(audits.c.ok.is_(False)))).one()
        return {"open": row[0], "passed": row[1], "failed": row[2]}
