"""Shared helpers of the benchmarks: processes stopped by their own PID, free ports, statistics, machine facts."""
from __future__ import annotations

import collections
import json
import logging
import os
import platform
import re
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = Path(__file__).resolve().parent
LUA_DIR = BENCH_DIR / "lua"
MiB = 1024 * 1024
GiB = 1024 * MiB


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on host that was free a moment ago (bind to port 0, read it, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def wait_port(host: str, port: int, timeout: float = 20.0) -> None:
    """Wait until something accepts TCP connections on host:port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout}s")


def http_json(method: str, url: str, body=None, token: str | None = None, timeout: float = 10.0, ca=None):
    """One HTTP request with a JSON body (HTTPS verified against ca, when given); answers (status, JSON or None)."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        context = ssl.create_default_context(cafile=str(ca)) if ca else None
        with urllib.request.urlopen(req, timeout=timeout, context=context) as resp:
            raw = resp.read()
            status = resp.status
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        status = exc.code
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, None


def wait_http(url: str, timeout: float = 30.0, proc: "Proc | None" = None) -> None:
    """Wait until GET url answers 200; fail early when proc has exited."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{proc.name} exited with {proc.poll()} before {url} answered:\n{proc.tail()}")
        try:
            status, _ = http_json("GET", url, timeout=2.0)
            if status == 200:
                return
            last = status
        except OSError as exc:
            last = exc
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer 200 within {timeout}s (last: {last})")


class Proc:
    """A child process in its own session whose output is kept (last lines) and scanned for a ready line.

    stop() ends it by its own PID (SIGTERM, then SIGKILL of its own process group if it lingers).
    """

    def __init__(self, args, name: str, env: dict | None = None, cwd=None,
                 ready: str | None = None, timeout: float = 30.0, keep_lines: int = 400):
        self.name = name
        self.args = [str(a) for a in args]
        self.lines: collections.deque[str] = collections.deque(maxlen=keep_lines)
        self.match: re.Match | None = None
        self._pattern = re.compile(ready) if ready else None
        self._ready = threading.Event()
        full_env = dict(os.environ)
        full_env["PYTHONUNBUFFERED"] = "1"
        full_env.update(env or {})
        log.debug("start %s: %s", name, " ".join(self.args))
        self.proc = subprocess.Popen(
            self.args, cwd=cwd or ROOT, env=full_env, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True, name=f"read-{name}")
        self._reader.start()
        if self._pattern is not None:
            if not self._ready.wait(timeout) or self.match is None:
                output = self.tail()
                self.stop()
                raise RuntimeError(f"{name} was not ready within {timeout}s:\n{output}")

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line)
            if self._pattern is not None and self.match is None:
                found = self._pattern.search(line)
                if found:
                    self.match = found
                    self._ready.set()
        self._ready.set()

    @property
    def pid(self) -> int:
        """The child's process id."""
        return self.proc.pid

    def poll(self):
        """The exit code, or None while it runs."""
        return self.proc.poll()

    def tail(self, n: int = 40) -> str:
        """The last n lines the process printed."""
        return "".join(list(self.lines)[-n:])

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM this child by PID; SIGKILL its own process group if it does not exit in time."""
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                log.warning("%s (pid %d) ignored SIGTERM; killing its process group", self.name, self.proc.pid)
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(timeout=10)
        else:
            # the leader is gone; make sure no child of its own session (e.g. a worker) lingers
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        self._reader.join(timeout=5)
        return self.proc.returncode


def run_timed(args, env: dict | None = None, timeout: float = 600.0, stdout=None, cwd=None):
    """Run a command to completion; answer (seconds, exit code, peak RSS in bytes of the child, output).

    The peak is the child's own VmHWM, polled every 10 ms from /proc while it runs. (wait4's
    ru_maxrss is no good here: Linux carries the RSS of the forking parent over into the child's
    figure at exec, so a big benchmark process would inflate every child's peak.)
    """
    full_env = dict(os.environ)
    full_env.update(env or {})
    start = time.perf_counter()
    proc = subprocess.Popen([str(a) for a in args], env=full_env, cwd=cwd or ROOT,
                            stdin=subprocess.DEVNULL, stdout=stdout or subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)
    out_chunks: list[bytes] = []
    err_chunks: list[bytes] = []
    readers = []
    for stream, sink in ((proc.stdout, out_chunks), (proc.stderr, err_chunks)):
        if stream is not None:
            t = threading.Thread(target=lambda s=stream, k=sink: k.append(s.read()), daemon=True)
            t.start()
            readers.append(t)
    peak = [0]
    done = threading.Event()

    def poll_hwm():
        while not done.is_set():
            kib = proc_status_kib(proc.pid, "VmHWM")
            if kib:
                peak[0] = max(peak[0], kib)
            done.wait(0.01)

    poller = threading.Thread(target=poll_hwm, daemon=True)
    poller.start()
    timer = threading.Timer(timeout, lambda: _kill_quietly(proc.pid))
    timer.start()
    try:
        # wait without reaping, so /proc/PID stays readable until the very end
        os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)
        kib = proc_status_kib(proc.pid, "VmHWM")  # gone once the process is a zombie, usually
        if kib:
            peak[0] = max(peak[0], kib)
        done.set()
        poller.join()
        proc.wait()
    finally:
        done.set()
        timer.cancel()
    elapsed = time.perf_counter() - start
    for t in readers:
        t.join(timeout=10)
    output = (b"".join(out_chunks) + b"".join(err_chunks)).decode(errors="replace")
    return elapsed, proc.returncode, peak[0] * 1024, output


def _kill_quietly(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def proc_status_kib(pid: int, field: str) -> int | None:
    """A KiB figure (VmHWM, VmRSS, ...) from /proc/PID/status, or None when the process is gone."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


def summary(values) -> dict:
    """Median, min and max of a list of numbers (and the values themselves)."""
    vals = [float(v) for v in values if v is not None]
    if not vals:
        return {"median": None, "min": None, "max": None, "n": 0, "values": []}
    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals),
            "n": len(vals), "values": vals}


