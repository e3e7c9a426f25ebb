"""Claims and their proofs: the one rule that counts copies, and what proves or refutes a claim.

A file entry is a peer's claim to hold those bytes, and a claim costs nothing to make: a peer
that lists a file it does not have would otherwise count as a backup, and the network would
never make a real one. So each entry carries ``proof`` (``p2p_files.proof``):

- ``UNPROVEN`` (0): what the peer said;
- ``PROVEN`` (1): a planned push to it was confirmed (it indexed the sha256 while the copy it was
  sent was pending), a downloader reported pieces it served verified, or it passed an audit;
- ``REFUTED`` (2): it failed an audit. A refuted entry is never a search holder, a file detail
  holder, a copy source, nor counted.

The counting rule, the same for the planner, the summary and GET /files/{sha256}: copies =
proven live holders + min(1, unproven live holders) (``copies_counted`` in Python,
``counted_copies`` in SQL). Any number of unproven claims count as one copy, so a liar beside
the real owner cannot make a file look safe.

All entries of one (peer, sha256) carry the same proof: the bytes are proven, whatever their
names. Re-publishing an index keeps them (``saved_proofs`` / ``restore_proofs``); a new entry
under another name inherits them (``sync_proofs``); only a sha256 that leaves the peer's index
and comes back starts unproven.

Verify orders: a downloader that got a bad piece reports the holder (``report_corrupt``); the
directory does not take its word, it asks the holder to re-hash its copy in its next heartbeat
answer, once (``take_verify_orders``). The order then stays ``verify_every_s`` before another
report can arm it again, so repeated reports never make a holder re-hash a file over and over.
"""
from __future__ import annotations

from sqlalchemy import Integer, and_, bindparam, case, delete, exists, func, select, update
from sqlalchemy.engine import Connection

from .engine import StoreEngine, transactional
from .schema import audits, files, peers, pending, verify_orders

UNPROVEN, PROVEN, REFUTED = 0, 1, 2


def copies_counted(proven: int, unproven: int) -> int:
    """The counting rule: proven live holders count one each, unproven ones one together."""
    return proven + min(1, unproven)


def counted_copies(proof_column, peer_column):
    """The counting rule as an SQL aggregate over rows of live holders (proof and peer_id columns)."""
    def holders(state):
        return func.count(func.distinct(case((proof_column == state, peer_column))))

    return holders(PROVEN) + case((holders(UNPROVEN) > 0, 1), else_=0)


def counted_copies_of(sha_column, live_since: float):
    """Correlated to sha_column: the copies of that sha256 the counting rule counts."""
    f2 = files.alias()
    return (
        select(counted_copies(f2.c.proof, f2.c.peer_id))
        .select_from(f2.join(peers, peers.c.peer_id == f2.c.peer_id))
        .where(f2.c.sha256 == sha_column, peers.c.last_seen >= live_since)
        .scalar_subquery()
    )


def not_refuted(proof_column):
    """The condition for an entry that may be shown, counted or used as a source."""
    return proof_column != REFUTED


def unindexed(column):
    """column + 0: the same value, in a condition no index can serve.

    p2p_files_proof (proof, proof_at) is the audit queue's index (store.audits). SQLite keeps no
    statistics unless ANALYZE runs, and without them it prefers that index to (peer_id, sha256)
    or (sha256, ...) for "proof = 0 AND ..." in a statement about one peer or a few files: it
    then reads every unproven claim of the network, under the write lock. At 1M files that made
    each confirmation 0.26-0.7 s instead of 0.2 ms and held logins up for 5-10 s.
    """
    return column + 0


# --- keeping proofs across index changes (store.index and store.publish call these) -----------

_RESTORE = (
    update(files)
    .where(files.c.peer_id == bindparam("pid"), files.c.sha256 == bindparam("s"))
    .values(proof=bindparam("p"), proof_at=bindparam("t"))
)


