"""Strangers against real `p2p serve` processes: tickets, slots and timeouts (issue 12), with real streams.

These run against a small fake directory (tests/fixtures/fake_directory.py: a werkzeug server in
the test process that logs peers in and signs tickets with a key of ours), so they test the peer
alone; the whole network with the real directory's tickets is in test_peers, test_tls,
test_replication and the README test.
"""
import json
import os
import threading
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from peer_node.transfer import FileRecord, Holder, download
from protos import p2p_pb2, p2p_pb2_grpc, tickets
from tests.fixtures.fake_directory import FakeDirectory
from tests.fixtures.tickets import Mint
from tests.integration.helpers import GRPCURL, sha, wait_until

pytestmark = pytest.mark.integration

BIG = os.urandom(24 * 1024 * 1024)  # far beyond what flow-control windows buffer
BIG_SHA = sha(BIG)
STALL = 2.0  # the peers' stall_timeout in these tests


@pytest.fixture
def fake_directory():
    d = FakeDirectory()
    yield d
    d.close()


@pytest.fixture
def big_peer(peer_factory, fake_directory):
    peer = peer_factory(fake_directory.url, files={"big.bin": BIG}, peer_id="target",
                        env={"P2P_STALL_TIMEOUT": str(STALL)})
    peer.wait_for_output(r"logged in to", timeout=15)
    return peer


@pytest.fixture
def held():
    """Set at teardown: the request generators of never-ending uploads wait on it."""
    ev = threading.Event()
    yield ev
    ev.set()


def _silent(held):
    held.wait(60)
    yield from ()


def _status(fn):
    try:
        fn()
    except grpc.RpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


def _health_s(channel):
    started = time.monotonic()
    answer = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert answer.status == health_pb2.HealthCheckResponse.SERVING
    return time.monotonic() - started


def test_stranger_uploads_are_refused_and_store_nothing(big_peer, tmp_path):
    with grpc.insecure_channel(big_peer.address) as channel:
        stub = p2p_pb2_grpc.P2PServiceStub(channel)
        data = b"junk" * 1000
        msgs = [p2p_pb2.UploadRequest(header=p2p_pb2.FileInfo(name="junk.bin", size=len(data), sha256=sha(data))),
                p2p_pb2.UploadRequest(data=data)]
        with pytest.raises(grpc.RpcError) as err:
            stub.Upload(iter(msgs), timeout=10)
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        forged = Mint().bearer(sha(data), tickets.UPLOAD, aud="target", size=len(data))
        with pytest.raises(grpc.RpcError) as err:
            stub.Upload(iter(msgs), metadata=(("authorization", forged),), timeout=10)
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED and "does not know" in err.value.details()
    assert "junk.bin" not in os.listdir(big_peer.folder)


@pytest.mark.parametrize("make,code,reason", [
    (lambda m: None, grpc.StatusCode.UNAUTHENTICATED, "only with a ticket"),
    (lambda m: Mint().bearer(BIG_SHA), grpc.StatusCode.PERMISSION_DENIED, "does not know"),
    (lambda m: m.bearer(BIG_SHA, ttl=-300), grpc.StatusCode.PERMISSION_DENIED, "expired"),
    (lambda m: m.bearer(sha(b"other")), grpc.StatusCode.PERMISSION_DENIED, "another file"),
    (lambda m: m.bearer(BIG_SHA, tickets.UPLOAD, aud="target"), grpc.StatusCode.PERMISSION_DENIED, "another purpose"),
])
def test_grpcurl_download_needs_a_good_ticket(big_peer, fake_directory, make, code, reason):
    import subprocess

    bearer = make(fake_directory.mint)
    args = [GRPCURL, "-plaintext", "-max-msg-sz", str(16 * 1024 * 1024)]
    if bearer:
        args += ["-H", f"authorization: {bearer}"]
    out = subprocess.run(args + ["-d", json.dumps({"sha256": BIG_SHA, "offset": 1, "length": 2}),
                                 big_peer.address, "p2p.v1.P2PService/Download"],
                         capture_output=True, text=True, timeout=20)
    assert reason in out.stderr and code.name.replace("_", "").lower() in out.stderr.replace(" ", "").lower()
    good = subprocess.run([GRPCURL, "-plaintext", "-H", f"authorization: {fake_directory.mint.bearer(BIG_SHA)}",
                           "-d", json.dumps({"sha256": BIG_SHA, "offset": 1, "length": 2}),
                           big_peer.address, "p2p.v1.P2PService/Download"],
                          capture_output=True, text=True, timeout=20)
    assert '"offset": "1"' in good.stdout, good.stderr


