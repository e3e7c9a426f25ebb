"""A serving peer's directory session as others on this machine may use it, and its address.

`p2p serve` keeps its session in FOLDER/.p2p/session.json while it runs: written at each
login, forgotten when it stops or the directory refuses it. A client command given the same
config reads it to report unreachable holders as that peer, with that peer's token, instead
of logging in itself (a login would make the peer look live at an address where nothing may
listen). The file holds a bearer token, so it is private (mode 0600) and replaced atomically:
a reader sees the old session or the new one, never half of one. It also names the process
that wrote it, so a session left behind by a peer that crashed is known to be stale.
"""
import json
import logging
import os
import socket
import tempfile
from dataclasses import dataclass

from peer_node.folder import WORK_DIR

log = logging.getLogger(__name__)

SESSION_FILE = "session.json"


@dataclass(frozen=True)
class Session:
    """A running peer's login at a directory."""

    url: str          # the directory that issued the token
    token: str
    peer_id: str
    pid: int          # the `p2p serve` process that holds it
    started: str = None  # that process's start time, so a reused pid is not taken for it


def advertised_address(host, port, advertise=None):
    """The grpc_address others should dial: advertise if set, else host:port (wildcards → hostname)."""
    if advertise:
        return advertise
    if host in ("0.0.0.0", "::", "[::]", ""):
        host = socket.gethostname()
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def session_path(folder):
    """Where the peer sharing folder keeps its session."""
    return os.path.join(folder, WORK_DIR, SESSION_FILE)


def write(folder, url, token, peer_id):
    """Record this process's session for folder; True when written (a failure is logged, not raised)."""
    path = session_path(folder)
    pid = os.getpid()
    record = {"url": url, "token": token, "peer_id": peer_id, "pid": pid, "started": _started(pid)}
    try:
        # mkstemp creates the file 0600 in the same directory, so the rename below is atomic
        fd, tmp = tempfile.mkstemp(prefix=".session-", suffix=".tmp", dir=os.path.dirname(path))
    except OSError as exc:
        log.warning("cannot record the session in %s: %s; `p2p get --config` will not report "
                    "unreachable holders", path, exc.strerror or exc)
        return False
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(record, f)
        os.replace(tmp, path)
    except OSError as exc:
        _unlink(tmp)
        log.warning("cannot record the session in %s: %s; `p2p get --config` will not report "
                    "unreachable holders", path, exc.strerror or exc)
        return False
    return True


def read(folder):
    """The live session of the peer serving folder, or None (no file, unreadable, or its writer has exited)."""
    path = session_path(folder)
    try:
        with open(path, encoding="utf-8") as f:
            record = json.load(f)
        session = Session(url=record["url"], token=record["token"], peer_id=record["peer_id"],
                          pid=record["pid"], started=record.get("started"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.debug("ignoring unreadable session file %s: %s", path, exc)
        return None
    if not (isinstance(session.url, str) and isinstance(session.token, str) and session.token
            and isinstance(session.peer_id, str) and isinstance(session.pid, int)
            and not isinstance(session.pid, bool) and session.pid > 0):
        log.debug("ignoring malformed session file %s", path)
        return None
    if not _running(session.pid, session.started):
        log.debug("ignoring stale session file %s: process %d has exited", path, session.pid)
        return None
    return session


def forget(folder):
    """Remove folder's session file if this process wrote it (another peer's session stays)."""
    path = session_path(folder)
    try:
        with open(path, encoding="utf-8") as f:
            pid = json.load(f).get("pid")
    except FileNotFoundError:
        return
    except (OSError, ValueError, AttributeError):
        pid = os.getpid()  # unreadable: nobody can use it, so it goes
    if pid == os.getpid():
        _unlink(path)


def _unlink(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        log.warning("cannot remove %s: %s", path, exc.strerror or exc)


def _stat_fields(pid):
    """Fields 3.. of /proc/PID/stat (state first), or None where there is no procfs."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            return f.read().rpartition(")")[2].split()  # the command name may hold spaces
    except OSError:
        return None


def _started(pid):
    """The process's start time in clock ticks since boot, as text; None if unknown."""
    fields = _stat_fields(pid)
    return fields[19] if fields and len(fields) > 19 else None


def _running(pid, started):
    """True if process pid exists, is not a zombie, and (when known) started at `started`."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, under another user
    except OverflowError:
        return False
    fields = _stat_fields(pid)
    if fields is None:
        return True  # no procfs: the pid check is all there is
    if fields[0] in ("Z", "X"):
        return False  # exited, not yet reaped by its parent
    return started is None or (len(fields) > 19 and fields[19] == started)
