"""Checking a shared copy against the digest it is indexed under, and quarantining one that fails.

A holder re-hashes a file when the directory orders it (`verify: [sha256]` in a heartbeat
answer: a downloader reported bad pieces from it) and when its own scrub comes round
(peer_node.scrub). A copy whose bytes no longer match while its size and mtime are those the
index recorded has rotted on disk: it moves out of the shared folder to
`<folder>/.p2p/quarantine/<sha256>-<basename>` (never listed, indexed or served: the `.p2p`
rule of protos/rules.py) and is withdrawn from the directory. A copy whose size or mtime
changed was edited by its owner: the next rescan re-indexes it, nothing is quarantined.
The holder never reports its own good copy as verified: only other peers prove a claim.
"""
import errno
import logging
import os
import queue
import shutil
import threading
import time
from dataclasses import dataclass

from peer_node.errors import NotFound, UnsafeName
from peer_node.hashing import READ_SIZE, read_blocks
from protos.rules import PieceHasher, is_sha256

log = logging.getLogger(__name__)

QUARANTINE_DIR = "quarantine"
# A copy that passed a moment ago is not read again for a repeated order (a flood of reports
# about one file must not turn into a flood of whole-file reads).
VERIFY_AGAIN_AFTER = 60.0


@dataclass(frozen=True)
class Check:
    """The verdict on one copy: ok, bad (other bytes under the same size and mtime, or an I/O
    error), changed (edited since it was indexed: the rescan's business), gone, unreadable
    (e.g. permissions: not the bytes' fault), or stopped (asked to stop)."""

    entry: object  # the FileEntry checked
    status: str
    actual: str = None  # the sha256 the bytes have now, when status is "bad"


def check_copy(folder, entry, throttle=None, stop=None, read_size=READ_SIZE):
    """Re-hash entry's file in folder; throttle(n) is called before each read of n bytes."""
    try:
        path = folder.resolve(entry.name)
        before = os.stat(path)
    except (OSError, UnsafeName):
        return Check(entry, "gone")
    if not _same_file(before, entry):
        return Check(entry, "changed")
    hasher = PieceHasher(entry.piece_size)
    pos = 0
    try:
        with open(path, "rb", buffering=0) as f:
            # a file shorter than indexed ends the blocks early: the stat below says "changed"
            for block in read_blocks(f, entry.size, read_size, before=throttle):
                hasher.update(block)
                pos += len(block)
                if stop is not None and stop.is_set():
                    return Check(entry, "stopped")
        after = os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return Check(entry, "gone")
        if exc.errno == errno.EIO:  # the disk cannot give the bytes back: as bad as rotted ones
            return Check(entry, "bad", "unreadable (I/O error)")
        log.warning("cannot read %s to verify it: %s", path, exc.strerror or exc)
        return Check(entry, "unreadable")
    if pos != entry.size or not _same_file(after, entry) or after.st_mtime_ns != before.st_mtime_ns:
        return Check(entry, "changed")  # written to while we read it
    digest = hasher.finish()
    if digest.sha256 == entry.sha256:
        return Check(entry, "ok")
    return Check(entry, "bad", digest.sha256)


def _same_file(st, entry):
    """True when st has the size and (when known) the mtime the index recorded for entry."""
    return st.st_size == entry.size and (not entry.mtime_ns or st.st_mtime_ns == entry.mtime_ns)


def quarantine_path(folder, entry):
    """Where entry's bad copy goes: <folder>/.p2p/quarantine/<sha256>-<basename>, never an existing file."""
    base = entry.name.rpartition("/")[2]
    prefix = f"{entry.sha256}-"
    # a component may take 255 bytes: shorten the base name, never the digest
    base = base.encode()[: 255 - len(prefix) - 4].decode(errors="ignore")
    directory = os.path.join(folder.work_dir, QUARANTINE_DIR)
    path = os.path.join(directory, prefix + base)
    n = 1
    while os.path.lexists(path):
        path = os.path.join(directory, f"{prefix}{base}.{n}")
        n += 1
    return path


def quarantine(folder, entry):
    """Move entry's file into the quarantine and drop it from the index; returns the new path.

    The move happens before the index forgets the name, and a rescan re-checks that a file it
    is about to add still exists (SharedFolder.scan): a rescan racing with this never puts the
    name back. NotFound when the file is already gone.
    """
    src = folder.resolve(entry.name)
    dest = quarantine_path(folder, entry)
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    try:
        os.rename(src, dest)
    except FileNotFoundError:
        folder.remove_entry(entry.name, entry.sha256)
        raise NotFound(f"{entry.name} is gone already") from None
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        shutil.move(src, dest)  # a subfolder on another filesystem: copy, then remove
    folder.remove_entry(entry.name, entry.sha256)
    return dest


