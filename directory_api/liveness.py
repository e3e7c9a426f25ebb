"""The one place that decides who is alive: the lease rule, the health probe and the sweep."""
from __future__ import annotations

import logging
import threading
import time

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from .config import DirectoryConfig
from .errors import ConfigError
from .store import PeerSession, Store
from .store.removals import UNREACHABLE

log = logging.getLogger(__name__)


def probe_credentials(config: DirectoryConfig):
    """The TLS credentials the probe dials peers with (config.peer_ca, peer_cert/key), or None for plaintext."""
    if getattr(config, "peer_ca", None) is None:
        return None

    def read(path: str, what: str) -> bytes:
        try:
            with open(path, "rb") as f:
                return f.read()
        except OSError as exc:
            raise ConfigError(f"{what} {path}: cannot read it: {exc.strerror or exc}") from None

    chain = key = None
    if config.peer_cert is not None:
        chain, key = read(config.peer_cert, "--peer-cert"), read(config.peer_key, "--peer-key")
    return grpc.ssl_channel_credentials(root_certificates=read(config.peer_ca, "--peer-ca"), private_key=key,
                                        certificate_chain=chain)


class Liveness:
    """Lease arithmetic and probes for one directory configuration."""

    def __init__(self, config: DirectoryConfig, clock=time.time):
        """Bind the lease length and probe deadline; clock is injectable for tests."""
        self.lease_s = config.lease_s
        self.probe_timeout_s = config.probe_timeout_s
        self.dead_after_s = config.dead_after_leases * config.lease_s
        self.clock = clock
        self.credentials = probe_credentials(config)

    def now(self) -> float:
        """The current time in seconds since the epoch (all processes must share a clock)."""
        return self.clock()

    def live_since(self, now: float | None = None) -> float:
        """The least last_seen a live peer may have: live while last_seen + lease >= now."""
        return (self.now() if now is None else now) - self.lease_s

    def is_live(self, last_seen: float, now: float | None = None) -> bool:
        """The lease condition for one peer."""
        return last_seen >= self.live_since(now)

    def dead_mark(self, now: float | None = None) -> float:
        """A last_seen that makes a peer dead at once, yet leaves its row for the sweep to reap later."""
        return self.live_since(now) - 1.0

    def probe(self, address: str) -> bool:
        """True if address answers grpc.health.v1 Health/Check with SERVING within the deadline."""
        try:
            channel = (grpc.secure_channel(address, self.credentials) if self.credentials is not None
                       else grpc.insecure_channel(address))
            with channel:
                reply = health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(service=""), timeout=self.probe_timeout_s
                )
        except grpc.RpcError as exc:
            log.info("health probe of %s failed: %s", address, exc.code() if hasattr(exc, "code") else exc)
            return False
        except Exception as exc:  # a malformed target must count as unreachable, not crash the request
            log.info("health probe of %s failed: %s", address, exc)
            return False
        return reply.status == health_pb2.HealthCheckResponse.SERVING

    def report_unreachable(self, store: Store, peer_id: str) -> str | None:
        """Probe a reported peer; mark it dead only if the probe fails.

        Returns "alive", "removed", or None when peer_id is unknown. A peer that is already
        dead is "removed" without a probe.
        """
        peer = store.peer(peer_id)
        if peer is None:
            return None
        if not self.is_live(peer["last_seen"]):
            return "removed"
        # The probe runs outside any transaction: it may take up to the whole deadline.
        if self.probe(peer["grpc_address"]):
            return "alive"
        with store.write() as conn:
            store.end_session(peer_id, self.dead_mark(), conn=conn)
            store.record_removal(peer_id, UNREACHABLE, self.now(), conn=conn)
        log.info("peer %s reported unreachable and failed its probe: removed", peer_id)
        return "removed"

    def sweep(self, store: Store) -> tuple[int, int]:
        """Forget long-dead peers' sessions and indexes (never their peer_id and secret), pending
        copies past their deadline or between peers that are no longer live, expired client
        sessions and the rows of directory processes long silent; returns (peers reaped, copies
        deleted)."""
        now = self.now()
        copies = store.drop_expired_copies(now, self.live_since(now))
        # Before the delete: a peer whose lease lapsed since the last sweep is still there to see.
        store.record_lapsed(self.live_since(now), self.lease_s, now - self.lease_s - self.dead_after_s)
        # Their sessions and indexes go; their peer_id and secret stay (forget-peer releases one).
        dead = store.reap_dead_peers(now - self.lease_s - self.dead_after_s)
        store.forget_silent_processes(now - self.lease_s - self.dead_after_s)
        store.drop_expired_client_sessions(now)
        store.drop_old_login_failures(now - 60.0)  # the limiter's window (logins.WINDOW_S)
        if copies or dead:
            log.info("sweep reaped %s long-dead peer(s) and removed %s expired copy plan(s)", dead, copies)
        return dead, copies


