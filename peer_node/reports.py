"""Reports `p2p get` makes about holders: unreachable, sending bad data, verified.

They go through the session of the peer that serves the command's --config folder, while it
runs (peer_node/session.py); cli._reporter is the one place that picks this reporter.
"""
import logging
import threading

from peer_node import session
from peer_node.directory import DirectoryClient
from peer_node.errors import DirectoryError, P2PError, Unauthorized

log = logging.getLogger(__name__)


class SessionReporter:
    """Reports holders to the directory through the session of the peer serving cfg's folder.

    Only the live session of the peer that serves cfg's folder is used (peer_node/session.py).
    The command never logs in as that peer: a login would make it look live at an address
    where nothing may listen. A report renews nobody's lease. Without a usable session, one
    warning says that nothing is reported (only once there is something to report: a holder
    that failed or sent bad data), and the download goes on.

    Calling it reports an unreachable holder (on_unreachable); corrupt() a holder banned for
    bad data (on_corrupt); verified() the holders whose pieces made it into a finished file.
    """

    def __init__(self, cfg):
        self.cfg = cfg
        self._lock = threading.Lock()  # parallel downloads may report from several threads
        self._client = None            # a DirectoryClient holding the session's token
        self._reason = None            # why there is no session, once looked for
        self._declined = False         # told the user once that nothing is reported
        self._proven = set()           # (peer_id, sha256) reported verified by this command

    def __call__(self, holder, error):
        with self._lock:
            if self._session(f"not reporting {holder.peer_id} as unreachable") is not None:
                self._report(holder.peer_id, "unreachable", self._unreachable, holder.peer_id)

    def corrupt(self, holder, sha256):
        """Report a holder whose pieces failed verification (the directory asks it to re-verify)."""
        with self._lock:
            if self._session(f"not reporting {holder.peer_id} for bad data") is not None \
                    and not self._mine(holder.peer_id):
                self._report(holder.peer_id, "as sending bad data", self._client.report_corrupt,
                             holder.peer_id, sha256)

    def verified(self, result):
        """Report once each holder whose pieces verified in a finished download (a banned one is not)."""
        with self._lock:
            for peer_id in result.sources:
                key = (peer_id, result.sha256)
                if peer_id in result.banned or key in self._proven:
                    continue
                # good news is not worth a warning: without a session it is skipped quietly
                if self._session(f"not reporting {peer_id} as verified", quiet=True) is None:
                    return
                if self._mine(peer_id):
                    continue
                self._proven.add(key)
                self._report(peer_id, "as verified", self._client.report_verified, peer_id, result.sha256,
                             quiet=True)

    def _mine(self, peer_id):
        """True for the session's own peer: a peer never reports itself."""
        return peer_id == self.cfg.peer_id

    def _session(self, what, quiet=False):
        """The client with the session's token, or None (after one warning unless quiet)."""
        if self._client is None and self._reason is None:
            self._client, self._reason = self._connect()
        if self._client is None:
            if not quiet and not self._declined:
                log.warning("cannot report unreachable holders or bad copies to the directory: %s; "
                            "continuing the download", self._reason)
                self._declined = True
            log.debug("%s: no session", what)
        return self._client

    def _connect(self):
        """(a client with the running peer's token, None), or (None, why not)."""
        cfg = self.cfg
        found = session.read(cfg.folder) if cfg.folder else None
        if not cfg.folder:
            return None, "give --config of a running peer (`p2p serve`) to report through its session"
        if found is None or (cfg.peer_id and found.peer_id != cfg.peer_id):
            return None, (f"peer {cfg.peer_id or '(unnamed)'} is not running from {cfg.folder} "
                          "(no live session); start it with `p2p serve` to report through it")
        if found.url not in cfg.directory:
            return None, f"peer {found.peer_id} is logged in to {found.url}, not to {', '.join(cfg.directory)}"
        # the token goes only to the directory that issued it: a fail-over list may come
        # from a flag, and a bearer token is not to be shown to whoever is listed there
        client = DirectoryClient([found.url])
        client.token = found.token
        return client, None

    def _unreachable(self, peer_id):
        verdict = self._client.report_unreachable(peer_id)
        log.info("reported %s unreachable; directory says %s", peer_id, verdict)

    def _report(self, peer_id, what, fn, *args, quiet=False):
        shown = what.removeprefix("as ")
        level = logging.INFO if quiet else logging.WARNING  # a proof that did not go up harms nobody
        try:
            fn(*args)
        except Unauthorized as exc:
            # the peer's lease lapsed or the directory forgot it; the peer logs in again itself
            log.log(level, "could not report %s %s: the directory refused the session of peer %s (%s)",
                        peer_id, shown, self.cfg.peer_id, exc.detail or exc.title)
        except DirectoryError as exc:
            if exc.status == 404:
                log.info("did not report %s %s: the directory no longer lists it", peer_id, shown)
            else:
                log.log(level, "could not report %s %s: %s", peer_id, shown, exc)
        except P2PError as exc:
            log.log(level, "could not report %s %s: %s", peer_id, shown, exc)
        else:
            if fn is not self._unreachable:
                log.info("reported %s %s", peer_id, what)
