"""Replication planning (directory side of issue 5): which files need copies, and where to.

No SQL here: the planner asks the store. Rules:
- A file (sha256) is held by a peer while that peer is live and has indexed the sha256.
- When a holder heartbeats (at most once per ``plan_interval_s``), up to ``max_plans`` of the
  files it holds with fewer than R live holders plus unexpired pending copies (taken in sha256
  order from a random point, so unplaceable files cannot starve the rest) get copies planned:
  backups are live peers that accept uploads, neither hold, await nor dropped the file, have room
  (free_bytes unknown counts as room; bytes of copies already awaited are reserved) and await
  fewer than ``max_pending_per_peer`` copies: one rule, ``store.copies.backup_eligible``, which
  the summary's "unplaceable" count uses too. The rule is applied to a sample, not to every
  live peer: the ``BACKUP_SAMPLE`` live peers that follow the file's place on the placement ring
  (more windows of them while too few are eligible), so a round costs the same at 10,000 peers
  as at 100. Among the eligible the highest rendezvous score sha256(f"{sha256}:{peer_id}")
  wins, so the choice is stable and spread evenly.
- One round per holder at a time across every directory process: the round is claimed in the
  database (``store.claim_planning``: an advisory lock on PostgreSQL, then a conditional update
  of the holder's planned_at), so two heartbeats of one peer on two processes plan once, and a
  copy is handed out once (``store.take_handouts`` is one UPDATE ... RETURNING).
- A copy is recorded with a deadline (``deadline_s``) and handed to the planning holder in
  its heartbeat answer, once. It completes when the backup indexes that sha256; past its
  deadline it is dropped and may be planned again, possibly elsewhere.
- A copy whose backup or sender dies stops counting as soon as that death is noticed (lease
  lapsed, logout, or a failed probe after an unreachable report), and is dropped at the next
  planning round of that file (the coordinated sweep drops the rest), without waiting for its
  deadline: it can no longer complete, so the file is planned again
  on another live peer. A peer that logs in again (a new process) loses its copies likewise.
- Copies are counted by one rule (``store.claims``): proven live holders count one each,
  unproven ones one together, refuted ones not at all (nor are they sources). A copy handed to a
  holder that passes its deadline unconfirmed is remembered (``p2p_failed_pushes``): for
  ``FAILED_PUSH_MEMORY_S`` that holder is passed over as the source of that file while another
  live holder can send it, so a claimed holder without the bytes cannot stall its replication.
- The (sha256, to_peer_id) key is unique in the store; an insert that conflicts means another
  request or directory process planned it already, and counts as planned.
- Deleting a file (DELETE /peers/{me}/files/{sha256}, or a PUT of the whole index without it
  while the peer runs, which is what a peer does when its user deletes the file) removes only
  the caller's entries and cancels the copies it was to send or receive. Other peers' copies
  are their own files: the directory never touches another peer's records, and keeps those at
  R like any file, but never by copying the file back to a peer that dropped it (that would
  undo its user's delete) until that peer indexes it again. An index sent with login (a new
  process, perhaps after a lost disk) records nothing as dropped.
- DELETE ...?withdraw=true also withdraws the sha256 from replication: every pending copy of
  it is cancelled and no new one is planned, while the entries other peers indexed stay
  searchable as their own files (a peer may change only its own records). The withdrawal
  is lifted when the withdrawing peer indexes that sha256 again, and forgotten by the
  sweep once no peer indexes it.
"""
from __future__ import annotations

import hashlib
import logging
import random

from sqlalchemy.engine import Connection

from .config import DirectoryConfig
from .liveness import Liveness
from .shared_read import SharedRead
from .store import PeerSession, Store
from .store.copies import FAILED_PUSH_MEMORY_S

log = logging.getLogger(__name__)

BACKUP_SAMPLE = 32  # live peers a window of backup candidates holds (see store.copies)


def rendezvous_score(sha256: str, peer_id: str) -> int:
    """The highest-random-weight score of placing sha256 on peer_id."""
    return int.from_bytes(hashlib.sha256(f"{sha256}:{peer_id}".encode()).digest()[:8], "big")


def rank_backups(sha256: str, candidates: list[dict]) -> list[dict]:
    """Eligible candidates for one file (the store decides eligibility), best rendezvous score first."""
    return sorted(candidates, key=lambda c: rendezvous_score(sha256, c["peer_id"]), reverse=True)


