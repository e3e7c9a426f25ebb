"""Concurrent HTTP load and half-sent requests against a real server, every loop bounded in time."""
import asyncio
import os
import socket
import threading
import time


class HttpLoad:
    """`concurrency` clients each sending GET path (one connection per request) until stop() or deadline_s.

    One asyncio loop in a daemon thread; answered counts 2xx answers, failed everything else
    (refused connections, resets, timeouts).
    """

    def __init__(self, host, port, path, concurrency, deadline_s=60.0):
        self.host, self.port, self.concurrency = host, port, concurrency
        self.request = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n".encode()
        self.deadline = time.monotonic() + deadline_s
        self.answered = 0
        self.failed = 0
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True, name="http-load")

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def stop(self, timeout=15.0):
        """Ask every client to finish and wait for the loop to end."""
        self._stopping.set()
        self._thread.join(timeout)

    def _running(self):
        return not self._stopping.is_set() and time.monotonic() < self.deadline

    async def _main(self):
        await asyncio.gather(*(self._client() for _ in range(self.concurrency)))

    async def _client(self):
        while self._running():
            writer = None
            try:
                reader, writer = await asyncio.wait_for(asyncio.open_connection(self.host, self.port), 5)
                writer.write(self.request)
                await writer.drain()
                answer = await asyncio.wait_for(reader.read(), 10)  # to EOF: Connection: close
                if answer.startswith(b"HTTP/1.1 2"):
                    self.answered += 1
                else:
                    self.failed += 1
            except (OSError, asyncio.TimeoutError):
                self.failed += 1
                await asyncio.sleep(0.05)  # a refused connect returns at once: do not spin
            finally:
                if writer is not None:
                    writer.close()


def half_sent(host, port, count, parts=(b"GET /api/v1/hea", b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\nUser-")):
    """count sockets that each sent part of a request line or of the headers, and then nothing."""
    socks = []
    try:
        for i in range(count):
            sock = socket.create_connection((host, port), timeout=5)
            sock.sendall(parts[i % len(parts)])
            socks.append(sock)
    except BaseException:
        for sock in socks:
            sock.close()
        raise
    return socks


def socket_count(pid):
    """How many sockets process pid has open (0 once it is gone)."""
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except FileNotFoundError:
        return 0
    count = 0
    for fd in fds:
        try:
            count += os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:")
        except OSError:
            pass  # closed meanwhile
    return count


def process_tree(pid):
    """pid and its children (gunicorn's arbiter and its workers)."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [pid, *map(int, f.read().split())]
    except FileNotFoundError:
        return [pid]


def thread_count(pid):
    """How many threads process pid runs (its /proc tasks)."""
    try:
        return len(os.listdir(f"/proc/{pid}/task"))
    except FileNotFoundError:
        return 0
