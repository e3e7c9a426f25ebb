"""The stub boundary: talk to another peer over gRPC; grpc.RpcError becomes our exceptions here."""
import logging
import os
import threading
from dataclasses import dataclass

import grpc

from peer_node import tls
from peer_node.config import MAX_MESSAGE_BYTES
from peer_node.errors import (AlreadyExists, Busy, ChecksumMismatch, InvalidRequest, NotFound,
                              OutOfRange, PeerUnavailable, RemoteError, TicketRefused, TicketRequired,
                              UploadRejected)
from peer_node.wire import decode_chunk
from protos import p2p_pb2, p2p_pb2_grpc
from protos.tickets import METADATA_KEY, bearer

log = logging.getLogger(__name__)

KEEPALIVE_TIME_MS = 10_000
KEEPALIVE_TIMEOUT_MS = 5_000
# What gRPC may buffer ahead of us, per stream. A fixed window instead of BDP-probed growth:
# same loopback throughput in our measurements, but what is buffered ahead of a slow disk stays
# bounded (peak RSS). A download from several holders splits it (peer_node/swarm.py), so its
# total stays the same: at 4 MiB per source, 4 sources cost the client 150-163 MiB peak RSS,
# at 1 MiB 122-129 MiB, no slower (measured 2026-12-04).
RECEIVE_WINDOW = 4 * 1024 * 1024
MIN_RECEIVE_WINDOW = 1024 * 1024  # one default chunk
CHANNEL_OPTIONS = [
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.http2.bdp_probe", 0),
    # Keepalive: a peer that stops answering (crashed host, SIGSTOP, dead link) is noticed by
    # an unanswered HTTP/2 PING instead of never. Pings go only while a call is open, and keep
    # going while we only receive (max_pings_without_data 0); the server permits this rate
    # (servicer.GRPC_OPTIONS: min_ping_interval_without_data_ms below our keepalive_time_ms).
    ("grpc.keepalive_time_ms", KEEPALIVE_TIME_MS),
    ("grpc.keepalive_timeout_ms", KEEPALIVE_TIMEOUT_MS),
    # gRPC core times pings out on this one (default 60 s), not on keepalive_timeout_ms: without
    # it a frozen peer is noticed after 70 s instead of 15 (measured with grpcio 1.85)
    ("grpc.http2.ping_timeout_ms", KEEPALIVE_TIMEOUT_MS),
    ("grpc.keepalive_permit_without_calls", 0),
    ("grpc.http2.max_pings_without_data", 0),
]


def channel_options(window=RECEIVE_WINDOW):
    """The options of a channel to another peer, with a receive window of window bytes per stream."""
    return [*CHANNEL_OPTIONS, ("grpc.http2.lookahead_bytes", max(MIN_RECEIVE_WINDOW, window))]


_UNAVAILABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED,
                grpc.StatusCode.CANCELLED}


@dataclass(frozen=True)
class RemoteFile:
    """A file as another peer describes it."""

    name: str
    size: int
    sha256: str


def translate(exc, address, name=""):
    """The P2PError for a grpc.RpcError raised by a call to address (dialed as tls.dialing() says)."""
    code = exc.code() if hasattr(exc, "code") else None
    detail = (exc.details() if hasattr(exc, "details") else None) or str(code)
    if code is grpc.StatusCode.UNAVAILABLE:
        mismatch = tls.explain(address, tls.dialing(), detail)
        if mismatch is not None:  # plaintext against TLS, another CA...: say so in one line
            return mismatch
    if code in _UNAVAILABLE:
        return PeerUnavailable(address, detail)
    if code is grpc.StatusCode.UNKNOWN and "stream removed" in detail.lower():
        return PeerUnavailable(address, detail)  # the connection broke mid-stream
    if code is grpc.StatusCode.NOT_FOUND:
        err = NotFound(detail)
    elif code is grpc.StatusCode.INVALID_ARGUMENT:
        err = InvalidRequest(detail)
    elif code is grpc.StatusCode.OUT_OF_RANGE:
        err = OutOfRange(detail)
    elif code is grpc.StatusCode.ALREADY_EXISTS:
        err = AlreadyExists(name, detail)
    elif code is grpc.StatusCode.DATA_LOSS:
        err = ChecksumMismatch(name, None, None)
    elif code is grpc.StatusCode.RESOURCE_EXHAUSTED and "larger than max" in detail.lower():
        # our own channel refused a message over its limit: the peer broke the protocol
        return RemoteError(address, "PROTOCOL", f"sent a message over the size limit ({detail})")
    elif code is grpc.StatusCode.RESOURCE_EXHAUSTED:
        err = Busy(detail)
    elif code is grpc.StatusCode.UNAUTHENTICATED:
        err = TicketRequired(detail)
    elif code is grpc.StatusCode.PERMISSION_DENIED and "ticket" in detail.lower():
        err = TicketRefused(detail)  # every refusal of the peer's ticket check names the ticket
    elif code is grpc.StatusCode.PERMISSION_DENIED:
        err = UploadRejected(detail)
    else:
        return RemoteError(address, code.name if code else "?", detail)
    err.args = (f"peer {address}: {detail}",)
    err.address = address
    return err


