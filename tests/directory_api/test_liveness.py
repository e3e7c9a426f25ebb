"""directory_api.liveness: the lease rule, the gRPC health probe, reports and the sweep."""
import threading
import time

import pytest
from grpc_health.v1 import health_pb2

from directory_api.config import DirectoryConfig
from directory_api.liveness import LeaseRenewals, Liveness, Sweeper
from directory_api.store import Store
from tests.fixtures.directory import FakeClock, entry


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
    clock = FakeClock()
    store, now = _store(tmp_path), clock()
    lv = Liveness(DirectoryConfig(lease_s=10), clock=clock)
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
    assert store.peer("recent-dead")["last_seen"] == now - 50
    # the ancient peer's session is gone, its name and secret stay
    assert store.peer("ancient")["last_seen"] == 0 and store.secret_hash("ancient") == "h"
    assert store.authenticate("t-ancient", 0) is None
    store.dispose()


class ObservedSweeper(Sweeper):
    """The real sweeper thread, telling the test when a sweep is done."""

    def __init__(self, *args):
        super().__init__(*args)
        self.swept = threading.Event()

    def tick(self):
        super().tick()
        self.swept.set()


def test_sweeper_thread_runs_and_stops(tmp_path):
    store, clock = _store(tmp_path), FakeClock()
    store.register_peer("ancient", "h", clock() - 1000)
    store.start_session("ancient", "t", "127.0.0.1:1", clock() - 1000)
    sweeper = ObservedSweeper(Liveness(DirectoryConfig(lease_s=1), clock=clock), store, 0.05).start()
    assert sweeper.swept.wait(5)
    assert store.peer("ancient")["last_seen"] == 0 and store.secret_hash("ancient") == "h"
    sweeper.stop()
    assert not sweeper.running
    store.dispose()


def test_create_app_starts_no_thread_until_asked(make_app):
    assert make_app().extensions["p2p"].sweeper is None
    ctx = make_app(sweep=True, sweep_interval_s=0.1).extensions["p2p"]
    assert not ctx.sweeper.running and not ctx.leases.running
    ctx.start()
    assert ctx.sweeper.running and ctx.leases.running
    ctx.close()
    assert not ctx.sweeper.running and not ctx.leases.running


# -- lease renewals written in batches -------------------------------------------------


class CountingStore:
    """The real store, counting renew_leases calls and failing the first `fail` of them."""

    def __init__(self, store, fail=0):
        self._store, self.fail, self.batches = store, fail, []
        self.written = threading.Event()

    def renew_leases(self, renewals):
        if self.fail:
            self.fail -= 1
            raise RuntimeError("database restarting")
        self.batches.append(len(renewals))
        result = self._store.renew_leases(renewals)
        self.written.set()
        return result

    def __getattr__(self, name):
        return getattr(self._store, name)


@pytest.fixture
def sessions(tmp_path):
    """A store with peers a, b, c logged in (tokens t-a, t-b, t-c) at time 100."""
    store = _store(tmp_path)
    for pid in "abc":
        store.register_peer(pid, "h", 100.0)
        store.start_session(pid, f"t-{pid}", f"127.0.0.1:{ord(pid)}", 100.0, files_=[])
    yield store
    store.dispose()


def _renewals(store, flush_s=60.0, fail=0):
    # A long flush interval: the test decides when to flush.
    counting = CountingStore(store, fail)
    return LeaseRenewals(Liveness(DirectoryConfig(lease_s=10)), counting, flush_s).start(), counting


def test_heartbeats_answer_at_once_and_are_written_in_one_transaction(sessions):
    leases, counting = _renewals(sessions)
    try:
        for pid in "abc":
            session = leases.heartbeat(f"t-{pid}", 105.0, free_bytes=7, set_free_bytes=True)
            assert session.peer_id == pid and session.has_handouts is False
        assert leases.heartbeat("t-a", 106.0) is not None  # the newer renewal of a replaces the older
        assert sessions.peer("a")["last_seen"] == 100.0  # not written yet
        assert leases.flush() == 3 and counting.batches == [3]
        assert [sessions.peer(p)["last_seen"] for p in "abc"] == [106.0, 105.0, 105.0]
        assert sessions.peer("b")["free_bytes"] == 7
        assert sessions.peer("a")["free_bytes"] is None  # a's newer heartbeat did not send it
    finally:
        leases.stop()


def test_a_dead_token_is_refused_and_nothing_is_queued(sessions):
    leases, counting = _renewals(sessions)
    try:
        assert leases.heartbeat("t-nobody", 105.0) is None
        assert leases.heartbeat("t-a", 200.0) is None  # lease of 10 s lapsed at 110
        assert leases.flush() == 0 and counting.batches == []
    finally:
        leases.stop()


def test_a_logout_before_the_flush_wins(sessions):
    leases, _ = _renewals(sessions)
    try:
        assert leases.heartbeat("t-a", 105.0) is not None
        sessions.end_session("a", 50.0)
        leases.flush()
        assert sessions.peer("a")["last_seen"] == 50.0
        assert sessions.authenticate("t-a", 0.0) is None
    finally:
        leases.stop()


