"""Audits of unproven claims, verify orders and reports about holders (directory side of issue 11).

No SQL here: the rules, over the store (``store.claims``, ``store.audits``).

- A claim (a file entry) counts toward the replication target alone only once proven; until then
  all unproven claims of a file count as one copy (``store.claims.copies_counted``).
- An unproven claim of a live peer is audited at most every ``audit_interval_s``: a proven live
  holder of the same bytes (the auditor) is told in its heartbeat answer to read one piece of the
  target's copy (``offset``, ``length``, with a download ticket naming it and the target) and to
  compare it with its own; it answers ``POST /audits/{id}``. Passed: the claim is proven. Failed:
  refuted (never a holder, a source nor counted), the target is asked to re-hash its copy, and
  the planner, counting one copy fewer, plans a real one.
- The rate is bounded network-wide: ``audits_per_minute``, scheduled by whichever directory
  process claims the "audits" task for the period (``store.claim_task``), so several processes
  schedule each audit once; each audit is handed out once (``store.take_audits``). A claim with
  no proven holder to audit it waits ``NO_AUDITOR_RETRY_S`` (at most the audit interval) before it is looked at again.
- An audit costs the auditor at most one piece (``audit_range``).
- Reports: a downloader that got a bad piece reports the holder corrupt; the directory only
  orders a re-hash (``verify`` in the holder's heartbeat answer), at most once per
  ``audit_interval_s`` per (holder, file). A downloader whose pieces from a holder verified
  reports it verified, which proves an unproven claim (never a refuted one).
"""
from __future__ import annotations

import logging
import math
import random
import secrets

from protos.rules import DEFAULT_PIECE_SIZE, MIN_PIECE_SIZE, piece_count, piece_range

from . import metrics
from .config import DirectoryConfig
from .errors import Conflict, Forbidden, NotFound
from .liveness import Liveness, _Periodic
from .store import Store
from .store.claims import PROVEN, REFUTED, UNPROVEN

log = logging.getLogger(__name__)

MIN_PERIOD_S = 5.0  # the least seconds between two scheduling rounds
NO_AUDITOR_RETRY_S = 60.0  # a claim nobody can audit yet is looked at again this much later
CANDIDATES_PER_AUDIT = 4  # claims read from the queue per audit to hand out (some have no auditor)
KEEP_AUDITS_S = 3600.0  # answered or expired audits are kept this long past their deadline


def audit_range(size: int, piece_size: int | None, rng: random.Random | None = None) -> tuple[int, int]:
    """(offset, length) of one random piece of a file of size bytes (size > 0).

    The piece size is the entry's, bounded to [MIN_PIECE_SIZE, DEFAULT_PIECE_SIZE], so an audit
    never costs the auditor more than one default piece whatever a claim says.
    """
    piece = min(max(piece_size or DEFAULT_PIECE_SIZE, MIN_PIECE_SIZE), DEFAULT_PIECE_SIZE)
    index = (rng or random).randrange(piece_count(size, piece))
    return piece_range(index, size, piece)


