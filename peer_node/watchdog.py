"""Ends transfers whose other side stopped moving (no grpc here: it calls the cancel it is given).

A gRPC server thread waiting for an Upload's next message, or blocked sending a Download chunk
to a client that stopped reading, waits inside grpc with no timeout of its own. Every such
call is watched: it arms its Watch before it waits for the other side and disarms it when
that side moved; one thread cancels the calls whose armed deadline passed, which makes the
wait end with an error and frees the thread and the transfer slot.
"""
import logging
import threading
import time

log = logging.getLogger(__name__)

TICK_S = 0.1  # how late, at most, a stalled call is cancelled


class Watch:
    """One watched call: arm(timeout, why) before waiting on the other side, disarm() once it moved."""

    def __init__(self, dog, cancel):
        self._dog, self._cancel = dog, cancel
        self.deadline = None
        self.why = None
        self.fired = None       # the reason it was cancelled, None while it was not

    def arm(self, timeout, why):
        """From now, cancel the call unless disarm() comes within timeout seconds."""
        self.why = why
        self.deadline = self._dog.clock() + timeout

    def disarm(self):
        """The other side moved: no deadline until the next arm()."""
        self.deadline = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._dog.forget(self)
        return False

    def _fire(self):
        self.fired = self.why
        self.deadline = None
        try:
            self._cancel()
        except Exception as exc:  # a call that has ended meanwhile
            log.debug("cancelling a stalled call failed: %s", exc)


class Watchdog:
    """One daemon thread that fires the Watches whose deadline has passed."""

    def __init__(self, clock=time.monotonic, tick=TICK_S):
        self.clock = clock
        self.tick = tick
        self._watches = set()
        self._lock = threading.Lock()
        self._thread = None
        self._stop = threading.Event()

    def watch(self, cancel):
        """A new, disarmed Watch that calls cancel() when it expires; use it as a context manager."""
        w = Watch(self, cancel)
        with self._lock:
            self._watches.add(w)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="stall-watchdog", daemon=True)
                self._thread.start()
        return w

    def forget(self, w):
        """Stop watching w (its call ended)."""
        with self._lock:
            self._watches.discard(w)

    def check(self):
        """Fire every expired Watch now; returns how many fired."""
        now = self.clock()
        with self._lock:
            due = [w for w in self._watches if w.deadline is not None and w.deadline <= now]
            for w in due:
                self._watches.discard(w)
        for w in due:
            log.info("cancelled a transfer: %s", w.why)
            w._fire()
        return len(due)

    def close(self):
        """Stop the thread (Watches left are no longer fired)."""
        self._stop.set()

    def _run(self):
        while not self._stop.wait(self.tick):
            self.check()
