"""A running peer: gRPC server, directory session (login, publish, heartbeat), rescans, replication pushes."""
import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from peer_node import session
from peer_node.admission import Admission, Keyring
from peer_node.claims import ClaimKeeper
from peer_node.directory import DirectoryClient, retry_policy
from peer_node.errors import (AlreadyExists, DirectoryError, DirectoryUnavailable, NotFound, P2PError,
                              Unauthorized)
from peer_node.folder import SharedFolder
from peer_node.servicer import create_server, serve, stop
from peer_node.service import PeerService, ServiceLimits
from peer_node.tls import server_credentials
from peer_node.transfer import push

log = logging.getLogger(__name__)

MAX_BACKOFF = 10.0
REPLICATION_WORKERS = 2


def replica_name(name, sha256):
    """The name a replica takes where its own is used for other bytes: a.pdf -> a.<sha256[:12]>.pdf."""
    head, _, base = name.rpartition("/")
    stem, ext = os.path.splitext(base)
    tag = f".{sha256[:12]}{ext}"
    # a name component may take 255 bytes: shorten the stem, never the tag
    stem = stem.encode()[: 255 - len(tag.encode())].decode(errors="ignore")
    return f"{head}/{stem}{tag}" if head else f"{stem}{tag}"


class PeerNode:
    """Everything `p2p serve` runs; start() then stop(), or run_until(event)."""

    def __init__(self, config):
        self.config = config
        self.folder = SharedFolder(config.folder, config.piece_size)
        limits = ServiceLimits(config.chunk_size, config.upload_rate_limit, config.max_upload_bytes,
                               config.accept_uploads, config.max_transfers,
                               header_timeout=config.header_timeout, stall_timeout=config.stall_timeout,
                               min_free_bytes=config.min_free_bytes)
        self.directory = DirectoryClient(config.directory)
        # the directory's keys: from the login answer, else (key changed) GET /keys on its own
        # client, so a ticket check never waits behind a heartbeat or a page of the index
        self.keyring = Keyring(fetch=self._fetch_keys)
        admission = Admission(config.peer_id, self.keyring) if config.require_tickets else None
        self.service = PeerService(self.folder, limits, on_stored=self._stored, admission=admission)
        self.server = None
        self.port = None
        self.address = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._dirty = True          # the whole index must be (re)published with PUT
        self._pending_adds = []     # uploads received since the last publish: POSTed at once
        self._pushing = set()       # (sha256, to_peer_id) pushes in flight
        self._pushes = ThreadPoolExecutor(REPLICATION_WORKERS, thread_name_prefix="replicate")
        self._threads = []
        self._logged_in_once = False
        self._beat_every = 1.0      # a third of the lease, once logged in
        self._last_beat = 0.0       # time.monotonic() of the last heartbeat
        self.fatal = None           # a P2PError that ends `serve`: the first login was refused
        self.claims = ClaimKeeper(config, self.folder, self.directory, republish=self._republish)

    # -- lifecycle -----------------------------------------------------------------------

    def start(self):
        """Index the folder, start serving gRPC, then the directory and rescan threads."""
        changes = self.folder.scan()
        log.info("sharing %d file(s) from %s", len(changes.added), self.folder.root)
        self.server, self.port = create_server(self.config.bind_address, self.service,
                                               credentials=server_credentials(self.config))
        serve(self.server)
        self.address = session.advertised_address(self.config.host, self.port, self.config.advertise)
        for target, name in ((self._directory_loop, "directory"), (self._rescan_loop, "rescan")):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)
        self.claims.start()
        return self.port

    def stop(self, grace=5.0):
        """Log out, stop the threads and the server gracefully."""
        self._stop.set()
        self._wake.set()
        self.claims.stop()
        for t in self._threads:
            t.join(timeout=grace)
        self._pushes.shutdown(wait=False, cancel_futures=True)
        session.forget(self.folder.root)  # first: the token dies with the logout below
        if self.directory.token:
            try:
                self.directory.logout()
                log.info("logged out of %s", self.directory.url)
            except P2PError as exc:
                log.warning("logout failed: %s", exc)
        if self.server is not None:
            stop(self.server, grace)
        self.directory.close()

    # -- directory session ---------------------------------------------------------------

    def _directory_loop(self):
        state = None  # "up", "down", "rejected", "error": log once per change, not once per try
        backoff = 0.5
        interval = 1.0
        next_beat = 0.0
        last_relogin = -MAX_BACKOFF

        def change(new, level, msg, *args):
            nonlocal state
            if state != new:
                log.log(level, msg, *args)
            state = new

        while not self._stop.is_set():
            wait = backoff
            try:
                if not self.directory.token:
                    answer = self._login()
                    interval = max(0.2, float(answer.get("lease_s") or 3) / 3)
                    next_beat = time.monotonic() + interval
                    self._beat_every, self._last_beat = interval, time.monotonic()
                    state = "up"
                    self._logged_in_once = True
                    log.info("logged in to %s as %s (grpc %s, lease %ss)", self.directory.url,
                             self.config.peer_id, self.address, answer.get("lease_s"))
                self._publish()
                # a heartbeat sent between the pages of a publish counts too
                next_beat = max(next_beat, self._last_beat + interval)
                if time.monotonic() >= next_beat:
                    answer = self._beat()
                    if answer.get("lease_s"):
                        interval = max(0.2, float(answer["lease_s"]) / 3)
                    next_beat = time.monotonic() + interval
                self._beat_every = interval
                change("up", logging.INFO, "directory %s answers again", self.directory.url)
                backoff = 0.5
                wait = max(0.0, next_beat - time.monotonic())
            except DirectoryError as exc:
                if not isinstance(exc, Unauthorized) and not (exc.status in (403, 404) and self.directory.token):
                    change("error", logging.WARNING, "directory error: %s; retrying with back-off", exc)
                    backoff = min(backoff * 2, MAX_BACKOFF)
                elif self.directory.token:
                    # the directory restarted or our lease lapsed: log in again at once
                    log.info("directory %s refused our session (%s); logging in again",
                             exc.url, exc.detail or exc.title)
                    self.directory.token = None
                    session.forget(self.folder.root)  # nobody may report with a refused token
                    with self._lock:
                        self._dirty = True
                    # at once the first time; a directory that keeps refusing gets back-off
                    wait = 0.0 if time.monotonic() - last_relogin > MAX_BACKOFF else backoff
                    if wait:
                        backoff = min(backoff * 2, MAX_BACKOFF)
                    last_relogin = time.monotonic()
                elif isinstance(exc, Unauthorized) and not self._logged_in_once:
                    # a wrong secret at start is the user's mistake: retrying cannot fix it
                    self.fatal = exc
                    return
                else:
                    change("rejected", logging.ERROR, "login refused: %s", exc)
                    backoff = min(backoff * 2, MAX_BACKOFF)
            except DirectoryUnavailable as exc:
                change("down", logging.WARNING,
                       "%s; still serving peers, retrying with back-off", exc)
                backoff = min(backoff * 2, MAX_BACKOFF)
            except P2PError as exc:
                change("error", logging.WARNING, "directory error: %s; retrying with back-off", exc)
                backoff = min(backoff * 2, MAX_BACKOFF)
            if self._wake.wait(wait):
                self._wake.clear()

    def _beat(self):
        """One heartbeat; hands its copy orders to the pushers."""
        answer = self.directory.heartbeat(self.folder_free_bytes(), self.config.accept_uploads)
        self._last_beat = time.monotonic()
        self._replicate(answer.get("replicate") or [])
        self.claims.handle(answer)
        return answer

    def _keep_lease(self):
        # Between the pages of a big index (tens of seconds for a million files): the lease
        # must not lapse while the peer publishes.
        if time.monotonic() - self._last_beat >= self._beat_every:
            self._beat()

    def _login(self):
        # The index goes up after login, in pages (_publish): a big folder would not fit one body.
        answer = self.directory.login(self.config.peer_id, self.config.secret, self.address,
                                      accept_uploads=self.config.accept_uploads,
                                      free_bytes=self.folder_free_bytes())
        self._dirty = True  # publish with PUT too: login's files are optional in the contract
        if answer.get("directory_key"):
            self.keyring.learn(answer["directory_key"])
        # lets `p2p get --config` on this machine report unreachable holders as this peer
        session.write(self.folder.root, self.directory.url, self.directory.token, self.config.peer_id)
        return answer

    def _publish(self):
        with self._lock:
            dirty, adds = self._dirty, self._pending_adds
            self._dirty, self._pending_adds = False, []
        try:
            if dirty:
                files = [e.to_wire() for e in self.folder.entries()]
                self.directory.publish_index(self.config.peer_id, files, between_pages=self._keep_lease)
                log.info("published %d file(s) to %s", len(files), self.directory.url)
            elif adds:
                self.directory.add_files(self.config.peer_id, [e.to_wire() for e in adds])
                log.info("published %s", ", ".join(e.name for e in adds))
        except BaseException:
            with self._lock:  # try again next round
                self._dirty = self._dirty or dirty
                self._pending_adds = adds + self._pending_adds
            raise

    def _fetch_keys(self):
        # one short try per URL: a transfer's ticket check waits for this answer
        client = DirectoryClient(self.config.directory, timeout=2.0, retry=retry_policy(retries=0))
        try:
            return client.keys()
        finally:
            client.close()

    def folder_free_bytes(self):
        """Room for uploads: free disk space less the reserve (min_free_bytes), capped by max_upload_bytes when set."""
        free = max(0, self.folder.free_bytes() - self.config.min_free_bytes)
        cap = self.config.max_upload_bytes
        return min(free, cap) if cap else free

    # -- folder changes ------------------------------------------------------------------

    def _rescan_loop(self):
        while not self._stop.wait(self.config.rescan_interval):
            try:
                changes = self.folder.scan()
            except Exception:  # a bad scan must not kill the loop; the next one retries
                log.exception("rescan failed")
                continue
            if changes:
                log.info("folder changed: %d added, %d changed, %d removed",
                         len(changes.added), len(changes.changed), len(changes.removed))
                with self._lock:
                    self._dirty = True
                self._wake.set()

    def _republish(self):
        with self._lock:
            self._dirty = True
        self._wake.set()

    def _stored(self, entry):
        with self._lock:
            self._pending_adds.append(entry)
        self._wake.set()

    # -- replication ---------------------------------------------------------------------

    def _replicate(self, items):
        for item in items:
            key = (item.get("sha256"), item.get("to_peer_id"))
            with self._lock:
                if key in self._pushing:
                    continue
                self._pushing.add(key)
            try:
                self._pushes.submit(self._push_one, item, key)
            except RuntimeError:  # shutting down
                with self._lock:
                    self._pushing.discard(key)

    def _push_one(self, item, key):
        try:
            entry = self.folder.by_sha256(item["sha256"])
            name = item.get("name") or entry.name
            try:
                push(self.folder, entry, item["to_address"], name, self.config.chunk_size,
                     self.service.upload_bucket, ticket=item.get("ticket"))
            except AlreadyExists:
                # The backup shares other bytes under this name and never overwrites them; the
                # copy completes once it indexes our sha256 under any name, so use another one
                # (otherwise every re-planned copy to that peer would fail the same way).
                name = replica_name(name, entry.sha256)
                push(self.folder, entry, item["to_address"], name, self.config.chunk_size,
                     self.service.upload_bucket, ticket=item.get("ticket"))
            log.info("replicated %s (%s) to %s at %s", name,
                     item["sha256"][:12], item.get("to_peer_id"), item["to_address"])
        except NotFound:
            log.warning("asked to replicate %s but it is no longer shared here", item.get("sha256"))
        except P2PError as exc:
            log.warning("replication of %s to %s failed: %s", item.get("sha256", "?")[:12],
                        item.get("to_peer_id"), exc)
        except Exception:
            log.exception("replication of %s crashed", item.get("sha256"))
        finally:
            with self._lock:
                self._pushing.discard(key)
