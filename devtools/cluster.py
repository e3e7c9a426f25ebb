"""A directory cluster on this machine: PostgreSQL, several gunicorn directories, HAProxy in front.

``scripts/cluster.py`` (``make cluster``) runs one in the foreground; the integration test and
the benchmark start one the same way. Everything listens on 127.0.0.1; every process started
here is stopped by its own PID.

The layout is the production one (README, "Several directories behind a load balancer"): each
directory process is ``gunicorn 'directory_api.wsgi:app'`` with its settings in ``DIRECTORY_*``
variables and a loopback port of its own, all on one PostgreSQL database; HAProxy spreads
requests over them, takes a process out after two failed health checks of ``/api/v1/health``,
and sends a request that found its process dead (refused, or closed without an answer) to
another one (``retries``, ``option redispatch``, ``retry-on``).
"""
from __future__ import annotations

import collections
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
DATABASE_NAME = "p2p_cluster"
HAPROXY_CANDIDATES = ("/usr/sbin/haproxy", "/usr/local/sbin/haproxy")


class ClusterError(Exception):
    """The cluster could not be started; the message says what to do."""


def free_port() -> int:
    """A loopback TCP port that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def haproxy_path() -> str | None:
    """The haproxy executable, or None when it is not installed."""
    found = shutil.which("haproxy")
    if found:
        return found
    return next((p for p in HAPROXY_CANDIDATES if os.access(p, os.X_OK)), None)


def install_haproxy(say=print) -> str:
    """haproxy's path, installing the Debian package with apt-get first when it is missing."""
    found = haproxy_path()
    if found:
        return found
    if shutil.which("apt-get") is None:
        raise ClusterError("haproxy is not installed and there is no apt-get here: install HAProxy 2.x")
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    say("haproxy is missing: installing the Debian package 'haproxy' with apt-get")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for args in (["apt-get", "install", "-y", "-qq", "--no-install-recommends", "haproxy"],
                 ["apt-get", "update", "-qq"],
                 ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "haproxy"]):
        done = subprocess.run(sudo + args, env=env, capture_output=True, text=True, timeout=600)
        if done.returncode == 0 and args[1] == "install" and haproxy_path():
            return haproxy_path()
    raise ClusterError(f"could not install haproxy with apt-get: {done.stderr.strip().splitlines()[-1:]}")


def haproxy_config(port: int, backends: list[tuple[str, int]], check_ms: int = 500) -> str:
    """An HAProxy configuration: one frontend on 127.0.0.1:port, the directories behind it."""
    servers = "\n".join(f"    server {name} 127.0.0.1:{backend_port} check" for name, backend_port in backends)
    return f"""# Written by devtools/cluster.py; haproxy -db -f THIS_FILE
global
    maxconn 4096

defaults
    mode http
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    timeout http-request 10s
    # A request whose directory died is sent to another one: after a refused connection
    # (retries, redispatch) and after a connection closed without an answer (retry-on). Every
    # call of the directory's API may be repeated: a heartbeat, a publish or a search repeated
    # changes nothing more, a login repeated only issues a newer token.
    retries 3
    option redispatch 1
    retry-on conn-failure empty-response response-timeout
    option http-buffer-request
    # The client's address for the directories' failed-login limit (they run with DIRECTORY_PROXY_HOPS=1).
    option forwardfor

frontend directory
    bind 127.0.0.1:{port}
    default_backend directories

backend directories
    balance roundrobin
    option httpchk GET /api/v1/health
    http-check expect status 200
    default-server inter {check_ms}ms fastinter {check_ms}ms downinter {check_ms}ms fall 2 rise 2
{servers}
"""


class Child:
    """A child process in its own session, its output kept (last lines); stopped by its PID."""

    def __init__(self, args: list[str], name: str, env: dict | None = None, keep: int = 300):
        self.name, self.args = name, [str(a) for a in args]
        self.lines: collections.deque[str] = collections.deque(maxlen=keep)
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.proc = subprocess.Popen(self.args, cwd=ROOT, env=full_env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
                                     start_new_session=True)
        self._reader = threading.Thread(target=self._read, daemon=True, name=f"read-{name}")
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line)

    @property
    def pid(self) -> int:
        """The child's process id."""
        return self.proc.pid

    def running(self) -> bool:
        """True while it has not exited."""
        return self.proc.poll() is None

    def tail(self, n: int = 30) -> str:
        """Its last n lines of output."""
        return "".join(list(self.lines)[-n:])

    def wait_for(self, pattern: str, timeout: float) -> re.Match:
        """Wait until a line of its output matches pattern."""
        regex, deadline = re.compile(pattern), time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                found = regex.search(line)
                if found:
                    return found
            if not self.running():
                break
            time.sleep(0.05)
        raise ClusterError(f"{self.name} did not print {pattern!r} within {timeout:.0f}s:\n{self.tail()}")

    def kill(self) -> None:
        """SIGKILL it and what it started (its own process group: a gunicorn master and its
        workers), as a crash of the machine's process would."""
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.proc.wait(timeout=10)

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM it by PID; SIGKILL its own process group if it lingers."""
        if self.running():
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                log.warning("%s (pid %d) ignored SIGTERM: killing its process group", self.name, self.pid)
                os.killpg(self.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        else:
            # its workers live in its session: none may outlive it
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        self._reader.join(timeout=5)
        return self.proc.returncode


def ensure_database(name: str = DATABASE_NAME, admin_url: str = ADMIN_URL) -> str:
    """Create database name on the server of admin_url unless it exists; returns its URL."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import OperationalError

    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", name):
        raise ClusterError(f"database name {name!r}: use lower-case letters, digits and _")
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as conn:
            if not conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).first():
                conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except OperationalError as exc:
        raise ClusterError(f"no PostgreSQL server answers at {make_url(admin_url).render_as_string()}: "
                           f"{str(exc.orig).strip().splitlines()[0]}") from None
    finally:
        engine.dispose()
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def drop_database(name: str, admin_url: str = ADMIN_URL) -> None:
    """Drop database name (its connections are ended first)."""
    from sqlalchemy import create_engine, text

    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"),
                         {"n": name})
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}"')
    finally:
        engine.dispose()


