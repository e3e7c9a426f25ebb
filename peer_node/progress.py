"""Progress of a transfer on stderr: on a terminal a rich bar (rate and ETA) with a line per
holder under it; otherwise one plain line per step (every 10 %, and each change of a holder's
state), so logs and pipes stay readable.

Only this run's bytes count toward the rate: a resumed download starts its bar at the bytes
already verified, and rich's speed is computed from what is added after that. rich is
imported only when a terminal is drawn: a command in a script or a benchmark does not pay
for it.
"""
import logging
import sys
import time

REFRESH_EVERY = 0.1  # the terminal is redrawn at most this often
PLAIN_STEPS = 10  # plain lines: one per tenth of the transfer


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
    """One transfer of size bytes: swarm(SwarmProgress) or update(done) often, then finish()."""

    def __init__(self, label, size=0, stream=None, tty=None, clock=time.monotonic):
        self.label, self.size = label, size
        self.stream = stream or sys.stderr
        self.tty = _isatty(self.stream) if tty is None else tty
        self.clock = clock
        self._t0 = clock()
        self._start_at = None  # bytes already there when this run began (a resumed download)
        self._last_step = 0  # plain lines start at the first 10 %: nothing moved is not a step
        self._states = {}  # peer_id -> state last shown
        self._last_draw = 0.0
        self._bar = None  # the rich display, made on the first update on a terminal
        self._done = False

    # -- what callers report ---------------------------------------------------------------

    def swarm(self, snap):
        """A download engine's SwarmProgress: snap.total is this run's share of the file."""
        resumed = max(0, self.size - snap.total) if self.size else 0
        if self._start_at is None:
            self._start_at, self._t0 = resumed, self.clock()
        self.update(resumed + snap.done, holders=snap.holders)

    def update(self, done, total=None, holders=()):
        """done of total (default: size) bytes are through; holders: (peer_id, state, bytes) each."""
        if self._done:
            return
        if total is not None:
            self.size = total
        if self._start_at is None:
            self._start_at = done
            self._t0 = self.clock()
        if self.tty:
            self._draw(done, holders)
        else:
            self._plain(done, holders)

    def finish(self):
        """End the display (idempotent): the final bar stays on the terminal."""
        if self._done:
            return
        self._done = True
        if self._bar is not None:
            self._bar.refresh()
            self._bar.stop()

    # -- plain lines ----------------------------------------------------------------------------

    def line(self, done):
        """The text for one state: percent, bytes, this run's rate, ETA."""
        elapsed = max(self.clock() - self._t0, 1e-6)
        rate = max(done - (self._start_at or 0), 0) / elapsed
        total = self.size
        pct = 100.0 * done / total if total else 100.0
        eta = _clock((total - done) / rate) if rate > 0 and done < total else "--:--"
        return (f"{self.label}: {pct:5.1f}% {human_size(done)} of {human_size(total)}"
                f" at {human_size(rate)}/s, ETA {eta}")

    def _plain(self, done, holders):
        out = []
        for peer_id, state, verified in holders:
            # a holder that starts with nothing verified is no news: an error right after stays one line
            news = state != "active" or verified > 0
            if not news:
                continue  # shown once its first piece is verified
            if self._states.get(peer_id) != state and state in ("active", "busy", "banned", "stalled", "failed"):
                out.append(f"  holder {peer_id}: {state} ({human_size(verified)} verified)")
            self._states[peer_id] = state
        step = int(PLAIN_STEPS * done / self.size) if self.size else PLAIN_STEPS
        if step != self._last_step:
            self._last_step = step
            out.insert(0, self.line(done))
        if out:
            self.stream.write("\n".join(out) + "\n")
            self.stream.flush()

    # -- the terminal ---------------------------------------------------------------------------

    def _draw(self, done, holders):
        if self._bar is None:
            self._bar = _RichBar(self.stream, self.label, self.size, self._start_at, self.clock)
        self._bar.holders = holders
        self._bar.set(done, self.size)
        now = self.clock()
        if now - self._last_draw >= REFRESH_EVERY or done >= self.size:
            self._bar.refresh()
            self._last_draw = now


def _isatty(stream):
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class _RichBar:
    """rich's Progress with the holders' lines under its bar; refreshed by us, no thread of its own."""

    def __init__(self, stream, label, size, start_at, clock):
        from rich.console import Console
        from rich.progress import (BarColumn, DownloadColumn, ProgressColumn, TaskProgressColumn, TextColumn,
                                   TimeRemainingColumn)
        from rich.progress import Progress as RichProgress
        from rich.table import Table
        from rich.text import Text

        owner = self

        class Speed(ProgressColumn):
            """This run's rate in binary units, as DownloadColumn counts (rich's own says MB/s)."""

            def render(self, task):
                speed = task.finished_speed or task.speed
                return Text("?" if speed is None else f"{human_size(speed)}/s", style="progress.data.speed")

        class WithHolders(RichProgress):
            def get_renderables(self):
                yield self.make_tasks_table(self.tasks)
                if owner.holders:
                    table = Table.grid(padding=(0, 2))
                    for peer_id, state, verified in owner.holders:
                        table.add_row(f"  {peer_id}", state, human_size(verified))
                    yield table

        self.holders = ()
        # no auto-refresh thread (a signal must find no thread of ours to wait for), and the
        # process's stdout/stderr are left alone: --json goes to stdout after the bar
        self.progress = WithHolders(
            TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
            DownloadColumn(binary_units=True), Speed(), TimeRemainingColumn(),
            console=Console(file=stream, force_terminal=True), auto_refresh=False,
            redirect_stdout=False, redirect_stderr=False, get_time=clock)
        # the bar starts at the bytes already there: rich's speed counts only what is added
        self.task = self.progress.add_task(label, total=size or None, completed=start_at)
        self.progress.start()
        # Log lines (a banned holder, ...) written straight to the bar's stream would be drawn
        # over by the next refresh: while the bar is up they go through rich, above the bar.
        from rich.file_proxy import FileProxy

        proxy = FileProxy(self.progress.console, stream)
        self._handlers = [(h, h.setStream(proxy)) for h in logging.getLogger().handlers
                          if type(h) is logging.StreamHandler and h.stream is stream]

    def set(self, done, size):
        """Move the bar to done of size bytes."""
        self.progress.update(self.task, completed=done, total=size or None)

    def refresh(self):
        """Redraw now."""
        self.progress.refresh()

    def stop(self):
        """Leave the last drawing on the terminal; log lines go to the stream again."""
        for handler, old in self._handlers:
            handler.setStream(old)
        self.progress.stop()
