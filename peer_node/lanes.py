"""Which holder fetches which pieces: lanes of consecutive pieces, work stealing and the endgame.

Each worker streams one lane (a run of pieces) with a single Download call, so one holder
runs at full speed with no per-piece round trips. A worker with nothing left takes, in order:
a run of pieces nobody covers (the first one, capped when several workers share the file);
the back half of the largest lane still to be fetched (its owner stops at the new end); near
the very end, a second copy of a piece another holder is slow with (the first verified copy
wins, the other is cancelled). Faster holders thus end up with more pieces. Plain data, no
threads: the caller holds one lock around every call.
"""
from dataclasses import dataclass


@dataclass(eq=False)
class Lane:
    """Pieces next..end-1, fetched in order by one holder; end shrinks when the back is stolen."""

    holder: object
    next: int
    end: int
    duplicate: bool = False  # an endgame copy of a piece another lane is fetching
    attempt: object = None  # the call fetching it, while there is one
    last_progress: float = 0.0  # clock time of its last byte (or of its start)
    piece_received: int = 0  # bytes of piece `next` received so far

    @property
    def stealable(self):
        """Pieces after the current one: what another worker may take."""
        return max(0, self.end - self.next - 1)


class Board:
    """The state of every piece (done, being written, covered by how many lanes) and the lanes.

    A piece goes missing -> covered by a lane -> verified and handed over for writing -> done.
    """

    def __init__(self, count, done=None):
        self.count = count
        self.done = bytearray(done) if done is not None else bytearray(count)
        self.writing = bytearray(count)
        self._cover = [0] * count
        self.lanes = []
        self.missing = count - sum(self.done)
        self.in_writing = 0  # pieces handed over whose write has not finished

    @property
    def complete(self):
        """True when every piece is done."""
        return self.missing == 0

    def claim(self, holder, worth_duplicating=None, max_run=None):
        """A new Lane for holder, or None when there is nothing useful for it to do now.

        worth_duplicating(lane) decides whether an endgame copy of lane's last piece pays off.
        max_run caps a lane taken from uncovered pieces: with several workers, short lanes taken
        front to back keep the verified prefix growing (the whole-file hash follows it).
        """
        lane = self._claim_free(holder, max_run or self.count) or self._steal(holder)
        if lane is None and worth_duplicating is not None:
            lane = self._duplicate(holder, worth_duplicating)
        if lane is not None:
            self.lanes.append(lane)
        return lane

    def _claim_free(self, holder, max_run):
        i = 0
        while i < self.count:
            if not self._free(i):
                i += 1
                continue
            start = i
            while i < self.count and i - start < max_run and self._free(i):
                self._cover[i] += 1
                i += 1
            return Lane(holder, start, i)
        return None

    def _free(self, i):
        return not (self.done[i] or self.writing[i] or self._cover[i])

    def _steal(self, holder):
        victims = [lane for lane in self.lanes if not lane.duplicate and lane.stealable]
        if not victims:
            return None
        victim = max(victims, key=lambda lane: lane.stealable)
        cut = victim.end - (victim.stealable + 1) // 2
        lane = Lane(holder, cut, victim.end)
        victim.end = cut  # the pieces change hands; their cover count stays
        return lane

    def _duplicate(self, holder, worth_duplicating):
        copied = {lane.next for lane in self.lanes if lane.duplicate}
        candidates = [lane for lane in self.lanes
                      if not lane.duplicate and lane.holder is not holder and lane.next < lane.end
                      and lane.stealable == 0 and lane.next not in copied
                      and not self.done[lane.next] and not self.writing[lane.next]]
        for victim in sorted(candidates, key=lambda lane: lane.piece_received):
            if worth_duplicating(victim):
                self._cover[victim.next] += 1
                return Lane(holder, victim.next, victim.next + 1, duplicate=True)
        return None

    def skip_done(self, lane):
        """Move lane past pieces another copy has already delivered; True while it has pieces left."""
        while lane.next < lane.end and (self.done[lane.next] or self.writing[lane.next]):
            self._cover[lane.next] -= 1
            lane.next += 1
        return lane.next < lane.end

    def hand_over(self, lane):
        """Lane's current piece verified: reserve it for writing and move the lane on.

        Answers the other lanes fetching the same piece (to cancel), or None when another
        copy got there first (then the lane is not moved: release it).
        """
        i = lane.next
        if self.done[i] or self.writing[i]:
            return None
        self.writing[i] = 1
        self.in_writing += 1
        self._cover[i] -= 1
        lane.next += 1
        lane.piece_received = 0
        return [other for other in self.lanes if other is not lane and other.next == i]

    def finish_write(self, index):
        """The piece is on disk: it is done."""
        self.writing[index] = 0
        self.in_writing -= 1
        self.done[index] = 1
        self.missing -= 1

    def release(self, lane):
        """Lane's worker stopped: whatever it had not finished is free for others."""
        if lane in self.lanes:
            self.lanes.remove(lane)
            for i in range(lane.next, lane.end):
                self._cover[i] -= 1
            lane.end = lane.next

    def free_pieces(self):
        """How many missing pieces no lane covers."""
        return sum(1 for i in range(self.count) if self._free(i))
