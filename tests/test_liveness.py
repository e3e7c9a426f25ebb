"""directory_api.liveness: the lease rule, the gRPC health probe, reports and the sweep."""
import time

import pytest
from grpc_health.v1 import health_pb2

from directory_api.config import DirectoryConfig
from directory_api.liveness import Liveness, Sweeper
from directory_api.store import Store
from tests.fixtures.directory import entry


def make(lease=10.0, now=1000.0, **kw):
    return Liveness(DirectoryConfig(lease_s=lease, **kw), clock=lambda: now)


@pytest.mark.parametrize("last_seen,live", [(1000.0, True), (990.0, True), (989.99, False), (0.0, False)])
def test_lease_condition(last_seen, live):
    assert make().is_live(last_seen) is live


def test_dead_mark_is_dead_but_not_ancient():
    lv = make()
    assert not lv.is_live(lv.dead_mark())
    assert lv.dead_mark() > 1000.0 - 10 * 11


def test_probe_live_server(health_server):
    assert make(probe_timeout_s=1.0).probe(health_server) is True


def test_probe_not_serving(health_server):
    # a peer shutting down answers NOT_SERVING: that counts as unreachable
    health_server.servicer.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
    assert make().probe(health_server) is False


@pytest.mark.parametrize("address", ["127.0.0.1:{closed}", "256.1.1.1:1", "no-such-host.invalid:5"])
def test_probe_dead_targets(address, closed_port):
    started = time.monotonic()
    assert make(probe_timeout_s=1.0).probe(address.format(closed=closed_port)) is False
    assert time.monotonic() - started < 3.0


def _store(tmp_path):
    s = Store(f"sqlite:///{tmp_path}/l.db")
    s.create_schema()
    return s


def test_report_unreachable(tmp_path, health_server, closed_port):
    store, now = _store(tmp_path), time.time()
    lv = Liveness(DirectoryConfig(lease_s=10))
    for pid, addr in [("up", health_server), ("down", f"127.0.0.1:{closed_port}")]:
        store.register_peer(pid, "h", now)
        store.start_session(pid, f"t-{pid}", addr, now, files_=[entry(pid)])
    assert lv.report_unreachable(store, "up") == "alive"
    assert lv.report_unreachable(store, "down") == "removed"
    assert lv.report_unreachable(store, "ghost") is None
    assert store.authenticate("t-down", lv.live_since()) is None
    assert store.authenticate("t-up", lv.live_since()) == "up"
    assert lv.report_unreachable(store, "down") == "removed"  # already dead: no probe needed
    store.dispose()


def test_sweep_deletes_only_long_dead(tmp_path):
    store, now = _store(tmp_path), 10_000.0
    lv = Liveness(DirectoryConfig(lease_s=10, dead_after_leases=10), clock=lambda: now)
    for pid, seen in [("fresh", now), ("recent-dead", now - 50), ("ancient", now - 200)]:
        store.register_peer(pid, "h", seen)
        store.start_session(pid, f"t-{pid}", "127.0.0.1:1", seen)
    store.add_pending_copy("a" * 64, "x", 1, "fresh", "recent-dead", now - 100, now - 1)
    assert lv.sweep(store) == (1, 1)
    assert store.peer("ancient") is None and store.peer("recent-dead") is not None
    store.dispose()


def test_sweeper_thread_runs_and_stops(tmp_path):
    store = _store(tmp_path)
    store.register_peer("ancient", "h", 0.0)
    sweeper = Sweeper(Liveness(DirectoryConfig(lease_s=1)), store, 0.05).start()
    deadline = time.monotonic() + 5
    while store.peer("ancient") is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert store.peer("ancient") is None
    sweeper.stop()
    assert not sweeper.running
    store.dispose()


def test_create_app_sweeper_is_optional(make_app):
    assert make_app().extensions["p2p"].sweeper is None
    ctx = make_app(sweep=True, sweep_interval_s=0.1).extensions["p2p"]
    assert ctx.sweeper.running
    ctx.close()
    assert not ctx.sweeper.running
