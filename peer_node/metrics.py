"""A peer's Prometheus metrics, served on `[metrics] port` when it is set (off by default).

The counters are plain module-level values of one registry: the servicer and the service count
what crosses the wire, the download engine counts failed pieces and banned holders through the
functions below. Nothing here knows about gRPC; a refusal is counted by its status code name.
"""
from __future__ import annotations

import contextlib
import logging

from prometheus_client import CollectorRegistry, Counter, Gauge, disable_created_metrics, start_http_server

log = logging.getLogger(__name__)

# A *_created series per label set doubles the exposition for nothing a dashboard uses.
disable_created_metrics()
REGISTRY = CollectorRegistry(auto_describe=True)

BYTES_SENT = Counter("p2p_peer_bytes_sent", "File bytes this peer sent to others (Download answers)",
                     registry=REGISTRY)
BYTES_RECEIVED = Counter("p2p_peer_bytes_received", "File bytes this peer received from others (Upload calls)",
                         registry=REGISTRY)
TRANSFERS_ACTIVE = Gauge("p2p_peer_transfers_active", "Transfers this peer is serving now, by direction",
                         ["direction"], registry=REGISTRY)
REFUSALS = Counter("p2p_peer_refusals", "Calls this peer answered with an error, by gRPC status code",
                   ["code"], registry=REGISTRY)
PIECES_FAILED = Counter("p2p_peer_pieces_failed", "Pieces a download fetched whose hash did not match",
                        registry=REGISTRY)
HOLDERS_BANNED = Counter("p2p_peer_holders_banned", "Holders a download stopped asking after they sent bad data",
                         registry=REGISTRY)

SENDING, RECEIVING = "send", "receive"
for _direction in (SENDING, RECEIVING):
    TRANSFERS_ACTIVE.labels(_direction)  # both series exist from the start, at 0


def bytes_sent(n: int) -> None:
    """Count n file bytes sent to another peer."""
    BYTES_SENT.inc(n)


def bytes_received(n: int) -> None:
    """Count n file bytes received from another peer."""
    BYTES_RECEIVED.inc(n)


def transfer_started(direction: str) -> None:
    """One more transfer in this direction (SENDING or RECEIVING) is under way."""
    TRANSFERS_ACTIVE.labels(direction).inc()


def transfer_ended(direction: str) -> None:
    """A transfer in this direction ended (done, failed or cancelled)."""
    TRANSFERS_ACTIVE.labels(direction).dec()


@contextlib.contextmanager
def transfer(direction: str):
    """Count a transfer as active while the block runs."""
    transfer_started(direction)
    try:
        yield
    finally:
        transfer_ended(direction)


def refused(code: str) -> None:
    """Count one call answered with this gRPC status code name (e.g. "RESOURCE_EXHAUSTED")."""
    REFUSALS.labels(code).inc()


def piece_failed(n: int = 1) -> None:
    """Count pieces whose hash did not match what the directory published (the download engine calls it)."""
    PIECES_FAILED.inc(n)


def holder_banned() -> None:
    """Count one holder a download gave up on for sending bad data (the download engine calls it)."""
    HOLDERS_BANNED.inc()


def serve(host: str, port: int):
    """Serve GET /metrics on host:port (0 = any free port) in a daemon thread; returns (server, port).

    Stop it with server.shutdown(). OSError if the port cannot be bound.
    """
    server, _thread = start_http_server(port, addr=host, registry=REGISTRY)
    return server, server.server_port
