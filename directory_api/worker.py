"""gunicorn's gthread worker, with request heads read by the event loop instead of a thread.

gunicorn's ThreadWorker hands a connection to a pool thread as soon as its first byte arrives,
and that thread then blocks until the whole request line and headers are in. A client that
sends half a request and stops (by accident or as a slowloris attack) holds a thread for as
long as it likes; a few of them hold every thread, and nobody else is answered. Here the
worker's event loop reads each head itself, without blocking, and gives the connection to a
thread only once the blank line that ends the head has arrived. A head that has not arrived
within the header timeout is dropped. After the head, each read of the body and each write of
the answer are bounded by the same timeout (SO_RCVTIMEO and SO_SNDTIMEO), so a client can hold
a thread only while it keeps sending.

Threads stay at the pool size whatever clients do; connections stay at worker_connections per
worker (past that the worker stops accepting, and the kernel's backlog holds the rest).

Over HTTPS (``--certfile``/``--keyfile``) the event loop does the TLS handshake too, without
blocking, before it reads the head: a client that starts a handshake and stops holds no
thread either, and the head deadline covers the handshake.
"""
from __future__ import annotations

import collections
import errno
import selectors
import socket
import ssl
import struct
import time
from functools import partial

from gunicorn import http
from gunicorn import sock as gunicorn_sock
from gunicorn.workers.gthread import TConn, ThreadWorker

# Past this many bytes without the end of the head, a thread takes over and gunicorn's parser
# answers the oversized head (its own limits are on the request line and on each header).
MAX_HEAD_BYTES = 64 * 1024
DEFAULT_HEADER_TIMEOUT_S = 10.0
# A connection closed after its answer is drained of what the client still sends (the rest of a
# body refused with 413, say), so that the close does not reset the connection before the client
# has read the answer; at most this much, for at most the header timeout.
MAX_LINGER_BYTES = 16 * 1024 * 1024


def bound_blocking_io(sock: socket.socket, timeout_s: float) -> None:
    """Make every blocking recv and send on sock give up after timeout_s (kernel timeouts).

    gunicorn switches the socket between blocking and non-blocking mode, which resets a Python
    socket timeout; the kernel's SO_RCVTIMEO and SO_SNDTIMEO survive that.
    """
    seconds = int(timeout_s)
    value = struct.pack("ll", seconds, int((timeout_s - seconds) * 1_000_000))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, value)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, value)


class LingeringConn(TConn):
    """A gthread connection whose graceful close is left to the event loop, which never blocks on it.

    gunicorn's own graceful close waits, in the worker's event loop, up to 2 s for the client
    to close its side, and drains only 64 KiB: one client that keeps its side open stalls every
    other connection of the worker for 2 s, and a client still sending a refused body gets a
    reset instead of its answer.
    """

    def __init__(self, worker, *args):
        super().__init__(*args)
        self.worker = worker

    def init(self):
        """gthread's init, except that a connection whose TLS the worker set up is not wrapped again."""
        if getattr(self, "p2p_tls", False) and self.parser is None:
            self.initialized = True
            self.sock.setblocking(True)
            self.parser = http.get_parser(self.cfg, self.sock, self.client)
            return
        super().init()

    def close(self, graceful=False):
        """Close now, or (graceful) half-close and let the worker drain and close it."""
        if graceful and self.worker.alive:
            self.worker.linger(self)
        else:
            super().close()


