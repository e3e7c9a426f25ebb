"""The servers behind `python -m directory_api`: gunicorn by default, werkzeug's with --dev.

Production: gunicorn's arbiter forks ``config.workers`` processes of ``HeadFirstWorker`` (gthread
with ``config.threads`` threads, request heads read without a thread, see worker.py), each of
which builds the app from the same DirectoryConfig after the fork and runs its own background
threads. The entry point binds the socket itself (a busy port is then one clear line, and port
0 resolves to a real port before anything forks) and hands gunicorn the descriptor.

Every start gets a runtime folder of its own, removed at exit: prometheus_client's multiprocess
files (PROMETHEUS_MULTIPROC_DIR) and the mark by which only the first worker to be ready
prints the ready line.
"""
from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import sys
import tempfile

from gunicorn.app.base import BaseApplication
from gunicorn.arbiter import Arbiter

from .config import DirectoryConfig

log = logging.getLogger(__name__)

WORKER_CLASS = "directory_api.worker.HeadFirstWorker"
# Seconds a stopping worker lets requests in flight finish before the arbiter kills it: SIGTERM
# must end the directory within 5 s even under load (requests take milliseconds).
GRACEFUL_TIMEOUT_S = 2
KEEPALIVE_S = 2  # an idle kept-alive connection is closed after this
BACKLOG = 2048
# prometheus_client picks its storage when it is first imported, from this variable (either case).
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
READY_MARK = "ready"


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port (port 0 = any free port)."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(BACKLOG)
    except OSError:
        sock.close()
        raise
    return sock


def ready_line(host: str, port: int, tls: bool = False) -> str:
    """What tests and scripts wait for: `directory listening on http://HOST:PORT` (https:// with TLS)."""
    shown = f"[{host}]" if ":" in host else host
    return f"directory listening on {'https' if tls else 'http'}://{shown}:{port}"


def _say_ready(host: str, port: int, tls: bool = False) -> None:
    print(ready_line(host, port, tls), flush=True)


def check_tls(config: DirectoryConfig) -> None:
    """ConfigError, in one line, unless config's certificate and key load together (nothing without TLS)."""
    if config.certfile is None:
        return
    import ssl

    from .errors import ConfigError

    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(config.certfile, config.keyfile)
    except (OSError, ssl.SSLError) as exc:
        reason = getattr(exc, "strerror", None) or getattr(exc, "reason", None) or str(exc)
        raise ConfigError(f"--certfile {config.certfile} / --keyfile {config.keyfile}: cannot load them: {reason}") \
            from None


# -- production: gunicorn ------------------------------------------------------------------


def exit_now(code: int) -> None:
    """End this process with code at once, output flushed, without the interpreter's teardown.

    Tearing down a server's heap (Flask, SQLAlchemy, grpc) takes 0.3-0.5 s in each process, for
    nothing: everything that must be written has been. SIGTERM's budget is 5 s under load.
    """
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


def _exit_code(exc: BaseException | None) -> int:
    if exc is None:
        return 0
    if isinstance(exc, SystemExit):
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 1


def serve_production(config: DirectoryConfig, sock: socket.socket) -> int:
    """Serve config with gunicorn on the bound sock until SIGTERM or SIGINT; returns the exit code.

    Call exit_now with it: the caller is the process gunicorn's arbiter ran in.
    """
    master = os.getpid()
    runtime = tempfile.mkdtemp(prefix="p2p-directory-")
    try:
        metrics_dir = None
        os.environ.pop(MULTIPROC_ENV.lower(), None)
        if config.metrics:
            metrics_dir = os.path.join(runtime, "metrics")
            os.mkdir(metrics_dir)
            os.environ[MULTIPROC_ENV] = metrics_dir  # before anything imports prometheus_client
        else:
            os.environ.pop(MULTIPROC_ENV, None)
        check_tls(config)  # a bad certificate is one line too, not a failure in every worker
        _prepare_store(config)  # a database or ticket key that cannot be used is one line, before any fork
        server = DirectoryServer(config, sock, runtime, metrics_dir)
        try:
            server.run()
        except SystemExit as exc:  # the arbiter's halt(), or a worker process leaving spawn_worker
            if os.getpid() != master:
                raise
            return _exit_code(exc)
        return 0
    finally:
        if os.getpid() == master:
            shutil.rmtree(runtime, ignore_errors=True)
            if os.environ.get(MULTIPROC_ENV, "").startswith(runtime):
                del os.environ[MULTIPROC_ENV]


def _prepare_store(config: DirectoryConfig) -> None:
    """Create the schema and the ticket key once, so that the workers forked next only read them."""
    from .keys import load_signer
    from .store import Store

    store = Store(config.database_url)
    try:
        store.create_schema()
        load_signer(config, store)
    finally:
        store.dispose()  # no connection may cross the fork


