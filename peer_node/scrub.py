"""The scrub: a holder re-hashes its own files in the background, so bit rot is found before a
downloader meets it (as a filesystem's scrub does).

One pass visits every shared file in name order, spread evenly over `[scrub] interval`
seconds (a week by default), and never reads faster than `[scrub] rate` bytes/s (a token
bucket; 8 MiB/s by default): the disk's load stays flat instead of a burst once a week. A
pass that cannot finish in time at that rate simply runs late. Where the pass stands is kept
in `.p2p/scrub.json`, so a peer that restarts more often than the interval still reaches the
files at the end of the list. A copy that fails is handled as a failed verify order
(peer_node.verify: quarantined and withdrawn).
"""
import json
import logging
import os
import tempfile
import threading
import time

from peer_node.throttle import TokenBucket
from peer_node.verify import check_copy

log = logging.getLogger(__name__)

STATE_FILE = "scrub.json"
_STATE_VERSION = 1
PASS_DONE = "\U0010ffff"  # sorts after every name: the saved position of a finished pass
SAVE_EVERY = 30.0  # seconds between saves of the pass's position (and at every pass's end)


class Scrubber:
    """Re-hashes every shared file once per interval at most `rate` bytes/s; on_bad(Check) for a failure."""

    def __init__(self, folder, rate, interval, on_bad, clock=time.time, wait=None):
        self.folder, self.rate, self.interval, self.on_bad = folder, rate, interval, on_bad
        self.clock = clock
        self._stop = threading.Event()
        self._wait = wait or self._stop.wait  # (seconds) -> True when stopping
        self.bucket = TokenBucket(rate, clock=clock, wait=self._wait) if rate else None
        self.state_path = os.path.join(folder.work_dir, STATE_FILE)
        self.stats = {"passes": 0, "files": 0, "bytes": 0, "bad": 0}
        self._thread = None

    def start(self):
        """Start the background thread (no-op with rate 0: the scrub is off)."""
        if self.bucket is None:
            log.info("scrub off ([scrub] rate = 0)")
            return
        self._thread = threading.Thread(target=self._run, name="scrub", daemon=True)
        self._thread.start()

    def stop(self, timeout=2.0):
        """Stop after the block being read; the pass's position is kept."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self):
        try:
            while not self._stop.is_set():
                self.run_pass()
        except Exception:  # a broken scrub must not take the peer down; it logs and ends
            log.exception("the scrub stopped")

    def run_pass(self):
        """Visit every file due in the current pass (resuming a saved one), then wait for the pass's end."""
        started, after = self._load()
        now = self.clock()
        if started is None or now - started >= self.interval or started > now:
            started, after = now, ""
        entries = self.folder.entries()
        slot = self.interval / max(1, len(entries))
        last_save = self.clock()
        visited = 0
        log.debug("scrub pass from %r: %d file(s), one every %.1f s", after, len(entries), slot)
        for n, entry in enumerate(entries):
            if entry.name <= after:
                continue
            # even pacing: the n-th file of the pass is due at started + n * slot
            delay = started + n * slot - self.clock()
            if delay > 0 and self._wait(delay):
                break
            if self._stop.is_set():
                break
            self.scrub(entry)
            visited += 1
            after = entry.name
            if self.clock() - last_save >= SAVE_EVERY:
                self._save(started, after)
                last_save = self.clock()
        else:
            if visited:
                self.stats["passes"] += 1
                self._save(started, PASS_DONE)
                log.info("scrub pass done: %d file(s) checked since start, %d bad",
                         self.stats["files"], self.stats["bad"])
            delay = started + self.interval - self.clock()
            if delay > 0:
                self._wait(delay)
            return
        self._save(started, after)

    def scrub(self, entry):
        """Check one file now at the bucket's rate; returns its Check."""
        check = check_copy(self.folder, entry, throttle=self.bucket.take if self.bucket else None, stop=self._stop)
        if check.status in ("ok", "bad"):
            self.stats["files"] += 1
            self.stats["bytes"] += entry.size
        if check.status == "bad":
            self.stats["bad"] += 1
            self.on_bad(check)
        return check

    def _load(self):
        try:
            with open(self.state_path, encoding="utf-8") as f:
                raw = json.load(f)
            if raw.get("version") == _STATE_VERSION:
                return float(raw["started"]), str(raw["after"])
        except FileNotFoundError:
            pass
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            log.debug("starting a new scrub pass: unreadable %s (%s)", self.state_path, exc)
        return None, ""

    def _save(self, started, after):
        try:
            fd, tmp = tempfile.mkstemp(dir=self.folder.tmp_dir, prefix="scrub-")
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump({"version": _STATE_VERSION, "started": started, "after": after}, f)
            os.replace(tmp, self.state_path)
        except OSError as exc:
            log.debug("cannot save the scrub's position: %s", exc)
