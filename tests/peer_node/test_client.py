"""The stub boundary: every gRPC status becomes one of our errors in `translate`, against real servers where one can produce it."""
import hashlib
import os
import socket
from concurrent import futures

import grpc
import pytest

from peer_node.client import MIN_RECEIVE_WINDOW, RECEIVE_WINDOW, PeerClient, RemoteFile, channel_options, translate
from peer_node.errors import (AlreadyExists, Busy, ChecksumMismatch, InvalidRequest, NotFound,
                              OutOfRange, P2PError, PeerUnavailable, RemoteError, TicketRequired,
                              UploadRejected)
from peer_node.servicer import stop

DATA = os.urandom(100_000)
SHA = hashlib.sha256(DATA).hexdigest()
ADDRESS = "10.0.0.1:5000"


def sha(data):
    return hashlib.sha256(data).hexdigest()


class Status(grpc.RpcError):
    """A finished call's status, as grpc raises it: code() and details()."""

    def __init__(self, code, details):
        self._code, self._details = code, details

    def code(self):
        return self._code

    def details(self):
        return self._details


# every status a call can end with, and what it becomes on our side
TRANSLATIONS = {
    grpc.StatusCode.CANCELLED: PeerUnavailable,
    grpc.StatusCode.UNKNOWN: RemoteError,
    grpc.StatusCode.INVALID_ARGUMENT: InvalidRequest,
    grpc.StatusCode.DEADLINE_EXCEEDED: PeerUnavailable,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExists,
    grpc.StatusCode.PERMISSION_DENIED: UploadRejected,
    grpc.StatusCode.RESOURCE_EXHAUSTED: Busy,
    grpc.StatusCode.FAILED_PRECONDITION: RemoteError,
    grpc.StatusCode.ABORTED: RemoteError,
    grpc.StatusCode.OUT_OF_RANGE: OutOfRange,
    grpc.StatusCode.UNIMPLEMENTED: RemoteError,
    grpc.StatusCode.INTERNAL: RemoteError,
    grpc.StatusCode.UNAVAILABLE: PeerUnavailable,
    grpc.StatusCode.DATA_LOSS: ChecksumMismatch,
    grpc.StatusCode.UNAUTHENTICATED: TicketRequired,
}


def test_the_table_names_every_status_but_ok():
    assert set(TRANSLATIONS) == set(grpc.StatusCode) - {grpc.StatusCode.OK}


@pytest.mark.parametrize("code", sorted(TRANSLATIONS, key=lambda c: c.value[0]), ids=lambda c: c.name)
def test_translate_every_status(code):
    err = translate(Status(code, "what the peer said"), ADDRESS, "a.bin")
    assert type(err) is TRANSLATIONS[code]
    assert isinstance(err, P2PError)
    assert err.address == ADDRESS
    assert ADDRESS in str(err) and "what the peer said" in str(err)
    if type(err) is RemoteError:
        assert err.code == code.name and err.detail == "what the peer said"
    if type(err) is AlreadyExists:
        assert err.name == "a.bin"


def test_a_stream_removed_mid_way_is_an_unavailable_peer():
    err = translate(Status(grpc.StatusCode.UNKNOWN, "Stream removed"), ADDRESS)
    assert type(err) is PeerUnavailable and err.address == ADDRESS


def test_a_status_without_details_names_its_code():
    err = translate(Status(grpc.StatusCode.INTERNAL, ""), ADDRESS)
    assert type(err) is RemoteError and "INTERNAL" in str(err)


def test_an_error_without_a_status_is_a_remote_error():
    err = translate(grpc.RpcError(), ADDRESS)
    assert type(err) is RemoteError and err.code == "?" and err.address == ADDRESS


# -- the same, produced by real servers ------------------------------------------------------


@pytest.fixture
def peer(inproc_peer_factory):
    return inproc_peer_factory({"data.bin": DATA}, chunk_size=16 * 1024, max_upload_bytes=200_000)


@pytest.fixture
def upload_file(tmp_path):
    def write(data):
        path = tmp_path / f"up-{sha(data)[:8]}.bin"
        path.write_bytes(data)
        return str(path)
    return write


def test_list_download_and_upload_succeed(peer, upload_file):
    with PeerClient(peer.address) as c:
        assert c.list_files() == [RemoteFile("data.bin", len(DATA), SHA)]
        assert c.list_files("other/") == []
        chunks = list(c.download(sha256=SHA, offset=10, length=40_000))
        assert chunks[0][0] == 10 and b"".join(d for _, d in chunks) == DATA[10:40_010]
        new = os.urandom(50_000)
        stored = c.upload(upload_file(new), "in/new.bin", len(new), sha(new), chunk_size=8 * 1024)
        assert stored == RemoteFile("in/new.bin", len(new), sha(new))
        assert c.health() == "SERVING"


