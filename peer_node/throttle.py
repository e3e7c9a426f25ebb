"""One token bucket, shared by the threads it limits: a peer's uploads, a scrub's reads."""
import threading
import time


class TokenBucket:
    """At most `rate` bytes a second on average, bursts of up to `burst`; take(n) waits its turn.

    A take larger than what is in the bucket is granted at once and paid back by waiting
    (the bucket goes into debt), so reads of any size are allowed and the average holds.
    Thread-safe: every take books its bytes under a lock and then waits for the debt booked
    so far, so several streams together stay at the rate and each is served in turn.
    clock() and wait(seconds) are injectable; wait returns True when the caller should stop.
    """

    def __init__(self, rate, burst=None, clock=time.monotonic, wait=time.sleep):
        if rate <= 0:
            raise ValueError(f"rate must be positive, got {rate}")
        self.rate = float(rate)
        self.burst = float(burst if burst is not None else rate)
        self.clock, self._wait = clock, wait
        self.tokens = self.burst
        self._last = clock()
        self._lock = threading.Lock()

    def take(self, n):
        """Spend n tokens, waiting until the bucket is out of debt; True if the wait was cut short."""
        with self._lock:
            now = self.clock()
            self.tokens = min(self.burst, self.tokens + max(0.0, now - self._last) * self.rate)
            self._last = now
            self.tokens -= n
            debt = -self.tokens
        if debt <= 0:
            return False
        return bool(self._wait(debt / self.rate))