class Verifier:
    """Runs verify orders one at a time in a background thread; handles every failed check.

    on_quarantined(sha256, still_shared) runs after a bad copy left the folder: still_shared
    is True when another copy with the same sha256 (under another name) is still shared, so
    the directory entry stays and only the names change.
    """

    def __init__(self, folder, on_quarantined, clock=time.monotonic):
        self.folder = folder
        self.on_quarantined = on_quarantined
        self.clock = clock
        self._orders = queue.Queue()
        self._queued = set()           # sha256s waiting or being checked
        self._passed = {}              # sha256 -> clock() when every copy last passed
        self._lock = threading.Lock()  # one quarantine at a time (orders and scrub may meet)
        self._stop = threading.Event()
        self._thread = None

    def start(self):
        """Start the worker thread."""
        self._thread = threading.Thread(target=self._run, name="verify", daemon=True)
        self._thread.start()

    def stop(self, timeout=2.0):
        """Stop the worker (a file being hashed is abandoned at the next block)."""
        self._stop.set()
        self._orders.put(None)
        if self._thread is not None:
            self._thread.join(timeout)

    def order(self, digests):
        """Queue verify orders (sha256s from a heartbeat answer); repeats and bad values are skipped."""
        for sha256 in digests or ():
            if not is_sha256(sha256):
                log.debug("ignoring a verify order for %r: not a sha256", sha256)
                continue
            with self._lock:
                if sha256 in self._queued:
                    continue
                self._queued.add(sha256)
            self._orders.put(sha256)

    def _run(self):
        while not self._stop.is_set():
            sha256 = self._orders.get()
            if sha256 is None:
                return
            try:
                self.verify(sha256)
            except Exception:  # one bad order must not end the worker
                log.exception("verifying %s crashed", sha256[:12])
            finally:
                with self._lock:
                    self._queued.discard(sha256)

    def verify(self, sha256):
        """Check every shared copy of sha256 now; returns their Checks (bad ones are quarantined)."""
        passed = self._passed.get(sha256)
        if passed is not None and self.clock() - passed < VERIFY_AGAIN_AFTER:
            log.debug("verify order for %s: every copy passed %.0f s ago", sha256[:12], self.clock() - passed)
            return []
        copies = [e for e in self.folder.entries() if e.sha256 == sha256]
        if not copies:
            log.info("verify order for %s: not shared here (any more)", sha256[:12])
            return []
        checks = [check_copy(self.folder, entry, stop=self._stop) for entry in copies]
        for check in checks:
            if check.status == "bad":
                self.failed(check)
            elif check.status == "changed":
                log.info("verify order for %s: %s changed since it was indexed; the rescan "
                         "indexes it again", sha256[:12], check.entry.name)
        if all(c.status == "ok" for c in checks):
            self._passed[sha256] = self.clock()
            log.info("verify order for %s: %s still matches", sha256[:12],
                     ", ".join(c.entry.name for c in checks))
        return checks

    def failed(self, check):
        """Quarantine the copy of a bad Check, withdraw it, and log one warning; returns the new path."""
        entry = check.entry
        with self._lock:
            self._passed.pop(entry.sha256, None)
            try:
                dest = quarantine(self.folder, entry)
            except NotFound:
                return None  # moved or deleted meanwhile: nothing left to serve
            except (OSError, UnsafeName) as exc:
                log.error("%s does not match its sha256 %s but cannot be moved to the quarantine: %s",
                          entry.name, entry.sha256[:12], getattr(exc, "strerror", None) or exc)
                return None
            still_shared = any(e.sha256 == entry.sha256 for e in self.folder.entries())
        log.warning("%s no longer matches its sha256 %s (its bytes hash to %s): moved to %s and "
                    "withdrawn from the directory", entry.name, entry.sha256[:12], (check.actual or "?")[:16],
                    os.path.relpath(dest, self.folder.root))
        try:
            self.on_quarantined(entry.sha256, still_shared)
        except Exception:  # the node logs its own failures; the quarantine stands regardless
            log.exception("withdrawing %s crashed", entry.sha256[:12])
        return dest