@pytest.mark.parametrize("window, expected", [
    (RECEIVE_WINDOW, RECEIVE_WINDOW), (RECEIVE_WINDOW // 4, RECEIVE_WINDOW // 4),
    (1, MIN_RECEIVE_WINDOW), (8 * RECEIVE_WINDOW, 8 * RECEIVE_WINDOW)])
def test_channel_options_carry_one_receive_window_never_below_a_chunk(window, expected):
    windows = [v for k, v in channel_options(window) if k == "grpc.http2.lookahead_bytes"]
    assert windows == [expected]


def test_chunks_larger_than_the_window_still_arrive(inproc_peer_factory):
    data = os.urandom(3 * MIN_RECEIVE_WINDOW + 5)
    peer = inproc_peer_factory({"big.bin": data}, chunk_size=2 * MIN_RECEIVE_WINDOW)
    with PeerClient(peer.address, window=MIN_RECEIVE_WINDOW) as c:
        chunks = list(c.download(sha256=sha(data)))
    assert [len(d) for _, d in chunks] == [2 * MIN_RECEIVE_WINDOW, MIN_RECEIVE_WINDOW + 5]
    assert b"".join(d for _, d in chunks) == data


@pytest.mark.parametrize("request_, error, words", [
    ({"sha256": "0" * 64}, NotFound, "not found"),
    ({"name": "../etc/passwd"}, InvalidRequest, "unsafe file name"),
    ({"sha256": SHA, "offset": len(DATA) + 1}, OutOfRange, "past the end"),
    ({"sha256": SHA, "offset": -1}, InvalidRequest, "must not be negative"),
], ids=["NOT_FOUND", "INVALID_ARGUMENT", "OUT_OF_RANGE", "INVALID_ARGUMENT-range"])
def test_download_statuses_from_a_real_peer(peer, request_, error, words):
    with PeerClient(peer.address) as c, pytest.raises(error, match=words) as err:
        list(c.download(**request_))
    assert err.value.address == peer.address and str(err.value).startswith(f"peer {peer.address}: ")


def test_upload_statuses_from_a_real_peer(peer, upload_file):
    with PeerClient(peer.address) as c:
        with pytest.raises(AlreadyExists, match="different content") as err:
            c.upload(upload_file(b"other bytes"), "data.bin", 11, sha(b"other bytes"))
        assert err.value.name == "data.bin"
        with pytest.raises(ChecksumMismatch):  # DATA_LOSS
            c.upload(upload_file(b"abc"), "x.bin", 3, sha(b"abd"))
        with pytest.raises(InvalidRequest, match="expected 3 bytes, got 4"):
            c.upload(upload_file(b"abcd"), "x.bin", 3, sha(b"abcd"))
        big = os.urandom(200_001)
        with pytest.raises(Busy, match="accepts uploads up to 200000 bytes"):  # RESOURCE_EXHAUSTED
            c.upload(upload_file(big), "big.bin", len(big), sha(big))


def test_permission_denied_from_a_peer_that_takes_no_uploads(inproc_peer_factory, upload_file):
    peer = inproc_peer_factory({}, accept_uploads=False)
    with PeerClient(peer.address) as c, pytest.raises(UploadRejected, match="does not accept uploads"):
        c.upload(upload_file(b"x"), "x.bin", 1, sha(b"x"))


def test_resource_exhausted_from_a_busy_peer(inproc_peer_factory):
    peer = inproc_peer_factory({"data.bin": DATA}, max_transfers=1, chunk_size=1024, upload_rate_limit=20_000)
    with PeerClient(peer.address) as holding, PeerClient(peer.address) as second:
        running = holding.download(sha256=SHA)
        next(running)  # holds the only transfer slot
        with pytest.raises(Busy, match="too many transfers"):
            list(second.download(sha256=SHA))
        running.close()


def test_a_closed_port_is_an_unavailable_peer(closed_port):
    address = f"127.0.0.1:{closed_port}"
    with PeerClient(address, timeout=5) as c:
        with pytest.raises(PeerUnavailable) as err:
            c.list_files()
        assert err.value.address == address
        with pytest.raises(PeerUnavailable):
            list(c.download(sha256=SHA))


def test_a_peer_that_never_answers_is_unavailable_at_the_deadline():
    with socket.socket() as silent:  # accepts connections (the kernel does), never speaks
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        address = f"127.0.0.1:{silent.getsockname()[1]}"
        with PeerClient(address, timeout=0.3) as c, pytest.raises(PeerUnavailable, match="Deadline"):
            c.list_files()  # DEADLINE_EXCEEDED


def test_a_peer_stopped_mid_stream_is_unavailable(inproc_peer_factory):
    peer = inproc_peer_factory({"data.bin": DATA}, chunk_size=1024, upload_rate_limit=50_000)
    with PeerClient(peer.address) as c:
        chunks = c.download(sha256=SHA)
        next(chunks)
        stop(peer.server, grace=0)
        with pytest.raises(PeerUnavailable):
            list(chunks)


def test_a_server_without_p2p_service_is_a_remote_error(health_server):
    with PeerClient(health_server) as c:
        assert c.health() == "SERVING"
        with pytest.raises(RemoteError) as err:
            c.list_files()
    assert err.value.code == "UNIMPLEMENTED" and err.value.address == health_server


def test_not_serving_health_is_reported_as_such(health_server):
    from grpc_health.v1 import health_pb2

    health_server.servicer.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
    with PeerClient(health_server) as c:
        assert c.health() == "NOT_SERVING"
        with pytest.raises(NotFound):  # a service the server does not know
            c.health("no.such.Service")


@pytest.fixture
def garbling_peer():
    """A gRPC server whose Download answers bytes that are no FileChunk: a broken or hostile peer."""
    def download(request, context):
        yield b"\x0a\xff\xff\xff"  # field 1 as a length-delimited run longer than the message

    handler = grpc.method_handlers_generic_handler("p2p.v1.P2PService", {
        "Download": grpc.unary_stream_rpc_method_handler(download, request_deserializer=None,
                                                         response_serializer=None)})
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}"
    server.stop(grace=None)


def test_a_malformed_chunk_is_a_protocol_error(garbling_peer):
    with PeerClient(garbling_peer) as c, pytest.raises(RemoteError, match="malformed FileChunk") as err:
        list(c.download(sha256=SHA))
    assert err.value.code == "PROTOCOL"