def saved_proofs(peer_id: str, *, conn: Connection) -> list[dict]:
    """The proofs of peer_id's entries that are not the default, before its index is replaced."""
    rows = conn.execute(
        select(files.c.sha256, func.max(files.c.proof).label("proof"), func.max(files.c.proof_at).label("proof_at"))
        .where(files.c.peer_id == peer_id, (files.c.proof != UNPROVEN) | (files.c.proof_at != 0))
        .group_by(files.c.sha256)
    )
    return [{"pid": peer_id, "s": r.sha256, "p": r.proof, "t": r.proof_at} for r in rows]


def restore_proofs(saved: list[dict], *, conn: Connection) -> None:
    """Give the entries of the new index the proofs saved_proofs kept (by sha256)."""
    if saved:
        conn.execute(_RESTORE, saved)


def sync_proofs(peer_id: str, *, conn: Connection) -> None:
    """Entries of peer_id that lag another entry of the same sha256 take its proof (a new name)."""
    f2 = files.alias("same_bytes")
    best = (select(func.max(f2.c.proof)).where(f2.c.peer_id == files.c.peer_id, f2.c.sha256 == files.c.sha256)
            .scalar_subquery())
    best_at = (select(func.max(f2.c.proof_at)).where(f2.c.peer_id == files.c.peer_id, f2.c.sha256 == files.c.sha256)
               .scalar_subquery())
    conn.execute(update(files).where(files.c.peer_id == peer_id, files.c.proof < best)
                 .values(proof=best, proof_at=best_at))


def prove_confirmed_copies(peer_id: str, *, conn: Connection) -> int:
    """Mark proven the entries of peer_id that confirm a planned push handed to its sender.

    Called when peer_id indexes files, before the pending copies it completes are deleted.
    Only a copy already handed to its sender counts: a backup that indexes the file before
    anyone was told to push it proves nothing.
    """
    confirmed = select(pending.c.created_at).where(
        pending.c.to_peer_id == files.c.peer_id, pending.c.sha256 == files.c.sha256,
        pending.c.handed_at.is_not(None))
    proven = conn.execute(
        update(files).where(files.c.peer_id == peer_id, unindexed(files.c.proof) == UNPROVEN, exists(confirmed))
        .values(proof=PROVEN, proof_at=confirmed.scalar_subquery()).returning(files.c.sha256)
    ).scalars().all()
    audit_others_now(peer_id, set(proven), conn=conn)
    return len(proven)


def audit_others_now(peer_id: str, sha256s: set[str], *, conn: Connection) -> None:
    """peer_id's bytes of these files are proven now: the other unproven claims of them may be
    audited at once (the queue had put them back, for want of an auditor)."""
    if sha256s:
        conn.execute(update(files).where(files.c.sha256.in_(sorted(sha256s)), files.c.peer_id != peer_id,
                                         unindexed(files.c.proof) == UNPROVEN, unindexed(files.c.proof_at) > 0)
                     .values(proof_at=0.0))


# --- the heartbeat's one question ---------------------------------------------------------------

def _verify_waits(peer_column):
    return exists().where(verify_orders.c.peer_id == peer_column, verify_orders.c.handed_at.is_(None))


def _audit_waits(peer_column):
    return exists().where(audits.c.auditor_peer_id == peer_column, audits.c.handed_at.is_(None),
                          audits.c.deadline >= bindparam("now"))


def claims_work_of(peer_column):
    """Correlated to peer_column: verify orders or audits wait to be handed to that peer (binds :now).

    The heartbeat asks it in its own statement (store.sessions), so an idle heartbeat stays one statement.
    """
    return _verify_waits(peer_column) | _audit_waits(peer_column)


_WORK = select(_verify_waits(bindparam("pid")).label("verify"), _audit_waits(bindparam("pid")).label("audit"))
_TAKE_VERIFY = (
    update(verify_orders)
    .where(verify_orders.c.peer_id == bindparam("pid"), verify_orders.c.handed_at.is_(None))
    .values(handed_at=bindparam("now"))
    .returning(verify_orders.c.sha256)
)


