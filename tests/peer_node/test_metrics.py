"""peer_node.metrics: what the servicer and the service count, and the metrics server of a peer."""
import hashlib
import os
import urllib.request

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from peer_node import metrics
from protos import p2p_pb2, p2p_pb2_grpc

DATA = os.urandom(200_000)


def value(name, **labels):
    """The current value of one sample of the peer's registry (0 when it does not exist yet)."""
    found = metrics.REGISTRY.get_sample_value(name, labels or None)
    return found or 0.0


@pytest.fixture
def stub(inproc_peer_factory):
    peer = inproc_peer_factory({"data.bin": DATA}, chunk_size=64 * 1024, max_transfers=1)
    with grpc.insecure_channel(peer.address) as channel:
        yield p2p_pb2_grpc.P2PServiceStub(channel)


def test_downloads_count_the_bytes_sent(stub):
    before = value("p2p_peer_bytes_sent_total")
    chunks = list(stub.Download(p2p_pb2.DownloadRequest(name="data.bin", offset=1000)))
    assert sum(len(c.data) for c in chunks) == len(DATA) - 1000
    assert value("p2p_peer_bytes_sent_total") - before == len(DATA) - 1000
    assert value("p2p_peer_transfers_active", direction="send") == 0


def test_uploads_count_the_bytes_received(stub):
    before = value("p2p_peer_bytes_received_total")
    data = b"uploaded " * 10_000
    header = p2p_pb2.UploadRequest(header=p2p_pb2.FileInfo(name="up.bin", size=len(data),
                                                           sha256=hashlib.sha256(data).hexdigest()))
    stub.Upload(iter([header, p2p_pb2.UploadRequest(data=data[:50_000]), p2p_pb2.UploadRequest(data=data[50_000:])]))
    assert value("p2p_peer_bytes_received_total") - before == len(data)
    assert value("p2p_peer_transfers_active", direction="receive") == 0


@pytest.fixture
def slow_stub(inproc_peer_factory):
    """A peer with one transfer slot whose downloads take about a second (rate-limited)."""
    peer = inproc_peer_factory({"data.bin": DATA}, chunk_size=64 * 1024, max_transfers=1,
                               upload_rate_limit=len(DATA))
    with grpc.insecure_channel(peer.address) as channel:
        yield p2p_pb2_grpc.P2PServiceStub(channel)


def test_a_transfer_is_active_while_it_streams_and_a_second_is_refused(slow_stub):
    stub = slow_stub
    busy_before = value("p2p_peer_refusals_total", code="RESOURCE_EXHAUSTED")
    stream = stub.Download(p2p_pb2.DownloadRequest(name="data.bin"))
    next(stream)  # the one transfer slot is taken, the stream is open
    assert value("p2p_peer_transfers_active", direction="send") >= 1
    with pytest.raises(grpc.RpcError) as refused:
        list(stub.Download(p2p_pb2.DownloadRequest(name="data.bin")))
    assert refused.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert value("p2p_peer_refusals_total", code="RESOURCE_EXHAUSTED") - busy_before == 1
    list(stream)


@pytest.mark.parametrize("request_, code", [
    (p2p_pb2.DownloadRequest(name="missing.bin"), "NOT_FOUND"),
    (p2p_pb2.DownloadRequest(name="data.bin", offset=len(DATA) + 1), "OUT_OF_RANGE"),
    (p2p_pb2.DownloadRequest(sha256="nothex"), "INVALID_ARGUMENT"),
])
def test_refusals_are_counted_by_status_code(stub, request_, code):
    before = value("p2p_peer_refusals_total", code=code)
    with pytest.raises(grpc.RpcError):
        list(stub.Download(request_))
    assert value("p2p_peer_refusals_total", code=code) - before == 1


def test_the_download_engine_counts_failed_pieces_and_banned_holders():
    pieces, banned = value("p2p_peer_pieces_failed_total"), value("p2p_peer_holders_banned_total")
    metrics.piece_failed()
    metrics.piece_failed(2)
    metrics.holder_banned()
    assert value("p2p_peer_pieces_failed_total") - pieces == 3
    assert value("p2p_peer_holders_banned_total") - banned == 1


def test_transfer_counts_even_when_the_block_fails():
    with pytest.raises(RuntimeError):
        with metrics.transfer(metrics.RECEIVING):
            assert value("p2p_peer_transfers_active", direction="receive") >= 1
            raise RuntimeError("disk full")
    assert value("p2p_peer_transfers_active", direction="receive") == 0


def test_the_metrics_server_serves_the_registry():
    server, port = metrics.serve("127.0.0.1", 0)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
            text = answer.read().decode()
        names = {f.name for f in text_string_to_metric_families(text)}
        assert {"p2p_peer_bytes_sent", "p2p_peer_bytes_received", "p2p_peer_transfers_active", "p2p_peer_refusals",
                "p2p_peer_pieces_failed", "p2p_peer_holders_banned"} <= names
    finally:
        server.shutdown()
        server.server_close()