def _cmd_version(args, pattern=r"[\d.]+\S*") -> str | None:
    exe = shutil.which(args[0]) or (f"/usr/sbin/{args[0]}" if os.path.exists(f"/usr/sbin/{args[0]}") else None)
    if not exe:
        return None
    try:
        res = subprocess.run([exe, *args[1:]], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = (res.stdout + res.stderr).strip().splitlines()
    if not text:
        return None
    words = text[0].replace("nginx version: ", "").split()
    return " ".join(words[:3] if words and words[0] in ("psql", "wrk") else words[:2])


def _pkg_version(name: str) -> str | None:
    from importlib import metadata
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def machine_info() -> dict:
    """CPU model, cores, memory, kernel, Python and the versions of the libraries and tools measured."""
    cpu = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kib = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    except OSError:
        pass
    import sqlite3
    libs = {name: _pkg_version(name) for name in (
        "Flask", "Werkzeug", "SQLAlchemy", "psycopg", "gunicorn", "grpcio", "protobuf",
        "matplotlib", "psutil", "py-spy")}
    libs["sqlite (library)"] = sqlite3.sqlite_version
    tools = {
        "wrk": _cmd_version(["wrk", "--version"]),
        "nginx": _cmd_version(["nginx", "-v"]),
        "curl": _cmd_version(["curl", "--version"]),
        "postgresql": _cmd_version(["psql", "--version"]),
    }
    return {
        "cpu_model": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kib / 1024 / 1024, 1) if mem_kib else None,
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        "libraries": libs,
        "tools": tools,
        "loadavg_at_start": os.getloadavg(),
    }


def disk_free_bytes(path) -> int:
    """Free bytes on the file system that holds path."""
    return shutil.disk_usage(path).free


def run_alone(argv, description: str, run, config_for_mode, tmp_prefix: str) -> int:
    """The `python -m bench.<module> [--quick]` entry point: run one benchmark in a temp dir, print its ratios."""
    import argparse
    import tempfile

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    with tempfile.TemporaryDirectory(prefix=tmp_prefix) as tmp:
        res = run(config_for_mode(args.quick), Path(tmp))
    print(json.dumps(res["ratios"], indent=2))
    return 0