@dataclass
class ClusterConfig:
    """What to start: how many directories, their gunicorn settings, the database, the ports."""

    directories: int = 2
    workers: int = 1
    threads: int = 8
    port: int = 0  # the load balancer's; 0 picks a free one
    database_url: str | None = None  # None: a database of its own (database_name) on the local server
    database_name: str = DATABASE_NAME
    admin_url: str = ADMIN_URL
    env: dict = field(default_factory=dict)  # more DIRECTORY_* settings for every directory
    check_ms: int = 500
    workdir: Path | None = None  # where haproxy.cfg goes (default: a temporary folder)


@dataclass
class Directory:
    """One directory process of the cluster."""

    name: str
    port: int
    child: Child

    @property
    def url(self) -> str:
        """Its own base URL (bypassing the load balancer)."""
        return f"http://127.0.0.1:{self.port}"


class Cluster:
    """Start with start(); url is the load balancer's; stop() ends every process started, by PID."""

    def __init__(self, config: ClusterConfig, say=print):
        self.config, self.say = config, say
        self.directories: list[Directory] = []
        self.haproxy: Child | None = None
        self.database_url = config.database_url
        self.port = config.port or free_port()
        self._tmp = None

    @property
    def url(self) -> str:
        """The load balancer's base URL: point peers and clients here."""
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> "Cluster":
        """Database, schema, directories, HAProxy; returns when the load balancer answers."""
        haproxy = install_haproxy(self.say)
        try:
            if self.database_url is None:
                self.database_url = ensure_database(self.config.database_name, self.config.admin_url)
            self._init_schema()
            for i in range(self.config.directories):
                self.directories.append(self._start_directory(f"directory-{i + 1}"))
            for d in self.directories:
                _wait_http(d.url + "/api/v1/health", timeout, d.child)
            self._start_haproxy(haproxy)
            _wait_http(self.url + "/api/v1/health", timeout, self.haproxy)
        except BaseException:
            self.stop()
            raise
        return self

    def _init_schema(self) -> None:
        # Once, before the directories start: they would otherwise all create it at once.
        done = subprocess.run([sys.executable, "-m", "directory_api", "init-db", "--database", self.database_url],
                              cwd=ROOT, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise ClusterError(f"init-db failed: {(done.stderr or done.stdout).strip()}")

    def _start_directory(self, name: str) -> Directory:
        port = free_port()
        cfg = self.config
        env = {"DIRECTORY_DATABASE_URL": self.database_url, "DIRECTORY_PROXY_HOPS": "1", **cfg.env}
        args = [sys.executable, "-m", "gunicorn", "-k", "gthread", "-w", str(cfg.workers), "--threads",
                str(cfg.threads), "-b", f"127.0.0.1:{port}", "--no-control-socket", "--graceful-timeout", "5",
                "--log-level", "warning", "directory_api.wsgi:app"]
        return Directory(name, port, Child(args, name, env=env))

    def _start_haproxy(self, haproxy: str) -> None:
        import tempfile

        if self.config.workdir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="p2p-cluster-")
            workdir = Path(self._tmp.name)
        else:
            workdir = Path(self.config.workdir)
            workdir.mkdir(parents=True, exist_ok=True)
        conf = workdir / "haproxy.cfg"
        conf.write_text(haproxy_config(self.port, [(d.name, d.port) for d in self.directories], self.config.check_ms))
        self.haproxy = Child([haproxy, "-db", "-f", conf], "haproxy")

    def pids(self) -> dict[str, int]:
        """{name: pid} of every process started (gunicorn masters and haproxy)."""
        found = {d.name: d.child.pid for d in self.directories}
        if self.haproxy is not None:
            found["haproxy"] = self.haproxy.pid
        return found

    def stop(self) -> None:
        """Stop HAProxy and every directory at once, each by its own PID (one by one, a busy
        machine made the last wait for the others' whole grace periods)."""
        children = ([self.haproxy] if self.haproxy is not None else []) + [d.child for d in self.directories]
        stoppers = [threading.Thread(target=child.stop, name=f"stop-{child.name}") for child in children]
        for t in stoppers:
            t.start()
        for t in stoppers:
            t.join()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


def _wait_http(url: str, timeout: float, child: Child | None = None) -> None:
    deadline, last = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        if child is not None and not child.running():
            raise ClusterError(f"{child.name} exited with {child.proc.returncode} before {url} answered:\n"
                               f"{child.tail()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                if answer.status == 200:
                    return
        except (OSError, urllib.error.HTTPError) as exc:
            last = exc
        time.sleep(0.1)
    raise ClusterError(f"{url} did not answer within {timeout:.0f}s (last: {last})")
