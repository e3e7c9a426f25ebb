"""The piece board alone: lanes, work stealing, the endgame copy, release after a failure."""
from peer_node.lanes import Board


def finish(board, lane):
    """Verify and write lane's current piece."""
    i = lane.next
    assert board.hand_over(lane) is not None
    board.finish_write(i)


def test_the_first_claim_takes_every_missing_run_in_turn():
    board = Board(10, done=[1, 1, 0, 0, 0, 1, 0, 0, 0, 0])
    a = board.claim("a")
    assert (a.next, a.end) == (2, 5)
    b = board.claim("b")
    assert (b.next, b.end) == (6, 10)
    assert board.free_pieces() == 0 and board.missing == 7


def test_an_idle_worker_steals_the_back_half_of_the_largest_lane():
    board = Board(16)
    a = board.claim("a")
    b = board.claim("b")
    assert (a.next, a.end, b.next, b.end) == (0, 8, 8, 16)  # 15 stealable: 8 go
    c = board.claim("c")
    assert (c.next, c.end) == (4, 8) and a.end == 4  # a and b tie at 7 stealable: the first one gives
    d = board.claim("d")
    assert (d.next, d.end) == (12, 16) and b.end == 12


def test_the_current_piece_is_never_stolen():
    board = Board(2)
    a = board.claim("a")
    b = board.claim("b")
    assert (a.next, a.end, b.next, b.end) == (0, 1, 1, 2)
    assert board.claim("c") is None  # each lane is down to its current piece
    assert board.claim("c", worth_duplicating=lambda lane: False) is None


def test_faster_holders_take_more_pieces():
    board = Board(40)
    fast, slow = board.claim("fast"), board.claim("slow")
    taken = {"fast": 0, "slow": 0}
    while not board.complete:
        for lane, name, speed in ((fast, "fast", 3), (slow, "slow", 1)):
            for _ in range(speed):
                if lane is not None and board.skip_done(lane):
                    finish(board, lane)
                    taken[name] += 1
                if lane is not None and lane.next >= lane.end:
                    board.release(lane)
                    lane = board.claim(name)
            if name == "fast":
                fast = lane
            else:
                slow = lane
    assert taken["fast"] + taken["slow"] == 40
    assert taken["fast"] >= 2.5 * taken["slow"]


def test_endgame_copy_and_the_loser():
    board = Board(3, done=[1, 1, 0])
    slow = board.claim("slow")
    assert (slow.next, slow.end) == (2, 3)
    copy = board.claim("fast", worth_duplicating=lambda lane: lane is slow)
    assert copy.duplicate and (copy.next, copy.end) == (2, 3)
    assert board.claim("third", worth_duplicating=lambda lane: True) is None  # one copy per piece
    losers = board.hand_over(copy)
    assert losers == [slow]
    assert board.hand_over(slow) is None  # the slow copy lost: its lane is just released
    board.finish_write(2)
    board.release(slow)
    board.release(copy)
    assert board.complete and board.free_pieces() == 0


def test_a_failed_lane_gives_its_pieces_back_but_not_a_duplicated_one():
    board = Board(3)
    a = board.claim("a")
    finish(board, a)
    board.release(a)  # a's holder failed at piece 1
    assert board.free_pieces() == 2
    b = board.claim("b")
    assert (b.next, b.end) == (1, 3)
    c = board.claim("c")
    assert (c.next, c.end, b.end) == (2, 3, 2)
    copy = board.claim("d", worth_duplicating=lambda lane: lane is c)
    assert copy.duplicate and copy.next == 2
    board.release(c)  # the original dies: the copy still covers piece 3
    assert board.free_pieces() == 0
    board.release(copy)
    assert board.free_pieces() == 1


def test_a_piece_being_written_is_not_claimed_again():
    board = Board(2)
    a = board.claim("a")
    assert board.hand_over(a) == []
    board.release(a)  # a stops after handing piece 0 over: it is written, not missing
    b = board.claim("b")
    assert (b.next, b.end) == (1, 2) and board.in_writing == 1
    board.finish_write(0)
    assert board.missing == 1 and board.in_writing == 0


def test_capped_lanes_are_taken_front_to_back():
    board = Board(10)
    lanes = [board.claim(name, max_run=3) for name in "abcd"]
    assert [(lane.next, lane.end) for lane in lanes] == [(0, 3), (3, 6), (6, 9), (9, 10)]
    finish(board, lanes[0])
    board.release(lanes[0])  # a stops early: its rest is the first free run again
    assert (board.claim("a", max_run=3).next, board.free_pieces()) == (1, 0)