def test_silent_uploads_and_stalled_downloads_lock_out_nobody(big_peer, fake_directory, held, tmp_path):
    """12 header-less uploads (strangers, then ticket holders) and 8 downloads whose client stopped
    reading: health and ListFiles answer at once, a ticket holder gets the file, every stuck call ends."""
    mint, figures = fake_directory.mint, {}
    upload_md = (("authorization", mint.bearer(sha(b"x"), tickets.UPLOAD, aud="target", size=1)),)
    download_md = (("authorization", mint.bearer(BIG_SHA)),)
    options = [("grpc.http2.bdp_probe", 0)]  # small receive windows: a client that stops reading stalls the peer
    channels = [grpc.insecure_channel(big_peer.address, options=options) for _ in range(4)]
    try:
        stubs = [p2p_pb2_grpc.P2PServiceStub(c) for c in channels]
        # strangers: refused at once, holding nothing
        started = time.monotonic()
        strangers = [stubs[i % 4].Upload.future(_silent(held), timeout=30) for i in range(12)]
        assert [_status(f.result) for f in strangers] == [grpc.StatusCode.UNAUTHENTICATED] * 12
        figures["12 stranger uploads refused (s)"] = time.monotonic() - started
        # ticket holders that never send a header: 8 wait (for header_timeout), 4 are busy at once
        started = time.monotonic()
        silent = [stubs[i % 4].Upload.future(_silent(held), metadata=upload_md, timeout=30) for i in range(12)]
        busy = wait_until(lambda: [f for f in silent if f.done()] if sum(f.done() for f in silent) >= 4 else None,
                          timeout=5, interval=0.02)
        assert [_status(f.result) for f in busy] == [grpc.StatusCode.RESOURCE_EXHAUSTED] * 4
        # 8 downloads that read one chunk and stop reading: every transfer slot taken
        stalled = [stubs[i % 4].Download(p2p_pb2.DownloadRequest(sha256=BIG_SHA), metadata=download_md)
                   for i in range(8)]
        for call in stalled:
            next(call)
        stalled_at = time.monotonic()
        with grpc.insecure_channel(big_peer.address) as probe:
            health = [_health_s(probe) for _ in range(10)]
            t = time.monotonic()
            assert [f.name for f in p2p_pb2_grpc.P2PServiceStub(probe).ListFiles(
                p2p_pb2.ListFilesRequest(), timeout=2).files] == ["big.bin"]
            figures["ListFiles while full (s)"] = time.monotonic() - t
        figures["health while full, max of 10 (s)"] = max(health)
        assert max(health) < 1.0
        # a ticket holder: busy answers at first, then the stalled calls are cancelled and it gets the file
        record = FileRecord(BIG_SHA, len(BIG), "big.bin", [Holder("target", big_peer.address)])
        t = time.monotonic()
        result = download(record, str(tmp_path / "got.bin"), ticket=mint.ticket(BIG_SHA), stall_timeout=10)
        figures["ticket holder's 24 MiB download, started with every slot stalled (s)"] = time.monotonic() - t
        assert (tmp_path / "got.bin").read_bytes() == BIG and result.sources == ["target"]
        assert time.monotonic() - stalled_at < STALL + 8
        # the silent uploads end at header_timeout (default 5 s)
        waiting = [f for f in silent if f not in busy]
        assert [_status(lambda f=f: f.result(timeout=15)) for f in waiting] == [grpc.StatusCode.CANCELLED] * 8
        figures["silent ticket uploads cancelled after (s)"] = time.monotonic() - started
        assert 4.5 <= figures["silent ticket uploads cancelled after (s)"] < 9
        for call in stalled:
            assert _status(lambda c=call: list(c)) in (grpc.StatusCode.CANCELLED, grpc.StatusCode.OK)
    finally:
        for c in channels:
            c.close()
    print("\n" + "\n".join(f"  {k}: {v:.3f}" for k, v in figures.items()))
    big_peer.wait_for_output("cancelled a transfer", timeout=1)