class Claims(StoreEngine):
    """Proofs of file entries and the verify orders of holders."""

    @transactional("read_one")
    def claims_work(self, peer_id: str, now: float, *, conn: Connection) -> tuple[bool, bool]:
        """(verify orders wait, audits wait) for this peer: one statement, so an idle heartbeat stays cheap."""
        row = conn.execute(_WORK, {"pid": peer_id, "now": now}).one()
        return bool(row.verify), bool(row.audit)

    @transactional("read")
    def entry_proof(self, peer_id: str, sha256: str, *, conn: Connection) -> int | None:
        """The proof of peer_id's entry of sha256 (the highest of its names), None if it lists none."""
        return conn.execute(select(func.max(files.c.proof))
                            .where(files.c.peer_id == peer_id, files.c.sha256 == sha256)).scalar()

    @transactional("write")
    def set_proof(self, peer_id: str, sha256: str, proof: int, now: float, *, only_from: tuple[int, ...] | None = None,
                  conn: Connection) -> int:
        """Set the proof of every entry of (peer_id, sha256) whose proof is in only_from (any, if None).

        Proving makes the other unproven claims of sha256 due for audit (there is an auditor now);
        refuting cancels the copies peer_id was to send of sha256 (it is no source any more).
        Returns how many entries changed.
        """
        where = [files.c.peer_id == peer_id, files.c.sha256 == sha256]
        if only_from is not None:
            where.append(files.c.proof.in_(only_from))
        changed = conn.execute(update(files).where(*where).values(proof=proof, proof_at=now)).rowcount
        if changed and proof == PROVEN:
            audit_others_now(peer_id, {sha256}, conn=conn)
        if changed and proof == REFUTED:
            conn.execute(delete(pending).where(pending.c.from_peer_id == peer_id, pending.c.sha256 == sha256))
        return changed

    @transactional("write")
    def order_verify(self, peer_id: str, sha256: str, reported_by: str | None, now: float, every_s: float,
                     *, conn: Connection) -> bool:
        """Ask peer_id to re-hash sha256 at its next heartbeat; False if an order is waiting or
        was handed out less than every_s ago (the report changes nothing then)."""
        stmt = self._insert(verify_orders).values(peer_id=peer_id, sha256=sha256, reported_by=reported_by,
                                                  at=now, handed_at=None)
        stmt = stmt.on_conflict_do_update(
            index_elements=["peer_id", "sha256"],
            set_={"reported_by": reported_by, "at": now, "handed_at": None},
            where=and_(verify_orders.c.handed_at.is_not(None), verify_orders.c.handed_at < now - every_s),
        )
        return conn.execute(stmt.returning(verify_orders.c.sha256)).first() is not None

    @transactional("write")
    def take_verify_orders(self, peer_id: str, now: float, *, conn: Connection) -> list[str]:
        """The sha256s peer_id must re-hash now, each handed out once (whichever process asks first)."""
        return sorted(conn.execute(_TAKE_VERIFY, {"pid": peer_id, "now": now}).scalars())

    @transactional("read")
    def proof_counts(self, sha256: str, live_since: float, *, conn: Connection) -> dict:
        """Live holders of sha256 by proof: {proven, unproven, refuted}."""
        held = files.join(peers, peers.c.peer_id == files.c.peer_id)

        def holders(state):
            return func.count(func.distinct(case((files.c.proof == state, files.c.peer_id))))

        row = conn.execute(
            select(holders(PROVEN), holders(UNPROVEN), holders(REFUTED)).select_from(held)
            .where(files.c.sha256 == sha256, peers.c.last_seen >= live_since)
        ).one()
        return {"proven": row[0], "unproven": row[1], "refuted": row[2]}

    @transactional("read")
    def claim_counts(self, live_since: float, *, conn: Connection) -> dict:
        """Live entries (peer, sha256) by proof across the network: {proven, unproven, refuted}."""
        per_claim = (
            select(files.c.peer_id, files.c.sha256, func.max(files.c.proof).label("proof"))
            .select_from(files.join(peers, peers.c.peer_id == files.c.peer_id))
            .where(peers.c.last_seen >= live_since)
            .group_by(files.c.peer_id, files.c.sha256)
            .subquery()
        )

        def state(value):
            return func.coalesce(func.sum(case((per_claim.c.proof == value, 1), else_=0).cast(Integer)), 0)

        row = conn.execute(select(state(PROVEN), state(UNPROVEN), state(REFUTED))).one()
        return {"proven": row[0], "unproven": row[1], "refuted": row[2]}
