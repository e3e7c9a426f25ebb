"""directory_api.shared_read: one read at a time, the last answer meanwhile, slow answers kept longer."""
import threading

import pytest

from directory_api.shared_read import SLOW_FACTOR, SLOW_S, SharedRead

WAIT = 10.0  # bound on every wait of these tests


class Clock:
    """A clock that moves only when told to (also from inside a read, to make it "slow")."""

    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def counting(clock=None, took=0.0):
    """A read answering 1, 2, 3, ... that moves clock by took seconds while it runs."""
    calls = []

    def read():
        calls.append(1)
        if clock is not None:
            clock.now += took
        return len(calls)
    return read, calls


def test_a_fast_read_is_made_again_on_every_call():
    read, calls = counting()
    shared = SharedRead(read)
    assert [shared.get(), shared.get(), shared.get()] == [1, 2, 3]


def test_a_minimum_age_keeps_the_answer_until_it_is_that_old():
    clock = Clock()
    read, _ = counting()
    shared = SharedRead(read, clock=clock)
    assert shared.get(min_age_s=2.0) == 1
    clock.now += 1.9
    assert shared.get(min_age_s=2.0) == 1
    clock.now += 0.1
    assert shared.get(min_age_s=2.0) == 2


def test_a_slow_answer_is_kept_for_its_cost_times_the_factor():
    clock = Clock()
    read, calls = counting(clock, took=2 * SLOW_S)
    shared = SharedRead(read, clock=clock)
    assert shared.get() == 1
    keep = SLOW_FACTOR * 2 * SLOW_S  # counted from when the read began
    clock.now += keep - 2 * SLOW_S - 0.01
    assert shared.get() == 1 and len(calls) == 1
    clock.now += 0.02
    assert shared.get() == 2


def blocking_read():
    """A read that waits for release; started tells when one is running."""
    started, release = threading.Event(), threading.Event()
    calls = []

    def read():
        calls.append(1)
        started.set()
        assert release.wait(WAIT)
        return len(calls)
    return read, calls, started, release


def test_while_one_caller_reads_again_the_others_get_the_last_answer_at_once():
    read, calls, started, release = blocking_read()
    shared = SharedRead(read, clock=Clock())  # a still clock: the reads count as fast however long they wait
    release.set()
    assert shared.get() == 1
    release.clear()
    started.clear()
    reader = threading.Thread(target=shared.get)
    reader.start()
    assert started.wait(WAIT)
    assert [shared.get() for _ in range(5)] == [1] * 5  # not blocked behind the slow read
    release.set()
    reader.join(WAIT)
    assert len(calls) == 2 and shared.get() == 3


def test_the_first_answer_is_read_once_for_callers_that_ask_together():
    read, calls, started, release = blocking_read()
    shared = SharedRead(read, clock=Clock())
    answers = []
    threads = [threading.Thread(target=lambda: answers.append(shared.get(min_age_s=60))) for _ in range(4)]
    for t in threads:
        t.start()
    assert started.wait(WAIT)
    release.set()
    for t in threads:
        t.join(WAIT)
    assert answers == [1, 1, 1, 1] and len(calls) == 1


def test_a_failed_read_reaches_its_caller_and_the_next_caller_reads_again():
    outcomes = iter([ConnectionError("database restarting"), 7])

    def read():
        outcome = next(outcomes)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    shared = SharedRead(read)
    with pytest.raises(ConnectionError):
        shared.get(min_age_s=60)
    assert shared.get(min_age_s=60) == 7
