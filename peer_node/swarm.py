"""The download engine: verified pieces from up to parallel_sources holders at once.

Every worker owns one holder and streams lanes of pieces from it (peer_node.lanes decides
who fetches what). Each piece is hashed as it lands, checked against its published hash and
only then written in place in the partial file; a holder that sends a bad piece or breaks
the protocol is banned for this download, one that sends nothing for stall_timeout seconds
is cancelled, one that answers RESOURCE_EXHAUSTED is retried after a short back-off.
Verified pieces go to the writer (peer_node.writer), which also computes the whole-file
sha256 as they land and saves the piece record. The caller's thread supervises: the stall
watchdog, the give-up deadline, progress, and cancel().
"""
import logging
import threading
import time

from peer_node.client import RECEIVE_WINDOW, PeerClient
from peer_node.config import MAX_CHUNK_SIZE
from peer_node.errors import Busy, P2PError, PeerUnavailable, RemoteError
from peer_node.lanes import Board
from peer_node.pieces import PieceBuffer
from peer_node.swarm_state import CancelToken, HolderState, SwarmProgress, SwarmStats
from peer_node.writer import PieceWriter

log = logging.getLogger(__name__)

TICK = 0.05  # how often the supervisor looks at the workers (cancel() acts within this)
PROGRESS_EVERY = 0.1
JOIN_ON_CANCEL = 0.5  # how long cancel() waits for workers and writer before leaving them behind
BUSY_FIRST, BUSY_MAX = 0.25, 4.0  # back-off after RESOURCE_EXHAUSTED, doubling per answer
GIVE_UP_STALLS = 3  # with nothing received for this many stall timeouts, the download ends
# With several workers, lanes of at most this much, taken front to back: the whole-file hash
# then follows the download closely instead of reading most of the file back at the end
# (measured: 1.5 s after the last piece of 1 GiB from four holders with one lane each).
LANE_BYTES = 32 * 1024 * 1024


class _Banned(Exception):
    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


class _Stalled(Exception):
    pass


class _Stopped(Exception):
    pass


class _Attempt:
    """One Download call of a lane, cancellable from other threads with a reason."""

    def __init__(self, stream):
        self.stream = stream
        self.reason = None

    def cancel(self, reason):
        if self.reason is None:
            self.reason = reason
        self.stream.cancel()


