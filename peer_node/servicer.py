"""The gRPC face of a peer: thin P2PService methods, health, reflection, create_server/serve/stop."""
import logging
import threading
from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from peer_node import metrics
from peer_node.config import MAX_MESSAGE_BYTES
from peer_node.errors import InvalidRequest, P2PError
from peer_node.wire import encode_chunk
from protos import p2p_pb2, p2p_pb2_grpc
from protos.tickets import METADATA_KEY, UPLOAD

log = logging.getLogger(__name__)

SERVICE_NAME = p2p_pb2.DESCRIPTOR.services_by_name["P2PService"].full_name
GRPC_OPTIONS = [
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.so_reuseport", 0),  # two peers must never share a port by accident
    # Accept the keepalive pings our clients send during a call (client.KEEPALIVE_TIME_MS,
    # 10 s): a ping closer than this to the previous one counts as a strike, and
    # max_ping_strikes strikes end the connection with GOAWAY "too_many_pings".
    ("grpc.http2.min_ping_interval_without_data_ms", 5_000),
    ("grpc.http2.max_ping_strikes", 2),
    ("grpc.keepalive_permit_without_calls", 1),
    # Our own pings find a client that froze or vanished mid-download, so its call ends and
    # its transfer slot (max_transfers) is freed instead of being held forever.
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.http2.ping_timeout_ms", 10_000),  # what core actually times pings out on
]


# The status message travels percent-encoded in a trailer, which the client refuses past 8 KiB
# (as RESOURCE_EXHAUSTED, which means "busy" to us): a message that quotes a long non-ASCII
# name must be cut well below that.
MAX_DETAIL_BYTES = 1024


def _detail(exc):
    text = str(exc)
    raw = text.encode("utf-8", "backslashreplace")
    if len(raw) <= MAX_DETAIL_BYTES:
        return text
    return raw[:MAX_DETAIL_BYTES - 3].decode("utf-8", "ignore") + "..."


def _abort(context, exc):
    """Our exception becomes a gRPC status here, and only here."""
    code = getattr(grpc.StatusCode, exc.grpc_code, grpc.StatusCode.INTERNAL)
    metrics.refused(code.name)
    if code is grpc.StatusCode.INTERNAL:
        log.error("internal error: %s", exc)
    context.abort(code, _detail(exc))


def _authorization(context):
    """The call's "authorization" metadata value (None when absent)."""
    for key, value in context.invocation_metadata() or ():
        if key == METADATA_KEY:
            return value
    return None


def _info(entry):
    return p2p_pb2.FileInfo(name=entry.name, size=entry.size, sha256=entry.sha256)


class P2PServicer(p2p_pb2_grpc.P2PServiceServicer):
    """Maps the three RPCs onto a PeerService."""

    def __init__(self, service):
        self.service = service

    def ListFiles(self, request, context):
        """Every shared file, optionally filtered by name prefix."""
        try:
            entries = self.service.list_files(request.prefix)
        except P2PError as exc:
            _abort(context, exc)
        return p2p_pb2.ListFilesResponse(files=[_info(e) for e in entries])

    def Download(self, request, context):
        """Stream the requested range in chunks; a client that stops reading is cancelled."""
        try:
            _, _, _, chunks = self.service.download(
                request.sha256, request.name, request.offset, request.length, authorization=_authorization(context))
        except P2PError as exc:
            _abort(context, exc)
        stall = self.service.limits.stall_timeout
        with self.service.watchdog.watch(context.cancel) as watch:
            try:
                for offset, data in chunks:
                    # armed only while grpc sends (a client that stops reading stops the send),
                    # not while we read the disk or keep to the rate limit
                    watch.arm(stall, f"a Download client read nothing for {stall:g} s")
                    yield encode_chunk(offset, data)  # FileChunk, pre-serialized (see wire.py)
                    watch.disarm()
            except P2PError as exc:
                _abort(context, exc)
            finally:
                chunks.close()

    def Upload(self, request_iterator, context):
        """Receive header then data; answer the stored FileInfo. A silent sender is cancelled."""
        limits = self.service.limits
        with self.service.watchdog.watch(context.cancel) as watch:
            try:
                self.service.check_accepts_uploads()
                claims = self.service.admit(_authorization(context), UPLOAD)  # before waiting for a header
                with self.service.awaiting_header():
                    watch.arm(limits.header_timeout, f"an Upload sent no header within {limits.header_timeout:g} s")
                    first = next(request_iterator, None)
                    watch.disarm()
                if first is None or first.WhichOneof("part") != "header":
                    raise InvalidRequest("the first Upload message must be the header (name, size, sha256)")
                h = first.header
                parts = _data_parts(request_iterator, watch, limits.stall_timeout)
                entry = self.service.receive(h.name, h.size, h.sha256, parts, claims)
            except P2PError as exc:
                _abort(context, exc)
            except grpc.RpcError:
                if context.is_active() and watch.fired is None:
                    raise
                return None  # cancelled (by the watchdog or the client): nobody to answer
        return p2p_pb2.UploadResponse(file=_info(entry))