class HeadFirstWorker(ThreadWorker):
    """A ThreadWorker whose pool threads only ever see requests whose head has fully arrived."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.header_timeout_s = getattr(self.app, "header_timeout_s", DEFAULT_HEADER_TIMEOUT_S)
        # (deadline, conn, which wait) in arrival order, so in deadline order; a conn whose head
        # was completed or dropped stays in the deque until its deadline and is then skipped.
        self._heads: collections.deque = collections.deque()
        self._lingering: collections.deque = collections.deque()  # (deadline, conn), the same way

    # -- the event loop's side (main thread) -----------------------------------------------

    def accept(self, listener):
        """Accept a connection and start reading its head without a thread."""
        try:
            client, address = listener.accept()
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        self.nr_conns += 1
        try:
            bound_blocking_io(client, self.header_timeout_s)
            if self.cfg.is_ssl:
                # The handshake happens in the event loop (_read_head), never in a pool thread.
                client = self._tls().wrap_socket(client, server_side=True, do_handshake_on_connect=False,
                                                 suppress_ragged_eofs=self.cfg.suppress_ragged_eofs)
        except (OSError, ssl.SSLError):
            self.nr_conns -= 1
            client.close()
            return
        conn = LingeringConn(self, self.cfg, client, address, listener.getsockname())
        conn.p2p_tls = conn.p2p_handshake = self.cfg.is_ssl
        self._await_head(conn)

    def _tls(self) -> ssl.SSLContext:
        """gunicorn's server-side TLS context of this worker's settings, built once."""
        if getattr(self, "_tls_context", None) is None:
            self._tls_context = gunicorn_sock.ssl_context(self.cfg)
        return self._tls_context

    def on_client_socket_readable(self, conn, client):
        """A kept-alive connection starts its next request: read that head without a thread too."""
        self.poller.unregister(client)
        self.keepalived_conns.remove(conn)
        self._await_head(conn)

    def _await_head(self, conn):
        conn.p2p_head = bytearray()
        conn.p2p_polled = False
        # A kept-alive connection waits for several heads: a deadline is for one of them only.
        conn.p2p_wait = getattr(conn, "p2p_wait", 0) + 1
        if self._read_head(conn):  # often the whole head is there already
            return
        self._heads.append((time.monotonic() + self.header_timeout_s, conn, conn.p2p_wait))
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._on_head_readable, conn))
        conn.p2p_polled = True

    def _on_head_readable(self, conn, _sock):
        self._read_head(conn)

    def _unpoll(self, conn):
        if conn.p2p_polled:
            conn.p2p_polled = False
            try:
                self.poller.unregister(conn.sock)
            except (KeyError, ValueError, OSError):
                pass

    def _read_head(self, conn) -> bool:
        """Read what has arrived; True when the connection left the head stage (handed on or dropped)."""
        if getattr(conn, "p2p_handshake", False):
            try:
                conn.sock.do_handshake()
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError, InterruptedError):
                return False
            except (ssl.SSLError, OSError) as exc:  # plaintext on the TLS port, a bad certificate, a reset
                self.log.debug("TLS handshake failed: %s", exc)
                self._drop(conn)
                return True
            conn.p2p_handshake = False
        try:
            data = conn.sock.recv(MAX_HEAD_BYTES)
            # A TLS record already decrypted does not make the socket readable again: take it now.
            while getattr(conn, "p2p_tls", False) and conn.sock.pending() and len(data) < MAX_HEAD_BYTES:
                data += conn.sock.recv(MAX_HEAD_BYTES - len(data))
        except (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return False
        except OSError:
            data = b""
        if not data:  # the client went away before finishing its head
            self._drop(conn)
            return True
        head = conn.p2p_head
        start = max(0, len(head) - 3)
        head += data
        if head.find(b"\r\n\r\n", start) < 0 and len(head) < MAX_HEAD_BYTES:
            return False
        conn.p2p_head = None
        conn.p2p_ready = bytes(head)
        conn.data_ready = True  # gthread's own wait for a first byte is not needed
        self._unpoll(conn)
        self.enqueue_req(conn)
        return True

    def _drop(self, conn):
        conn.p2p_head = None
        self._unpoll(conn)
        self.nr_conns -= 1
        TConn.close(conn)  # nothing was answered: no lingering

    def linger(self, conn):
        """Half-close conn (its answer is out) and drain it without blocking until the client closes."""
        if len(self._lingering) >= self.worker_connections:
            TConn.close(conn)
            return
        try:
            conn.sock.shutdown(socket.SHUT_WR)
            conn.sock.setblocking(False)
            self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._on_linger_readable, conn))
        except (OSError, ValueError, KeyError):
            TConn.close(conn)
            return
        conn.p2p_drained = 0
        self._lingering.append((time.monotonic() + self.header_timeout_s, conn))

    def _on_linger_readable(self, conn, _sock):
        try:
            data = conn.sock.recv(256 * 1024)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        conn.p2p_drained += len(data)
        if not data or conn.p2p_drained > MAX_LINGER_BYTES:
            self._end_linger(conn)

    def _end_linger(self, conn):
        if conn.p2p_drained is None:
            return
        conn.p2p_drained = None
        try:
            self.poller.unregister(conn.sock)
        except (KeyError, ValueError, OSError):
            pass
        TConn.close(conn)

    def murder_pending(self):
        """Also drop connections whose head is late (all of them once the worker is stopping), and
        close those that lingered long enough."""
        super().murder_pending()
        now = time.monotonic()
        while self._lingering and (self._lingering[0][0] <= now or not self.alive):
            self._end_linger(self._lingering.popleft()[1])
        while self._heads and (self._heads[0][0] <= now or not self.alive):
            _, conn, wait = self._heads.popleft()
            if conn.p2p_head is not None and conn.p2p_wait == wait:  # else handed on or dropped already
                self._drop(conn)

    # -- the pool's side -------------------------------------------------------------------

    def handle(self, conn):
        """Put the head read by the event loop back in front of the socket, then serve as gthread does."""
        head = getattr(conn, "p2p_ready", None)
        if head is not None:
            conn.p2p_ready = None
            conn.sock.setblocking(True)
            conn.init()  # the parser; a kept-alive connection has it already
            conn.parser.unreader.unread(head)
        return super().handle(conn)
