"""The token bucket (peer_node.throttle): bursts, debt, idle refill, and threads sharing one rate."""
import pytest

from peer_node.throttle import TokenBucket
from tests.fixtures.threads import run_together


def test_the_bucket_lets_a_burst_through_and_then_holds_the_average(clock):
    bucket = TokenBucket(1000, burst=500, clock=clock, wait=clock.wait)
    bucket.take(500)
    assert clock.waits == []  # the burst
    for _ in range(10):
        bucket.take(250)
    assert clock.now - 1_000_000.0 == pytest.approx(2.5)  # 2500 bytes more at 1000 bytes/s


def test_a_take_larger_than_the_bucket_is_paid_back_by_waiting(clock):
    bucket = TokenBucket(1000, clock=clock, wait=clock.wait)
    bucket.take(5000)
    assert clock.waits == [pytest.approx(4.0)]


def test_time_spent_elsewhere_refills_the_bucket_up_to_the_burst_only(clock):
    bucket = TokenBucket(1000, burst=1000, clock=clock, wait=clock.wait)
    bucket.take(1000)
    clock.now += 3600  # an hour idle is worth one burst, not an hour of reads
    bucket.take(1000)
    bucket.take(1000)
    assert clock.waits == [pytest.approx(1.0)]


def test_takes_that_wait_together_queue_behind_each_other(clock):
    """Two takes booked before either waited: the second waits for both (one rate for all)."""
    waits = []
    bucket = TokenBucket(1000, burst=0, clock=clock, wait=waits.append)
    bucket.take(1000)
    bucket.take(1000)  # the clock has not moved: the first take's debt is still owed
    assert waits == [pytest.approx(1.0), pytest.approx(2.0)]


def test_threads_sharing_a_bucket_stay_at_its_rate_together():
    """Four streams on one real bucket move, together, what one stream alone would (not four times it)."""
    rate, chunk, takes = 400_000, 10_000, 10  # 4 x 100 kB at 400 kB/s: about one second
    bucket = TokenBucket(rate, burst=chunk)

    def stream():
        for _ in range(takes):
            bucket.take(chunk)

    took = run_together(stream, 4)
    assert took >= (4 * takes * chunk - chunk) / rate * 0.95  # per-stream buckets would take 0.25 s


@pytest.mark.parametrize("rate", [0, -1])
def test_the_bucket_needs_a_positive_rate(rate):
    with pytest.raises(ValueError):
        TokenBucket(rate)
