"""Progress reporting for long transfers: a redrawn bar on a terminal, plain lines otherwise."""
import sys
import time


def human_size(n):
    """1536 -> '1.5 KiB'."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def _clock(seconds):
    seconds = int(seconds)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class Progress:
    """Call update(done, total) often; it redraws at most 10 times a second (or every 10% off a TTY)."""

    def __init__(self, label, stream=None, tty=None, start_at=0):
        self.label = label
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self._t0 = time.monotonic()
        self._start_at = start_at  # resumed bytes do not count towards the rate
        self._last_draw = 0.0
        self._last_step = -1
        self._done = False

    def line(self, done, total):
        """The text for one state: percent, bytes, rate, ETA."""
        elapsed = max(time.monotonic() - self._t0, 1e-6)
        rate = max(done - self._start_at, 0) / elapsed
        pct = 100.0 * done / total if total else 100.0
        eta = _clock((total - done) / rate) if rate > 0 and done < total else "--:--"
        return (f"{self.label}: {pct:5.1f}% {human_size(done)} of {human_size(total)}"
                f" at {human_size(rate)}/s, ETA {eta}")

    def update(self, done, total):
        """Report that done of total bytes are through."""
        if self._done:
            return
        now = time.monotonic()
        if self.tty:
            if now - self._last_draw >= 0.1 or done >= total:
                width = 24
                filled = int(width * done / total) if total else width
                bar = "#" * filled + "." * (width - filled)
                self.stream.write(f"\r[{bar}] {self.line(done, total)}\x1b[K")
                self.stream.flush()
                self._last_draw = now
        else:
            step = int(10 * done / total) if total else 10
            if step != self._last_step:
                self._last_step = step
                self.stream.write(self.line(done, total) + "\n")
                self.stream.flush()
        if done >= total:
            self.finish()

    def finish(self):
        """End the bar's line on a terminal."""
        if self.tty and not self._done:
            self.stream.write("\n")
            self.stream.flush()
        self._done = True