class Swarm:
    """One download of one file into a partial file; run() once, cancel() from anywhere."""

    def __init__(self, sha256, geometry, holders, partial, resumed, record, *, parallel=4,
                 stall_timeout=10.0, give_up_after=None, on_progress=None, on_unreachable=None,
                 on_corrupt=None, cancel=None, clock=time.monotonic, ticket=None):
        self.sha256, self.geometry, self.partial, self.record = sha256, geometry, partial, record
        self.ticket = ticket  # sent to every holder: a string, or a function answering a current one
        self.parallel = parallel if geometry.verified else 1
        self.stall_timeout = stall_timeout
        self.give_up_after = give_up_after or GIVE_UP_STALLS * stall_timeout
        self.on_progress, self.on_unreachable, self.on_corrupt = on_progress, on_unreachable, on_corrupt
        self.token = cancel or CancelToken()
        self.clock = clock
        self.board = Board(geometry.count, resumed.done)
        self.total = sum(geometry.length(i) for i in range(geometry.count) if not resumed.done[i])
        self._holders = [HolderState(h) for h in holders]
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._wake = threading.Event()
        self._stopping = False
        self._fatal = None
        self._alive = 0
        self._failed_pieces = 0
        self._stalls = 0
        self._last_progress = clock()
        self._stuck_after = min(2.0, stall_timeout / 2)
        # a chunk may span pieces (honest peers send up to MAX_CHUNK_SIZE), never more
        self._max_chunk = max(geometry.piece_size, MAX_CHUNK_SIZE)
        self._max_run = None  # set in run(), when the number of workers is known
        self._window = RECEIVE_WINDOW  # per source: the download's window is shared (run())
        self._writer = PieceWriter(partial, geometry, self.board.done, resumed.whole, resumed.prefix,
                                   self._written, record)

    def cancel(self, signum=None):
        """Stop every worker within about a second; the partial and its record are kept."""
        self.token.cancel(signum)

    # -- the caller's thread --------------------------------------------------------------

    def run(self):
        """Fetch every missing piece; answers "complete", "cancelled", "no holders" or "gave up".

        Raises the first local error (a full disk, ...) that stopped the download.
        """
        self.token.running = True
        try:
            return self._run()
        finally:
            self.token.running = False

    def _run(self):
        workers = 0 if self.board.complete else min(self.parallel, len(self._holders))
        if workers > 1:
            self._max_run = max(1, LANE_BYTES // self.geometry.piece_size)
            self._window = RECEIVE_WINDOW // workers
        threads = [threading.Thread(target=self._worker, name=f"swarm-{n}", daemon=True)
                   for n in range(workers)]
        self._alive = len(threads)
        self._writer.start()
        for t in threads:
            t.start()
        outcome = "fatal"
        deadline = None
        try:
            outcome = self._supervise()
        finally:
            log.debug("%s: stopping the workers", outcome)
            deadline = self.clock() + (JOIN_ON_CANCEL if outcome == "cancelled" else 10.0)
            self._shutdown(threads, deadline)
        # what is queued is still written (it is verified); the hash is finished only when complete
        self._writer.close(hash_rest=outcome == "complete")
        if outcome == "complete":
            outcome = self._finish_hash()
        else:
            self._writer.join(max(0.0, deadline - self.clock()))
        self._writer.save_record(durable=outcome != "cancelled")
        log.debug("workers and writer stopped, piece record saved")
        self._report_progress()
        fatal = self._fatal or self._writer.error
        if fatal is not None:
            raise fatal
        return outcome

    def _supervise(self):
        next_progress = self.clock()
        while True:
            now = self.clock()
            if self.token.cancelled:
                return "cancelled"
            with self._lock:
                if self._fatal is not None or self._writer.error is not None:
                    return "fatal"
                if self.board.complete:
                    return "complete"
                if self._alive == 0 and not self.board.in_writing:  # the last pieces may still land
                    return "no holders"
                if now - self._last_progress > self.give_up_after:
                    return "gave up"
                stalled = [lane.attempt for lane in self.board.lanes if lane.attempt is not None
                           and now - lane.last_progress > self.stall_timeout]
            for attempt in stalled:
                attempt.cancel("stalled")
            if now >= next_progress:
                self._report_progress()
                next_progress = now + PROGRESS_EVERY
            self._wake.wait(TICK)
            self._wake.clear()

    def _shutdown(self, threads, deadline):
        with self._lock:
            self._stopping = True
            attempts = [lane.attempt for lane in self.board.lanes if lane.attempt is not None]
            self._cond.notify_all()
        for attempt in attempts:
            attempt.cancel("stop")
        for t in threads:
            t.join(max(0.0, deadline - self.clock()))
            if t.is_alive():
                log.debug("%s did not stop in time; leaving it behind", t.name)

    def _finish_hash(self):
        behind = self.geometry.count - self._writer.hashed
        log.debug("every piece is written; %d of %d still to hash", behind, self.geometry.count)
        while not self._writer.join(TICK):
            if self.token.cancelled:
                self._writer.stop_hashing()
                self._writer.join(JOIN_ON_CANCEL)
                return "cancelled"
        log.debug("whole-file sha256 done")
        return "complete" if self._writer.complete else "fatal"

    def whole_hexdigest(self):
        """sha256 of the whole file (valid after run() answered "complete")."""
        return self._writer.hexdigest()

    def _written(self, index):
        with self._lock:
            self.board.finish_write(index)
            self._cond.notify_all()

    def progress(self):
        """A SwarmProgress snapshot."""
        with self._lock:
            return SwarmProgress(sum(h.verified for h in self._holders), self.total,
                                 sum(h.received for h in self._holders),
                                 tuple((h.holder.peer_id, h.state, h.verified) for h in self._holders))

    def _report_progress(self):
        if self.on_progress is not None:
            self.on_progress(self.progress())

    def stats(self):
        """SwarmStats of the run so far."""
        with self._lock:
            out = SwarmStats(stalled=self._stalls, failed_verification=self._failed_pieces)
            for h in self._holders:
                pid = h.holder.peer_id
                out.holders[pid] = {"state": h.state, "received": h.received,
                                    "verified": h.verified, "reason": h.reason}
                out.fetched += h.received
                out.busy += h.busy_answers
                if h.state == "banned":
                    out.banned[pid] = h.reason
                if h.verified:
                    out.sources.append(pid)
                if not h.usable:
                    out.failed.append(pid)
            return out

    def outcome_detail(self):
        """One line on why the holders could not finish: each one that dropped out, and why."""
        with self._lock:
            gone = [f"{h.holder.peer_id} {h.state} ({h.reason})" for h in self._holders if not h.usable]
            busy = [h.holder.peer_id for h in self._holders if h.usable and h.busy_answers]
        parts = gone + ([f"{', '.join(busy)} busy"] if busy else [])
        return "; ".join(parts) or "no holder answered"

    # -- workers ---------------------------------------------------------------------------

    def _worker(self):
        try:
            while True:
                hs = self._pick_holder()
                if hs is None:
                    return
                self._use_holder(hs)
        except BaseException as exc:  # a local failure (disk full, ...): the download stops
            with self._lock:
                if self._fatal is None:
                    self._fatal = exc
                self._stopping = True
                self._cond.notify_all()
        finally:
            with self._lock:
                self._alive -= 1
                self._cond.notify_all()
            self._wake.set()

    def _pick_holder(self):
        with self._lock:
            while not self._stopping and not self.board.complete:
                now = self.clock()
                free = [h for h in self._holders if h.usable and not h.in_use]
                if not free:
                    return None
                ready = [h for h in free if h.backoff_until <= now]
                if ready:
                    hs = min(ready, key=lambda h: h.busy_answers)
                    hs.in_use = True
                    return hs
                self._cond.wait(min(h.backoff_until for h in free) - now)
            return None

    def _use_holder(self, hs):
        report = None
        peer = PeerClient(hs.holder.address, ticket=self.ticket, window=self._window)
        try:
            report = self._serve(hs, peer)
        finally:
            peer.close()  # before any report: a slow directory must not keep the channel open
            with self._lock:
                hs.in_use = False
                if hs.state in ("active", "idle"):
                    hs.state = "done" if self.board.complete else "waiting"
                self._cond.notify_all()
        if report is not None:
            fn, args = report
            try:
                fn(*args)
            except Exception as exc:  # a reporting failure must not end the download
                log.warning("reporting holder %s failed: %s", hs.holder.peer_id, exc)

    def _serve(self, hs, peer):
        """Fetch lanes from one holder until there is no work or it drops out; answers a report."""
        while True:
            lane = self._claim(hs)
            if lane is None:
                return None
            try:
                self._fetch(hs, peer, lane)
            except _Stopped:
                return None
            except _Banned as exc:
                return self._drop(hs, "banned", exc.reason, self.on_corrupt, (hs.holder, self.sha256))
            except _Stalled:
                with self._lock:
                    self._stalls += 1
                reason = f"sent nothing for {self.stall_timeout:g} s"
                return self._drop(hs, "stalled", reason, self.on_unreachable,
                                  (hs.holder, PeerUnavailable(hs.holder.address, reason)))
            except Busy:
                self._back_off(hs)
                return None
            except PeerUnavailable as exc:
                if getattr(exc, "ours", False):
                    raise  # our own TLS settings (tls.explain): no holder can serve us, stop with its line
                return self._drop(hs, "failed", exc.detail or str(exc), self.on_unreachable, (hs.holder, exc))
            except RemoteError as exc:
                if exc.code == "PROTOCOL":
                    return self._drop(hs, "banned", exc.detail, self.on_corrupt, (hs.holder, self.sha256))
                return self._drop(hs, "failed", str(exc), None, ())
            except P2PError as exc:
                return self._drop(hs, "failed", str(exc), None, ())
            finally:
                with self._lock:
                    self.board.release(lane)
                    self._cond.notify_all()

    def _claim(self, hs):
        with self._lock:
            while not self._stopping and not self.board.complete:
                lane = self.board.claim(hs, lambda victim: self._worth_duplicating(hs, victim), self._max_run)
                if lane is not None:
                    hs.state = "active"
                    lane.last_progress = self.clock()
                    return lane
                hs.state = "idle"
                self._cond.wait(0.25)
            return None

    def _worth_duplicating(self, me, victim):
        """Endgame: fetch victim's last piece too when it is stuck or much slower than me."""
        if not self.geometry.verified:
            return False
        now = self.clock()
        if now - victim.last_progress > self._stuck_after:
            return True
        victim_rate = victim.holder.rate(now)
        if victim_rate <= 0:
            return False  # it has only just started
        length = self.geometry.length(victim.next)
        my_rate = me.rate(now) or victim_rate
        return (length - victim.piece_received) / victim_rate > 2 * length / my_rate

    def _drop(self, hs, state, reason, callback, args):
        with self._lock:
            hs.state, hs.reason = state, reason
        who = f"holder {hs.holder.peer_id} ({hs.holder.address})"
        if state == "banned":
            log.warning("%s banned from this download of %s: %s", who, self.sha256[:12], reason)
        elif state == "stalled":
            log.warning("%s %s; cancelled, its pieces go to other holders", who, reason)
        else:
            log.warning("%s failed: %s; its pieces go to other holders", who, reason)
        return (callback, args) if callback is not None else None

    def _back_off(self, hs):
        with self._lock:
            hs.busy_answers += 1
            delay = min(BUSY_MAX, BUSY_FIRST * 2 ** (hs.busy_answers - 1))
            hs.backoff_until = self.clock() + delay
            hs.state = "busy"
            hs.owed_since = None  # it answered: the next try gets a fresh stall deadline
        log.info("holder %s is busy; trying it again in %.2f s", hs.holder.peer_id, delay)

    def _fetch(self, hs, peer, lane):
        """Stream lane's pieces from peer, verifying and writing each one; returns when the lane ends."""
        g = self.geometry
        with self._lock:
            if not self.board.skip_done(lane):
                return
            offset, length = g.span(lane.next, lane.end)
            if hs.owed_since is None:
                hs.owed_since = self.clock()
            lane.last_progress = hs.owed_since
        log.debug("asking %s for pieces %d..%d (%d bytes)", hs.holder.peer_id, lane.next, lane.end - 1, length)
        request_end = offset + length
        attempt = _Attempt(peer.open_download(sha256=self.sha256, offset=offset, length=length))
        with self._lock:
            lane.attempt = attempt
            if self._stopping:
                attempt.cancel("stop")
        expected = offset
        piece = PieceBuffer(g, lane.next)
        try:
            for pos, data in attempt.stream:
                n = len(data)
                if not n:
                    continue
                now = self.clock()
                lane.last_progress = self._last_progress = hs.owed_since = now
                if hs.first_byte is None:
                    hs.first_byte = now
                hs.received += n
                if pos != expected:
                    raise _Banned(f"sent bytes at offset {pos} where {expected} was due")
                if n > self._max_chunk:
                    raise _Banned(f"sent a chunk of {n} bytes, larger than a piece ({g.piece_size})")
                if pos + n > request_end:
                    raise _Banned(f"sent more bytes than asked (up to byte {pos + n}, asked up to {request_end})")
                expected += n
                view = data
                while len(view):
                    take = min(len(view), piece.end - piece.pos)
                    piece.add(view[:take])
                    view = view[take:]
                    lane.piece_received = piece.filled
                    if piece.full:
                        if not self._land(hs, lane, piece):
                            hs.owed_since = None
                            return
                        piece = PieceBuffer(g, lane.next)
            if lane.next < lane.end:
                raise RemoteError(hs.holder.address, "SHORT_STREAM",
                                  f"the stream ended at byte {expected} of {request_end}")
        except P2PError:
            if attempt.reason == "lost":
                if self.clock() - lane.last_progress <= self._stuck_after:
                    hs.owed_since = None  # it was delivering: the other copy was just faster
                return
            if attempt.reason == "stalled":
                raise _Stalled() from None
            if attempt.reason == "stop" or self._stopping:
                raise _Stopped() from None
            raise
        finally:
            attempt.stream.cancel()  # a no-op when the call has completed
            with self._lock:
                lane.attempt = None

    def _land(self, hs, lane, piece):
        """Verify a complete piece and hand it to the writer; answers whether the lane goes on."""
        i = piece.index
        if self.geometry.verified and piece.hexdigest() != self.geometry.hashes[i]:
            with self._lock:
                self._failed_pieces += 1
            raise _Banned(f"piece {i} failed verification")
        with self._lock:
            losers = self.board.hand_over(lane)
            if losers is None:
                return False  # another copy of this endgame piece won
            hs.verified += piece.filled
            more = lane.next < lane.end and not self._stopping
        for other in losers:
            if other.attempt is not None:
                other.attempt.cancel("lost")
        while not self._writer.put(i, piece.views, timeout=TICK):  # a short queue bounds memory
            if self._writer.error is not None:
                raise _Stopped()
        return more