class DownloadStream:
    """One Download call: iterate it for (offset, data) chunks; cancel() ends it from any thread.

    data is a memoryview into the received message (no copy). After a local cancel() the
    iteration raises PeerUnavailable and `cancelled` is True, so a caller can tell its own
    cancellation from the peer's failure.
    """

    def __init__(self, call, address, what):
        self._call, self.address, self.what = call, address, what
        self.cancelled = False
        self.finished = False

    def __iter__(self):
        return self

    def __next__(self):
        try:
            raw = next(self._call)
        except StopIteration:
            self.finished = True
            raise
        except grpc.RpcError as exc:
            self.finished = True
            raise translate(exc, self.address, self.what) from None
        try:
            return decode_chunk(raw)
        except ValueError as exc:
            raise RemoteError(self.address, "PROTOCOL", f"malformed FileChunk: {exc}") from None

    def cancel(self):
        """End the call now (thread-safe; a no-op once it has completed)."""
        self.cancelled = True
        self._call.cancel()


class PeerClient:
    """A channel to one peer; use as a context manager or call close().

    ticket: the transfer ticket sent with Download and Upload, a string or a function that
    answers a current one (a long download outlives a ticket: peer_node/access.py renews it);
    window: bytes gRPC may receive ahead of each stream's reader (at least MIN_RECEIVE_WINDOW).
    """

    def __init__(self, address, timeout=10.0, ticket=None, window=RECEIVE_WINDOW):
        self.address = address
        self.timeout = timeout  # for unary calls; streams run as long as bytes keep coming
        self.ticket = ticket
        self._channel = tls.channel(address, tls.dialing(), channel_options(window))  # TLS with [tls] ca (tls.use)
        self._stub = p2p_pb2_grpc.P2PServiceStub(self._channel)
        # Download answers are left as raw bytes and parsed by wire.decode_chunk (zero-copy)
        self._download_raw = self._channel.unary_stream(
            "/p2p.v1.P2PService/Download",
            request_serializer=p2p_pb2.DownloadRequest.SerializeToString,
            response_deserializer=None)
        self._streams = []
        self._lock = threading.Lock()
        self._closed = False

    def close(self):
        """Cancel the calls still open, then close the channel (never left to the collector)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            streams, self._streams = self._streams, []
        for stream in streams:
            if not stream.finished:
                stream.cancel()
        self._channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def list_files(self, prefix=""):
        """Every file the peer shares (optionally by name prefix)."""
        try:
            answer = self._stub.ListFiles(p2p_pb2.ListFilesRequest(prefix=prefix), timeout=self.timeout)
        except grpc.RpcError as exc:
            raise translate(exc, self.address) from None
        return [RemoteFile(f.name, f.size, f.sha256) for f in answer.files]

    def health(self, service=""):
        """The peer's health status name (SERVING, NOT_SERVING, ...)."""
        from grpc_health.v1 import health_pb2, health_pb2_grpc  # only health checks need these

        stub = health_pb2_grpc.HealthStub(self._channel)
        try:
            answer = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=self.timeout)
        except grpc.RpcError as exc:
            raise translate(exc, self.address) from None
        return health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)

    def _metadata(self):
        """The call metadata that carries the ticket (None without one)."""
        ticket = self.ticket() if callable(self.ticket) else self.ticket
        return ((METADATA_KEY, bearer(ticket)),) if ticket else None

    def open_download(self, sha256="", name="", offset=0, length=0):
        """Start a Download of the range (length 0: to the end); returns its DownloadStream."""
        call = self._download_raw(
            p2p_pb2.DownloadRequest(sha256=sha256, name=name, offset=offset, length=length),
            metadata=self._metadata())
        stream = DownloadStream(call, self.address, name or sha256)
        with self._lock:
            self._streams = [s for s in self._streams if not s.finished]
            self._streams.append(stream)
        if self._closed:
            stream.cancel()  # closed meanwhile by another thread: the call must not outlive it
        return stream

    def download(self, sha256="", name="", offset=0, length=0):
        """Yield (offset, data) chunks of the requested range (data: a bytes-like memoryview)."""
        stream = self.open_download(sha256, name, offset, length)
        try:
            yield from stream
        finally:
            stream.cancel()  # no-op when complete; frees the stream when the caller stops early

    def upload(self, path, name, size, sha256, chunk_size=1024 * 1024, rate_limiter=None):
        """Stream the local file at path to the peer as name; return the RemoteFile it stored."""
        def requests_():
            yield p2p_pb2.UploadRequest(header=p2p_pb2.FileInfo(name=name, size=size, sha256=sha256))
            with open(path, "rb", buffering=0) as f:
                fd = f.fileno()
                offset = 0
                while True:
                    data = os.pread(fd, chunk_size, offset)
                    if not data:
                        return
                    if rate_limiter is not None:
                        rate_limiter.take(len(data))
                    offset += len(data)
                    yield p2p_pb2.UploadRequest(data=data)

        try:
            answer = self._stub.Upload(requests_(), metadata=self._metadata())
        except grpc.RpcError as exc:
            raise translate(exc, self.address, name) from None
        return RemoteFile(answer.file.name, answer.file.size, answer.file.sha256)
