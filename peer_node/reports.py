"""Reports `p2p get` makes about holders: unreachable, sending bad data, verified.

They go through the command's own client session (DESIGN.md, "Client sessions and
identities": a login without grpc_address may search, ask for tickets and report, and is
never listed as live); cli.get is the one place that builds the reporter.
"""
import logging
import threading

from peer_node.errors import DirectoryError, P2PError, Unauthorized

log = logging.getLogger(__name__)


class Reporter:
    """Reports holders to the directory with the command's client session (directory.token).

    A report renews nobody's lease and lists nobody as live. Without a session (no peer_id
    and secret given), one warning says that nothing is reported, only once there is
    something to report (a holder that failed or sent bad data), and the download goes on.

    Calling it reports an unreachable holder (on_unreachable); corrupt() a holder banned for
    bad data (on_corrupt); verified() the holders whose pieces made it into a finished file.
    """

    def __init__(self, directory, peer_id=None):
        """directory: the command's DirectoryClient, logged in as peer_id (or not logged in)."""
        self.directory, self.peer_id = directory, peer_id
        self._lock = threading.Lock()  # parallel downloads may report from several threads
        self._declined = False         # told the user once that nothing is reported
        self._proven = set()           # (peer_id, sha256) reported verified by this command

    def __call__(self, holder, error):
        with self._lock:
            if self._session(f"not reporting {holder.peer_id} as unreachable") and not self._mine(holder.peer_id):
                self._report(holder.peer_id, "unreachable", self._unreachable, holder.peer_id)

    def corrupt(self, holder, sha256):
        """Report a holder whose pieces failed verification (the directory asks it to re-verify)."""
        with self._lock:
            if self._session(f"not reporting {holder.peer_id} for bad data") and not self._mine(holder.peer_id):
                self._report(holder.peer_id, "as sending bad data", self.directory.report_corrupt,
                             holder.peer_id, sha256)

    def verified(self, result):
        """Report once each holder whose pieces verified in a finished download (a banned one is not)."""
        with self._lock:
            for peer_id in result.sources:
                key = (peer_id, result.sha256)
                if peer_id in result.banned or key in self._proven or self._mine(peer_id):
                    continue
                # good news is not worth a warning: without a session it is skipped quietly
                if not self._session(f"not reporting {peer_id} as verified", quiet=True):
                    return
                self._proven.add(key)
                self._report(peer_id, "as verified", self.directory.report_verified, peer_id, result.sha256,
                             quiet=True)

    def _mine(self, peer_id):
        """True for the command's own peer_id: a peer never reports itself."""
        return peer_id == self.peer_id

    def _session(self, what, quiet=False):
        """True when there is a session to report with (else one warning, unless quiet)."""
        if self.directory.token:
            return True
        if not quiet and not self._declined:
            log.warning("cannot report unreachable holders or bad copies to the directory: no client "
                        "session (give --peer-id and --secret, or a --config with them); continuing the download")
            self._declined = True
        log.debug("%s: no session", what)
        return False

    def _unreachable(self, peer_id):
        verdict = self.directory.report_unreachable(peer_id)
        log.info("reported %s unreachable; directory says %s", peer_id, verdict)

    def _report(self, peer_id, what, fn, *args, quiet=False):
        shown = what.removeprefix("as ")
        level = logging.INFO if quiet else logging.WARNING  # a proof that did not go up harms nobody
        try:
            fn(*args)
        except Unauthorized as exc:
            log.log(level, "could not report %s %s: the directory refused the client session of %s (%s)",
                    peer_id, shown, self.peer_id, exc.detail or exc.title)
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
