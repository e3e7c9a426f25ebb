"""Start our real servers as subprocesses on loopback and stop them by their own PID."""
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


class ServerProcess:
    """A child process that prints a ready line; its output is kept for assertions."""

    def __init__(self, args, ready_pattern, env=None, cwd=None, timeout=20.0, own_group=False):
        self.args = [str(a) for a in args]
        # A wrapper such as make does not pass signals on: give it a process group of its own
        # and signal that group, which holds only what this child started.
        self.own_group = own_group
        self.lines = []
        self._ready = threading.Event()
        self._pattern = re.compile(ready_pattern)
        self.match = None
        full_env = dict(os.environ)
        full_env["PYTHONUNBUFFERED"] = "1"
        full_env.update(env or {})
        self.proc = subprocess.Popen(
            self.args,
            cwd=cwd or ROOT,
            env=full_env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            start_new_session=own_group,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        if not self._ready.wait(timeout):
            self.stop()
            raise RuntimeError(
                f"{' '.join(self.args)} was not ready within {timeout}s; output:\n" + self.output
            )

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line)
            if self.match is None:
                found = self._pattern.search(line)
                if found:
                    self.match = found
                    self._ready.set()
        self._ready.set()  # the process ended: wake the waiter, which then sees no match

    @property
    def pid(self):
        """The child's process id."""
        return self.proc.pid

    @property
    def output(self):
        """Everything the process printed so far."""
        return "".join(self.lines)

    def wait_for_output(self, pattern, timeout=10.0):
        """Wait until a line matching pattern has been printed; return the match."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                found = regex.search(line)
                if found:
                    return found
            time.sleep(0.05)
        raise AssertionError(f"no line matching {pattern!r} within {timeout}s; output:\n{self.output}")

    def signal(self, signum):
        """Send a signal to this child only."""
        if self.proc.poll() is None:
            if self.own_group:
                os.killpg(self.proc.pid, signum)
            else:
                os.kill(self.proc.pid, signum)

    def kill(self):
        """SIGKILL the child, as a crash would."""
        self.signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self, timeout=10.0):
        """SIGTERM the child, then SIGKILL it if it does not exit in time; return its exit code."""
        if self.proc.poll() is None:
            self.signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self._reader.join(timeout=5)
        return self.proc.returncode


def python_module(module, *args):
    """The argv that runs `python -m module args...` with this interpreter."""
    return [sys.executable, "-m", module, *args]
