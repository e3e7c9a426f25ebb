"""directory_api.audits: the audit rate, the queue's order, the piece audited, one scheduler at a time."""
import random

import pytest

from directory_api.audits import NO_AUDITOR_RETRY_S, AuditScheduler, Auditing, audit_range
from directory_api.config import DirectoryConfig
from directory_api.liveness import Liveness
from directory_api.store import Store
from directory_api.store.claims import PROVEN
from protos.rules import DEFAULT_PIECE_SIZE, MIN_PIECE_SIZE
from tests.directory_api.store.helpers import NOW, add_peer, prove
from tests.fixtures.directory import FakeClock, entry, sha

MiB = 1024 * 1024


@pytest.mark.parametrize("per_minute, period_s, batch", [(60, 5.0, 5), (600, 5.0, 50), (1, 60.0, 1), (30, 6.0, 3),
                                                         (7, 60 / 7, 1), (90, 60 * 8 / 90, 8), (0, 60.0, 0)])
def test_the_rate_is_a_batch_a_period(per_minute, period_s, batch):
    auditing = Auditing(DirectoryConfig(audits_per_minute=per_minute), None, None, None)
    assert (auditing.period_s, auditing.batch, auditing.enabled) == (pytest.approx(period_s), batch, batch > 0)
    if batch:
        assert auditing.period_s >= 5.0 and batch * 60 / auditing.period_s == pytest.approx(per_minute)


@pytest.mark.parametrize("size, piece_size, most", [
    (1, None, 1), (10 * MiB, None, DEFAULT_PIECE_SIZE), (10 * MiB, 1 * MiB, 1 * MiB),
    (10 * MiB, 1, MIN_PIECE_SIZE),  # a claim's tiny piece size is raised to the least one
    (10 * MiB, 2**40, DEFAULT_PIECE_SIZE),  # and a huge one bounded: an audit costs at most a default piece
])
def test_an_audit_reads_one_piece_inside_the_file(size, piece_size, most):
    rng = random.Random(7)
    for _ in range(200):
        offset, length = audit_range(size, piece_size, rng)
        assert 0 <= offset < size and 1 <= length <= most and offset + length <= size
        assert offset % most == 0


def test_every_piece_can_be_audited():
    rng = random.Random(1)
    offsets = {audit_range(10 * MiB, MiB, rng)[0] for _ in range(500)}
    assert offsets == {i * MiB for i in range(10)}


@pytest.fixture
def setup(store):
    clock = FakeClock(NOW)
    config = DirectoryConfig(database_url=store.url, audits_per_minute=24, audit_interval_s=3600, lease_s=30)
    liveness = Liveness(config, clock=clock)
    return Auditing(config, store, liveness, signer=None), store, clock


def test_schedule_hands_out_a_batch_and_audits_a_claim_at_most_once_an_interval(setup):
    auditing, store, clock = setup
    add_peer(store, "a", files=[entry(f"f{i}", n=i) for i in range(5)])
    add_peer(store, "b", files=[entry(f"f{i}", n=i) for i in range(5)])
    prove(store, "a", *(sha(i) for i in range(5)))
    assert auditing.batch == 2
    assert auditing.schedule(NOW) == 2 and auditing.schedule(NOW) == 2 and auditing.schedule(NOW) == 1
    assert auditing.schedule(NOW + 10) == 0  # every claim of b was audited within the interval
    orders = store.take_audits("a", NOW, NOW - 30)
    assert sorted(o["sha256"] for o in orders) == sorted(sha(i) for i in range(5))
    assert {o["target_peer_id"] for o in orders} == {"b"}
    with store.write() as conn:  # both still live an hour later
        conn.exec_driver_sql(f"UPDATE p2p_peers SET last_seen = {NOW + 3600}")
    assert auditing.schedule(NOW + 3600) == 2  # unanswered: due again after the interval


def test_a_claim_nobody_can_audit_waits_a_minute_without_blocking_the_others(setup):
    auditing, store, clock = setup
    add_peer(store, "lonely", files=[entry(f"solo{i}", n=100 + i) for i in range(20)])  # only holder: unprovable
    add_peer(store, "a", files=[entry("x", n=1)])
    add_peer(store, "b", files=[entry("x", n=1)])
    prove(store, "a", sha(1))
    with store.write() as conn:  # x's claim is the youngest of the queue
        conn.exec_driver_sql(f"UPDATE p2p_files SET proof_at = 1 WHERE sha256 = '{sha(1)}'")
    made = [auditing.schedule(NOW + i) for i in range(4)]
    assert sum(made) == 1  # the 20 lonely claims were read and put back, then x was audited
    assert store.take_audits("a", NOW, NOW - 30)[0]["target_peer_id"] == "b"
    assert auditing.schedule(NOW + 10) == 0
    assert store.audit_candidates(NOW - 3600 + NO_AUDITOR_RETRY_S + 10, NOW - 30, NOW + 10, 100)


def test_a_passed_audit_proves_and_a_failed_one_refutes_and_orders_a_verify(setup):
    auditing, store, _ = setup
    add_peer(store, "a", files=[entry("x", n=1)])
    add_peer(store, "b", files=[entry("x", n=1)])
    add_peer(store, "c", files=[entry("x", n=1)])
    prove(store, "a", sha(1))
    store.add_audit("1" * 32, sha(1), "b", "a", 0, 10, NOW, NOW + 60)
    store.add_audit("2" * 32, sha(1), "c", "a", 0, 10, NOW, NOW + 60)
    auditing.answer("1" * 32, "a", True, "", NOW)
    auditing.answer("2" * 32, "a", False, "bytes 0-9 differ", NOW)
    assert store.proof_counts(sha(1), NOW - 30) == {"proven": 2, "unproven": 0, "refuted": 1}
    assert store.take_verify_orders("c", NOW) == [sha(1)]


def test_a_scheduling_period_is_claimed_by_one_process(store):
    """Two directory processes tick at the same moment: one schedules, the other finds it done."""
    clock = FakeClock(NOW)
    config = DirectoryConfig(database_url=store.url, audits_per_minute=12, lease_s=30)  # 1 every 5 s
    other = Store(store.url)
    try:
        schedulers = [AuditScheduler(Auditing(config, s, Liveness(config, clock=clock), None), name=f"p{i}")
                      for i, s in enumerate((store, other))]
        add_peer(store, "a", files=[entry(f"f{i}", n=i) for i in range(4)])
        add_peer(store, "b", files=[entry(f"f{i}", n=i) for i in range(4)])
        prove(store, "a", *(sha(i) for i in range(4)))
        assert [s.tick() for s in schedulers] == [1, 0]
        clock.advance(5.0)
        assert [s.tick() for s in reversed(schedulers)] == [1, 0]
        assert store.task_runs()["audits"]["run_by"] == "p1"
    finally:
        other.dispose()


def test_the_scheduler_thread_runs_and_stops(setup):
    auditing, store, clock = setup
    add_peer(store, "a", files=[entry("x", n=1)])
    add_peer(store, "b", files=[entry("x", n=1)])
    prove(store, "a", sha(1))
    auditing.period_s = 0.05
    scheduler = AuditScheduler(auditing, name="t").start()
    try:
        from tests.integration.helpers import wait_until

        wait_until(lambda: store.audit_counts(NOW)["open"] == 1, timeout=10)
    finally:
        scheduler.stop()
    assert not scheduler.running
    assert store.entry_proof("b", sha(1)) != PROVEN  # an audit proves nothing until it is answered