class DirectoryArbiter(Arbiter):
    """gunicorn's arbiter, saying that it stops (scripts and tests read the line)."""

    def handle_term(self):
        log.info("stopping (SIGTERM): requests in flight get %gs to finish", GRACEFUL_TIMEOUT_S)
        super().handle_term()

    def handle_int(self):
        log.info("stopping (SIGINT)")
        super().handle_int()


class DirectoryServer(BaseApplication):
    """gunicorn configured from a DirectoryConfig, serving the app built from the same config."""

    def __init__(self, config: DirectoryConfig, sock: socket.socket, runtime: str, metrics_dir: str | None):
        """Take over the bound sock; runtime is this start's folder, metrics_dir its multiprocess files."""
        self.config, self.runtime, self.metrics_dir = config, runtime, metrics_dir
        self.header_timeout_s = config.header_timeout_s  # read by HeadFirstWorker
        self.host, self.port = config.host, sock.getsockname()[1]
        self.fd = sock.detach()  # gunicorn owns (and closes) the descriptor from here on
        super().__init__(prog="p2p-directory")

    def load_config(self):
        """gunicorn's settings, from the DirectoryConfig; no config file, no GUNICORN_CMD_ARGS."""
        settings = {
            "bind": [f"fd://{self.fd}"],
            "workers": self.config.workers,
            "threads": self.config.threads,
            "worker_class": WORKER_CLASS,
            "graceful_timeout": GRACEFUL_TIMEOUT_S,
            "keepalive": KEEPALIVE_S,
            "backlog": BACKLOG,
            "proc_name": "p2p-directory",
            "errorlog": "-",
            "loglevel": "info",
            # gunicorn makes one control socket per user by default: two directories would fight.
            "control_socket_disable": True,
            "post_worker_init": self.post_worker_init,
            "worker_exit": self.worker_exit,
            "child_exit": self.child_exit,
        }
        if self.config.certfile:
            # HeadFirstWorker does the handshake in its event loop with gunicorn's TLS context.
            settings.update(certfile=self.config.certfile, keyfile=self.config.keyfile)
        for key, value in settings.items():
            self.cfg.set(key, value)

    def load(self):
        """In each worker, after the fork: the app and its background threads."""
        from . import create_app

        app = create_app(self.config)
        app.extensions["p2p"].start()
        return app

    def run(self):
        """Run the arbiter until a signal stops it (raises SystemExit)."""
        try:
            DirectoryArbiter(self).run()
        except RuntimeError as exc:
            print(f"p2p-directory: {exc}", file=sys.stderr, flush=True)
            sys.exit(1)

    # -- hooks ----------------------------------------------------------------------------

    def post_worker_init(self, worker):
        """In a worker whose app is loaded: the first one prints the ready line."""
        try:
            os.close(os.open(os.path.join(self.runtime, READY_MARK), os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return
        _say_ready(self.host, self.port, tls=bool(self.config.certfile))

    def worker_exit(self, server, worker):
        """In a worker that stops: write its pending lease renewals and close its database pool."""
        app = getattr(worker, "wsgi", None)
        context = getattr(app, "extensions", {}).get("p2p")
        if context is not None:
            context.close()
        if worker.booted:  # a worker that failed to boot exits as gunicorn says (the arbiter reads it)
            exit_now(_exit_code(sys.exc_info()[1]))

    def child_exit(self, server, worker):
        """In the arbiter, when a worker has exited: forget its live gauges."""
        if self.metrics_dir:
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(worker.pid, self.metrics_dir)


# -- development: werkzeug -------------------------------------------------------------------


class _Stop(BaseException):
    """Raised by the signal handler to leave serve_forever.

    A BaseException: socketserver catches Exception around each request, and would swallow it.
    """


def serve_dev(config: DirectoryConfig, sock: socket.socket) -> int:
    """Serve with werkzeug's threaded development server (one process) until SIGTERM or SIGINT."""
    from werkzeug.serving import make_server

    os.environ.pop(MULTIPROC_ENV, None)  # one process: its metrics are its own
    os.environ.pop(MULTIPROC_ENV.lower(), None)
    from . import create_app

    try:
        app = create_app(config)
    except BaseException:
        sock.close()
        raise
    context = app.extensions["p2p"].start()
    port = sock.getsockname()[1]
    try:
        check_tls(config)
    except BaseException:
        sock.close()
        context.close()
        raise
    tls = (config.certfile, config.keyfile) if config.certfile else None
    server = make_server(config.host, port, app, threaded=True, fd=sock.fileno(), ssl_context=tls)

    def _on_signal(signum, _frame):
        # Ignore repeats so a second signal cannot interrupt the cleanup below.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        raise _Stop(signum)

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    try:
        # Inside the try: a signal may arrive as soon as the ready line is out.
        log.warning("serving with werkzeug's development server (--dev): not for production")
        _say_ready(config.host, port, tls=tls is not None)
        server.serve_forever()
    except _Stop:
        log.info("stopping")
    finally:
        server.server_close()
        sock.close()
        context.close()
    return 0
