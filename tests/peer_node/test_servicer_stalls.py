"""Slots and timeouts over gRPC, in-process: silent uploads and stalled downloads are cancelled,
uploads that would wait beyond their share are refused at once, health never waits behind transfers."""
import hashlib
import os
import threading
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from protos import p2p_pb2, p2p_pb2_grpc, tickets
from tests.integration.helpers import wait_until

BIG = os.urandom(24 * 1024 * 1024)  # far more than the flow-control windows hold
BIG_SHA = hashlib.sha256(BIG).hexdigest()
NEW = os.urandom(100_000)
NEW_SHA = hashlib.sha256(NEW).hexdigest()
SLOTS = 2
TIMEOUT = 0.5


@pytest.fixture
def peer(inproc_peer_factory, admission):
    return inproc_peer_factory({"big.bin": BIG}, chunk_size=64 * 1024, max_transfers=SLOTS,
                               header_timeout=TIMEOUT, stall_timeout=TIMEOUT, admission=admission)


@pytest.fixture
def channel(peer):
    # no BDP probing: the receive window stays small, so a client that stops reading stalls the sender
    with grpc.insecure_channel(peer.address, options=[("grpc.http2.bdp_probe", 0)]) as channel:
        yield channel


@pytest.fixture
def held():
    """An event the never-ending request generators wait on; set at teardown so their threads end."""
    ev = threading.Event()
    yield ev
    ev.set()


def silent(held, *first):
    """Upload messages: first, then nothing until held is set."""
    yield from first
    held.wait(30)


def upload_md(mint, size=len(NEW)):
    return (("authorization", mint.bearer(NEW_SHA, tickets.UPLOAD, aud="me", size=size)),)


def header(size=len(NEW)):
    return p2p_pb2.UploadRequest(header=p2p_pb2.FileInfo(name="new.bin", size=size, sha256=NEW_SHA))


def health(channel):
    started = time.monotonic()
    answer = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert answer.status == health_pb2.HealthCheckResponse.SERVING
    return time.monotonic() - started


def outcome(future):
    try:
        future.result(timeout=10)
    except grpc.RpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


def test_an_upload_without_its_header_is_cancelled_after_header_timeout(channel, peer, mint, held):
    started = time.monotonic()
    call = p2p_pb2_grpc.P2PServiceStub(channel).Upload.future(silent(held), metadata=upload_md(mint))
    assert outcome(call) == grpc.StatusCode.CANCELLED
    assert TIMEOUT <= time.monotonic() - started < TIMEOUT + 2
    wait_until(lambda: peer.service._starting._value == SLOTS, timeout=5)


def test_an_upload_that_stops_sending_is_cancelled_and_leaves_nothing(channel, peer, mint, held):
    call = p2p_pb2_grpc.P2PServiceStub(channel).Upload.future(
        silent(held, header(), p2p_pb2.UploadRequest(data=NEW[:1000])), metadata=upload_md(mint))
    assert outcome(call) == grpc.StatusCode.CANCELLED
    wait_until(lambda: peer.service._slots._value == SLOTS, timeout=5)
    assert os.listdir(peer.folder.tmp_dir) == []
    assert not os.path.exists(os.path.join(peer.folder.root, "new.bin"))


def test_uploads_beyond_the_waiting_share_are_busy_at_once(channel, peer, mint, held):
    stub = p2p_pb2_grpc.P2PServiceStub(channel)
    waiting = [stub.Upload.future(silent(held), metadata=upload_md(mint)) for _ in range(SLOTS)]
    wait_until(lambda: peer.service._starting._value == 0, timeout=5)
    started = time.monotonic()
    with pytest.raises(grpc.RpcError) as err:
        stub.Upload(silent(held), metadata=upload_md(mint), timeout=5)
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "try again later" in err.value.details()
    assert time.monotonic() - started < TIMEOUT
    assert [outcome(f) for f in waiting] == [grpc.StatusCode.CANCELLED] * SLOTS


def test_a_download_whose_client_stops_reading_is_cancelled_and_frees_its_slot(channel, peer, mint):
    md = (("authorization", mint.bearer(BIG_SHA)),)
    stub = p2p_pb2_grpc.P2PServiceStub(channel)
    stalled = [stub.Download(p2p_pb2.DownloadRequest(sha256=BIG_SHA), metadata=md) for _ in range(SLOTS)]
    for call in stalled:
        next(call)  # one chunk, then never read again
    wait_until(lambda: peer.service._slots._value == 0, timeout=5)
    started = time.monotonic()
    wait_until(lambda: peer.service._slots._value == SLOTS, timeout=10, interval=0.05)
    assert time.monotonic() - started < TIMEOUT + 3
    data = b"".join(c.data for c in stub.Download(p2p_pb2.DownloadRequest(sha256=BIG_SHA), metadata=md))
    assert data == BIG  # a reading client is never cancelled, however long it takes
    for call in stalled:
        call.cancel()


def test_health_and_list_answer_while_every_transfer_thread_is_taken(channel, peer, mint, held):
    stub = p2p_pb2_grpc.P2PServiceStub(channel)
    md = (("authorization", mint.bearer(BIG_SHA)),)
    uploads = [stub.Upload.future(silent(held), metadata=upload_md(mint)) for _ in range(SLOTS)]
    downloads = [stub.Download(p2p_pb2.DownloadRequest(sha256=BIG_SHA), metadata=md) for _ in range(SLOTS)]
    for call in downloads:
        next(call)
    wait_until(lambda: peer.service._starting._value == 0 and peer.service._slots._value == 0, timeout=5)
    assert max(health(channel) for _ in range(20)) < TIMEOUT
    assert [f.name for f in stub.ListFiles(p2p_pb2.ListFilesRequest(), timeout=TIMEOUT).files] == ["big.bin"]
    for call in downloads:
        call.cancel()
    for f in uploads:
        outcome(f)


def test_open_health_watches_are_bounded_and_checks_still_answer(channel):
    from peer_node.servicer import OPEN_STREAMS

    stub = health_pb2_grpc.HealthStub(channel)
    watches = [stub.Watch(health_pb2.HealthCheckRequest()) for _ in range(OPEN_STREAMS)]
    for w in watches:
        assert next(w).status == health_pb2.HealthCheckResponse.SERVING
    with pytest.raises(grpc.RpcError) as err:
        next(stub.Watch(health_pb2.HealthCheckRequest(), timeout=5))
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert health(channel) < TIMEOUT
    for w in watches:
        w.cancel()
    wait_until(lambda: _watch_answers(stub), timeout=5)


def _watch_answers(stub):
    call = stub.Watch(health_pb2.HealthCheckRequest(), timeout=5)
    try:
        return next(call).status == health_pb2.HealthCheckResponse.SERVING
    except grpc.RpcError:
        return False
    finally:
        call.cancel()