def test_a_late_renewal_never_moves_last_seen_back(sessions):
    leases, _ = _renewals(sessions)
    try:
        leases.heartbeat("t-a", 103.0)
        sessions.renew_lease("t-a", 90.0, 108.0)  # another directory process wrote a newer one
        leases.flush()
        assert sessions.peer("a")["last_seen"] == 108.0
    finally:
        leases.stop()


def test_a_failed_flush_keeps_the_renewals_for_the_next(sessions):
    leases, counting = _renewals(sessions, fail=1)
    try:
        leases.heartbeat("t-a", 105.0)
        with pytest.raises(RuntimeError):
            leases.flush()
        leases.heartbeat("t-b", 106.0)
        assert leases.flush() == 2
        assert [sessions.peer(p)["last_seen"] for p in "ab"] == [105.0, 106.0]
    finally:
        leases.stop()


def test_the_writer_thread_flushes_by_itself_and_on_stop(sessions):
    leases, counting = _renewals(sessions, flush_s=0.05)
    leases.heartbeat("t-a", 105.0)
    assert counting.written.wait(5)
    assert sessions.peer("a")["last_seen"] == 105.0
    leases.heartbeat("t-b", 106.0)
    leases.stop()
    assert not leases.running and sessions.peer("b")["last_seen"] == 106.0


def test_flush_interval_zero_writes_every_heartbeat_before_answering(sessions):
    leases, counting = _renewals(sessions, flush_s=0)
    assert not leases.running
    assert leases.heartbeat("t-a", 105.0, accept_uploads=False).peer_id == "a"
    assert sessions.peer("a")["last_seen"] == 105.0 and sessions.peer("a")["accept_uploads"] is False
    assert counting.batches == []


def test_two_processes_sweep_once_per_interval(tmp_path):
    """Sweepers of two processes on one database: whichever ticks first sweeps, the other skips."""
    clock = FakeClock()
    stores = [_store(tmp_path), Store(f"sqlite:///{tmp_path}/l.db")]
    liveness = Liveness(DirectoryConfig(lease_s=1), clock=clock)
    sweepers = [Sweeper(liveness, s, 10.0, name=f"host:{i}") for i, s in enumerate(stores)]
    assert [s.tick() for s in sweepers] == [True, False]
    assert stores[0].task_runs()["sweep"]["run_by"] == "host:0"
    clock.advance(10)
    assert [s.tick() for s in reversed(sweepers)] == [True, False]
    for s in stores:
        s.dispose()


# -- the probe over TLS (issue 12) -------------------------------------------------------


@pytest.fixture
def tls_health_server(tmp_path):
    """A gRPC health server over TLS with a certificate of a local CA (peer_node/certs.py), and the CA;
    mutual=True asks dialers for a client certificate of that CA."""
    from concurrent import futures

    import grpc
    from grpc_health.v1 import health, health_pb2_grpc

    from peer_node import certs

    ca, server_pair, client_pair = certs.write_network(tmp_path / "certs", ["prober"])
    servers = []

    def start(mutual=False):
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        servicer = health.HealthServicer()
        servicer.set("", health_pb2.HealthCheckResponse.SERVING)
        health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
        read = lambda path: open(path, "rb").read()  # noqa: E731
        creds = grpc.ssl_server_credentials([(read(server_pair.key), read(server_pair.cert))],
                                            root_certificates=read(ca.cert) if mutual else None,
                                            require_client_auth=mutual)
        port = server.add_secure_port("127.0.0.1:0", creds)
        server.start()
        servers.append(server)
        return f"127.0.0.1:{port}"

    yield start, {"ca": ca.cert, "cert": client_pair.cert, "key": client_pair.key,
                  "foreign": certs.write_network(tmp_path / "foreign", [])[0].cert}
    for server in servers:
        server.stop(grace=None)


def test_the_probe_dials_tls_peers_with_the_peer_ca(tls_health_server):
    start, files = tls_health_server
    address = start()
    assert make(peer_ca=files["ca"]).probe(address) is True
    assert make().probe(address) is False  # plaintext against TLS
    assert make(peer_ca=files["foreign"]).probe(address) is False  # a certificate of another CA


def test_the_probe_shows_a_client_certificate_to_mutual_tls_peers(tls_health_server):
    start, files = tls_health_server
    address = start(mutual=True)
    assert make(peer_ca=files["ca"]).probe(address) is False
    assert make(peer_ca=files["ca"], peer_cert=files["cert"], peer_key=files["key"]).probe(address) is True


def test_unreadable_probe_files_are_a_config_error(tmp_path):
    from directory_api.errors import ConfigError

    with pytest.raises(ConfigError, match="--peer-ca"):
        make(peer_ca=str(tmp_path / "missing.pem"))
    with pytest.raises(ConfigError, match="peer_cert needs peer_ca"):
        make(peer_cert="/c.pem", peer_key="/k.pem")