class _Periodic:
    """A daemon thread that calls tick() every interval_s until stop(); a failed tick is logged
    and tried again at the next interval (the database may be restarting)."""

    def __init__(self, name: str, interval_s: float):
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def tick(self) -> None:
        """One round of the thread's work."""
        raise NotImplementedError

    def start(self):
        """Start the thread."""
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the thread to finish and wait for it."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        """True while the thread is alive."""
        return self._thread.is_alive()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.tick()
            except Exception:
                log.exception("%s failed; will retry", self._thread.name)


class Sweeper(_Periodic):
    """A daemon thread that runs Liveness.sweep every interval until stop(): once per interval
    across every directory process on the database, whichever claims it first
    (``store.claim_task``)."""

    TASK = "sweep"

    def __init__(self, liveness: Liveness, store: Store, interval_s: float, name: str = ""):
        """Prepare (not start) the sweep thread; name says which process swept (host:pid)."""
        super().__init__("p2p-sweeper", interval_s)
        self.liveness, self.store, self.name = liveness, store, name

    def tick(self) -> bool:
        """Sweep once, if no other process swept within the interval; True if this one did."""
        # A little less than the interval: two processes ticking at the same period would
        # otherwise each find the other's claim a hair too fresh, every other time.
        if not self.store.claim_task(self.TASK, self.liveness.now(), self.interval_s * 0.9, by=self.name):
            return False
        self.liveness.sweep(self.store)
        return True


class LeaseRenewals(_Periodic):
    """Heartbeats: answered from a read, written in batches by a background thread.

    A heartbeat must prove a live token and learn whether work waits; it need not wait for its
    own write. Each directory process collects the renewals it accepted and writes them every
    flush_s in one transaction, so 10,000 peers heartbeating every 15 s cost a few dozen write
    transactions a second instead of 667 that all queue for SQLite's single writer. A renewal
    reaches the database at most flush_s late, far inside any lease; one lost with its process
    is renewed again by the peer's next heartbeat. With flush_s = 0 each heartbeat writes its
    own renewal before it is answered.
    """

    def __init__(self, liveness: Liveness, store: Store, flush_s: float):
        """Prepare (not start) the writer thread."""
        super().__init__("p2p-lease-writer", flush_s)
        self.liveness, self.store, self.flush_s = liveness, store, flush_s
        self._due: dict[str, dict] = {}
        self._lock = threading.Lock()

    def start(self) -> "LeaseRenewals":
        """Start writing renewals in the background (nothing to start when flush_s is 0)."""
        if self.flush_s > 0:
            super().start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread and write what is still due."""
        super().stop(timeout)
        self.flush()

    def heartbeat(self, token_hash: str, now: float, free_bytes: int | None = None,
                  accept_uploads: bool | None = None, set_free_bytes: bool = False) -> PeerSession | None:
        """Renew the lease of a live token (and its capacity fields); None if the token is dead."""
        live_since = self.liveness.live_since(now)
        if not self.running:
            return self.store.renew_lease(token_hash, live_since, now, free_bytes=free_bytes,
                                          accept_uploads=accept_uploads, set_free_bytes=set_free_bytes)
        session = self.store.lease_session(token_hash, live_since, now)
        if session is not None:
            renewal = {"pid": session.peer_id, "th": token_hash, "now": now,
                       "set_free": set_free_bytes, "free": free_bytes, "acc": accept_uploads}
            with self._lock:
                self._due[session.peer_id] = renewal
        return session

    def flush(self) -> int:
        """Write every renewal collected so far in one transaction; returns how many."""
        with self._lock:
            batch, self._due = self._due, {}
        if not batch:
            return 0
        try:
            self.store.renew_leases(list(batch.values()))
        except Exception:
            # Keep them for the next round unless a newer heartbeat of the same peer came in.
            with self._lock:
                for peer_id, renewal in batch.items():
                    self._due.setdefault(peer_id, renewal)
            raise
        return len(batch)

    def tick(self) -> None:
        """Write the renewals collected since the last tick."""
        self.flush()