def _data_parts(request_iterator, watch, stall):
    while True:
        watch.arm(stall, f"an Upload sent nothing for {stall:g} s")
        msg = next(request_iterator, None)
        watch.disarm()
        if msg is None:
            return
        if msg.WhichOneof("part") != "data":
            raise InvalidRequest("only data may follow the Upload header")
        yield msg.data


def _serialize(message):
    return message if isinstance(message, bytes) else message.SerializeToString()


def add_to_server(servicer, server):
    """Register the servicer like the generated add_P2PServiceServicer_to_server, except that
    Download may yield FileChunk messages already serialized to bytes."""
    handlers = {
        "ListFiles": grpc.unary_unary_rpc_method_handler(
            servicer.ListFiles, request_deserializer=p2p_pb2.ListFilesRequest.FromString,
            response_serializer=p2p_pb2.ListFilesResponse.SerializeToString),
        "Download": grpc.unary_stream_rpc_method_handler(
            servicer.Download, request_deserializer=p2p_pb2.DownloadRequest.FromString,
            response_serializer=_serialize),
        "Upload": grpc.stream_unary_rpc_method_handler(
            servicer.Upload, request_deserializer=p2p_pb2.UploadRequest.FromString,
            response_serializer=p2p_pb2.UploadResponse.SerializeToString),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE_NAME, handlers),))
    server.add_registered_method_handlers(SERVICE_NAME, handlers)


# Calls that hold a server thread for as long as the client keeps them open, whoever it is: a
# health Watch and a reflection stream. A few at a time, so that strangers opening many of them
# cannot take the threads that health checks and ListFiles answer on.
OPEN_STREAMS = 4
_OPEN_STREAM_METHODS = ("/grpc.health.v1.Health/Watch",
                        f"/{reflection.SERVICE_NAME}/ServerReflectionInfo")


class _OpenStreamLimit(grpc.ServerInterceptor):
    """At most `limit` open health watches and reflection streams; more get RESOURCE_EXHAUSTED at once."""

    def __init__(self, limit=OPEN_STREAMS):
        self.limit = limit
        self._open = threading.BoundedSemaphore(limit)

    def intercept_service(self, continuation, handler_call_details):
        """Wrap the streaming-answer handlers of the long-lived methods; others pass through."""
        handler = continuation(handler_call_details)
        if handler is None or handler_call_details.method not in _OPEN_STREAM_METHODS:
            return handler
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                self._bounded(handler.unary_stream), handler.request_deserializer, handler.response_serializer)
        if handler.stream_stream is not None:
            return grpc.stream_stream_rpc_method_handler(
                self._bounded(handler.stream_stream), handler.request_deserializer, handler.response_serializer)
        return handler

    def _bounded(self, behavior):
        def bounded(request, context):
            if not self._open.acquire(blocking=False):
                metrics.refused("RESOURCE_EXHAUSTED")
                context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                              f"too many open health watches and reflection streams ({self.limit}); try again later")
            try:
                yield from behavior(request, context)
            finally:
                self._open.release()
        return bounded


def create_server(address, service, max_workers=None, credentials=None):
    """A gRPC server with P2PService, health and reflection bound to address; returns (server, port).

    Port 0 picks a free port. credentials: grpc server credentials (tls.server_credentials)
    to serve TLS, None for plaintext. Call serve(server) to start it.
    """
    # a thread per transfer slot, one per Upload awaiting its header, and 8 that transfers never
    # take: health checks (the directory's probe) and ListFiles answer however busy the peer is
    workers = max_workers or 2 * service.limits.max_transfers + 8
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="grpc"),
                         interceptors=(_OpenStreamLimit(),), options=GRPC_OPTIONS)
    add_to_server(P2PServicer(service), server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
         reflection.SERVICE_NAME), server)
    try:
        port = (server.add_secure_port(address, credentials) if credentials is not None
                else server.add_insecure_port(address))
    except RuntimeError as exc:
        raise P2PError(f"cannot listen on {address}: {exc}") from None
    if not port:
        raise P2PError(f"cannot listen on {address}")
    server.p2p_health = health_servicer
    return server, port


def serve(server):
    """Start the server and report SERVING on health; returns at once."""
    server.start()
    for name in ("", SERVICE_NAME):
        server.p2p_health.set(name, health_pb2.HealthCheckResponse.SERVING)
    return server


def stop(server, grace=5.0):
    """Answer NOT_SERVING, let running calls finish for up to grace seconds, then stop."""
    server.p2p_health.enter_graceful_shutdown()
    server.stop(grace).wait()