class Auditing:
    """Schedules audits, hands out audits and verify orders, and records their answers and reports."""

    def __init__(self, config: DirectoryConfig, store: Store, liveness: Liveness, signer):
        """Bind the rate, interval and deadline; signer issues the audits' download tickets."""
        self.per_minute = config.audits_per_minute
        self.interval_s = config.audit_interval_s
        # never longer than the interval itself: a claim is not put off past its next audit
        self.no_auditor_retry_s = min(NO_AUDITOR_RETRY_S, self.interval_s)
        self.deadline_s = config.deadline_s
        # A batch every period, at least MIN_PERIOD_S apart (each tick is a write transaction of
        # every process), the period stretched so that batch / period is exactly the rate.
        self.batch = math.ceil(self.per_minute * MIN_PERIOD_S / 60.0) if self.per_minute else 0
        self.period_s = 60.0 * self.batch / self.per_minute if self.per_minute else 60.0
        self.store, self.liveness, self.signer = store, liveness, signer

    @property
    def enabled(self) -> bool:
        """False when audits_per_minute is 0."""
        return self.batch > 0

    def schedule(self, now: float, rng: random.Random | None = None) -> int:
        """Record up to one batch of audits of the claims longest due; returns how many. Also forgets
        audits long past their deadline and verify orders handed out an interval ago.

        The caller has claimed this period (AuditScheduler.tick) or owns the database alone (tests).
        """
        if not self.enabled:
            self.store.drop_old_audits(now - KEEP_AUDITS_S, now - self.interval_s)
            return 0
        live_since = self.liveness.live_since(now)
        made = 0
        with self.store.write() as conn:
            found = self.store.audit_candidates(now - self.interval_s, live_since, now,
                                                self.batch * CANDIDATES_PER_AUDIT, conn=conn)
            for claim in found:
                if claim["auditor"] is None:
                    # Nobody holds proven bytes of it yet (a push or an audit will change that).
                    self.store.defer_claim(claim["peer_id"], claim["sha256"],
                                           now - self.interval_s + self.no_auditor_retry_s, conn=conn)
                    continue
                if made == self.batch:
                    break
                offset, length = audit_range(claim["size"], claim["piece_size"], rng)
                self.store.add_audit(secrets.token_hex(16), claim["sha256"], claim["peer_id"], claim["auditor"],
                                     offset, length, now, now + self.deadline_s, conn=conn)
                made += 1
                log.info("audit of %s's claim of %s by %s (%s bytes at %s)", claim["peer_id"],
                         claim["sha256"][:12], claim["auditor"], length, offset)
            # A verify order handed out an interval ago has done its work: a new report may arm it again.
            self.store.drop_old_audits(now - KEEP_AUDITS_S, now - self.interval_s, conn=conn)
        return made

    def on_heartbeat(self, session, now: float) -> tuple[list[str], list[dict]]:
        """The verify orders and audits this peer (a store PeerSession) must carry out now, each handed out once."""
        if not session.has_claims_work:  # the heartbeat's own statement said so: nothing more to ask
            return [], []
        peer_id = session.peer_id
        verify_waits, audits_wait = self.store.claims_work(peer_id, now)
        verify = self.store.take_verify_orders(peer_id, now) if verify_waits else []
        orders = self.store.take_audits(peer_id, now, self.liveness.live_since(now)) if audits_wait else []
        for order in orders:
            order["ticket"], _ = self.signer.issue(sub=peer_id, sha256=order["sha256"], purpose="download",
                                                   now=now, aud=order["target_peer_id"])
        return verify, orders

    def answer(self, audit_id: str, auditor: str, ok: bool, detail: str, now: float) -> None:
        """Record an auditor's answer: the target's claim proven (ok) or refuted; raises NotFound
        (no such audit) or Conflict (another peer's audit, or answered already)."""
        with self.store.write() as conn:
            status, audit = self.store.answer_audit(audit_id, auditor, ok, detail, now, conn=conn)
            if status == "unknown":
                raise NotFound(f"no audit {audit_id}")
            if status == "not_yours":
                raise Conflict(f"audit {audit_id} was given to another peer")
            if status == "already":
                raise Conflict(f"audit {audit_id} is answered already")
            target, sha256 = audit["target_peer_id"], audit["sha256"]
            metrics.count_audit("passed" if ok else "failed")
            if ok:
                self.store.set_proof(target, sha256, PROVEN, now, only_from=(UNPROVEN,), conn=conn)
                return
            self.store.set_proof(target, sha256, REFUTED, now, conn=conn)
            # An honest holder whose disk rotted finds out, quarantines the copy and withdraws it.
            self.store.order_verify(target, sha256, auditor, now, self.interval_s, conn=conn)
        log.warning("peer %s failed the audit of its claim of %s by %s (%s): refuted", target, sha256[:12],
                    auditor, detail or "no detail")

    def report_corrupt(self, reporter: str, peer_id: str, sha256: str, now: float) -> bool:
        """A downloader says peer_id served bad bytes of sha256: order a re-hash (True if ordered now)."""
        self._reported(reporter, peer_id, sha256)
        ordered = self.store.order_verify(peer_id, sha256, reporter, now, self.interval_s)
        log.info("%s reported %s's copy of %s corrupt: %s", reporter, peer_id, sha256[:12],
                 "verify ordered" if ordered else "a verify order is recent")
        return ordered

    def report_verified(self, reporter: str, peer_id: str, sha256: str, now: float) -> bool:
        """A downloader verified pieces peer_id served of sha256: prove its claim (True if it changed)."""
        self._reported(reporter, peer_id, sha256)
        return bool(self.store.set_proof(peer_id, sha256, PROVEN, now, only_from=(UNPROVEN,)))

    def _reported(self, reporter: str, peer_id: str, sha256: str) -> None:
        if reporter == peer_id:
            raise Forbidden(f"peer {peer_id} may not report on its own copy: other peers prove or refute it")
        if self.store.entry_proof(peer_id, sha256) is None:
            raise NotFound(f"peer {peer_id} has no file {sha256}")


class AuditScheduler(_Periodic):
    """A daemon thread that schedules a batch of audits every period, once per period across every
    directory process on the database (``store.claim_task``)."""

    TASK = "audits"

    def __init__(self, auditing: Auditing, name: str = ""):
        """Prepare (not start) the thread; name says which process scheduled (host:pid)."""
        super().__init__("p2p-auditor", auditing.period_s)
        self.auditing, self.name = auditing, name

    def tick(self) -> int:
        """Schedule one batch if no other process did within the period; returns how many audits."""
        now = self.auditing.liveness.now()
        # A little less than the period, as the sweeper does, so two processes do not starve each other.
        if not self.auditing.store.claim_task(self.TASK, now, self.auditing.period_s * 0.9, by=self.name):
            return 0
        return self.auditing.schedule(now)