class Planner:
    """Plans copies for one holder at a time, inside the caller's transaction."""

    def __init__(self, config: DirectoryConfig, store: Store, liveness: Liveness, signer=None):
        """Bind the target R, limits and deadline; signer (keys.TicketSigner) signs each order's upload ticket."""
        self.signer = signer
        self.target = config.replication
        self.max_pending = config.max_pending_per_peer
        self.max_plans = config.max_plans_per_heartbeat
        self.deadline_s = config.deadline_s
        self.interval_s = config.plan_interval_s
        self.store, self.liveness = store, liveness
        self._summary = SharedRead(self._read_summary)  # a pass over every file: shared (shared_read)

    @property
    def enabled(self) -> bool:
        """False when R = 1: nothing is ever copied."""
        return self.target > 1

    def due(self, planned_at: float, now: float) -> bool:
        """True when this holder's files should be checked again."""
        return self.enabled and now - planned_at >= self.interval_s

    def plan_for_holder(self, peer_id: str, now: float, *, conn: Connection) -> int:
        """Plan copies for files peer_id holds that are below R; returns how many were recorded.

        The caller has claimed the round (on_heartbeat) or owns the database alone (tests).
        """
        live_since = self.liveness.live_since(now)
        planned = 0
        # Start at a random sha256: files that cannot be placed stay below target, and a fixed
        # order would show the same first max_plans of them every round, starving the rest.
        start = f"{random.getrandbits(256):064x}"
        short = self.store.under_replicated_for_holder(
            peer_id, self.target, live_since, now, self.max_plans, start, conn=conn
        )
        for item in short:
            # Copies of it that can no longer complete no longer count (see
            # under_replicated_for_holder): drop them, so their backup may be chosen again.
            self.store.drop_stale_copies_of(item["sha256"], now, live_since, conn=conn)
            # A push of it handed to this holder failed lately: another holder sends it instead.
            if self.store.passed_over_as_source(item["sha256"], peer_id, now - FAILED_PUSH_MEMORY_S, live_since,
                                                conn=conn):
                log.debug("%s failed to push %s lately: left to another holder", peer_id, item["sha256"][:12])
                continue
            candidates = self.store.backup_candidates(item["sha256"], item["size"], live_since, now,
                                                      self.max_pending, sample=BACKUP_SAMPLE,
                                                      need=item["need"], conn=conn)
            ranked = rank_backups(item["sha256"], candidates)
            for backup in ranked[: item["need"]]:
                if self.store.add_pending_copy(
                    item["sha256"], item["name"], item["size"], peer_id, backup["peer_id"],
                    now, now + self.deadline_s, conn=conn,
                ):
                    planned += 1
                    log.info("planned copy of %s (%s) from %s to %s", item["name"], item["sha256"][:12],
                             peer_id, backup["peer_id"])
            if len(ranked) < item["need"]:
                log.debug("file %s is below target with too few eligible backups", item["sha256"])
        return planned

    def on_heartbeat(self, session: PeerSession, now: float) -> list[dict]:
        """Plan if due, then return the copies this holder must push now (own transactions)."""
        if not self.enabled:
            return []
        if self.due(session.planned_at, now):
            with self.store.write() as conn:
                # Another process may be planning this holder right now (its previous heartbeat
                # landed there): then only hand out what is ready.
                if self.store.claim_planning(session.peer_id, now, self.interval_s, conn=conn):
                    self.plan_for_holder(session.peer_id, now, conn=conn)
                return self.with_tickets(session.peer_id, self.store.take_handouts(session.peer_id, now, conn=conn),
                                         now)
        # Most heartbeats find no work, which the renewal itself reported: nothing more to ask.
        if not session.has_handouts:
            return []
        return self.with_tickets(session.peer_id, self.store.take_handouts(session.peer_id, now), now)

    def with_tickets(self, peer_id: str, orders: list[dict], now: float) -> list[dict]:
        """The orders, each with the upload ticket its backup checks (sub: the sender, aud: the backup)."""
        if self.signer is not None:
            for order in orders:
                order["ticket"], _ = self.signer.issue(peer_id, order["sha256"], "upload", now,
                                                       aud=order["to_peer_id"], size=order["size"])
        return orders

    def file_state(self, live_holders: int, pending: list[dict], withdrawn: bool = False,
                   proofs: dict | None = None) -> dict:
        """The replication block of GET /files/{sha256}; proofs: its live holders {proven, unproven, refuted}."""
        return {"target": self.target, "live_holders": live_holders, "pending": pending, "withdrawn": withdrawn,
                **(proofs or {})}

    def summary(self) -> dict:
        """Network-wide counts for GET /replication (copies counted by store.claims' rule), and claims by proof."""
        return self._summary.get()

    def _read_summary(self) -> dict:
        now = self.liveness.now()
        live_since = self.liveness.live_since(now)
        counts = self.store.replication_counts(self.target, live_since, now, self.max_pending)
        claims = self.store.claim_counts(live_since)
        return {**counts, **{f"{state}_claims": n for state, n in claims.items()}}
