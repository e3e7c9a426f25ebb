"""peer_node.session: the session file (private, atomic, stale when its writer is gone) and the advertised address."""
import json
import os
import stat
import subprocess
import sys

import pytest

from peer_node import session
from peer_node.session import Session, advertised_address, session_path

URL = "http://127.0.0.1:5000"


@pytest.fixture
def folder(tmp_path):
    """A shared folder with its work area, as SharedFolder leaves it."""
    (tmp_path / "shared" / ".p2p").mkdir(parents=True)
    return str(tmp_path / "shared")


def exited_pid():
    """The pid of a process that has exited and been reaped."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def rewrite(folder, **changes):
    """Change fields of the session file as another writer would have left them."""
    path = session_path(folder)
    with open(path, encoding="utf-8") as f:
        record = json.load(f)
    record.update(changes)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(record, f)


def test_write_then_read_gives_this_process_session(folder):
    assert session.write(folder, URL, "tok-1", "alice")
    found = session.read(folder)
    assert isinstance(found, Session)
    assert (found.url, found.token, found.peer_id, found.pid) == (URL, "tok-1", "alice", os.getpid())


def test_the_file_is_private_and_no_temporary_file_is_left(folder):
    session.write(folder, URL, "tok-1", "alice")
    mode = stat.S_IMODE(os.stat(session_path(folder)).st_mode)
    assert mode == 0o600, oct(mode)
    assert os.listdir(os.path.join(folder, ".p2p")) == ["session.json"]


def test_a_new_login_replaces_the_session_in_place(folder):
    session.write(folder, URL, "tok-1", "alice")
    before = os.stat(session_path(folder)).st_ino
    session.write(folder, URL, "tok-2", "alice")
    assert session.read(folder).token == "tok-2"
    # a new inode: the file was renamed over the old one, never rewritten where a reader reads
    assert os.stat(session_path(folder)).st_ino != before
    assert os.listdir(os.path.join(folder, ".p2p")) == ["session.json"]


def test_no_file_is_no_session(folder):
    assert session.read(folder) is None


def test_session_of_an_exited_process_is_stale(folder):
    session.write(folder, URL, "tok-1", "alice")
    rewrite(folder, pid=exited_pid())
    assert session.read(folder) is None


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="needs procfs")
def test_a_reused_pid_is_not_taken_for_the_writer(folder):
    session.write(folder, URL, "tok-1", "alice")
    rewrite(folder, started="1")  # same pid, but a process that started at another time
    assert session.read(folder) is None


@pytest.mark.parametrize("content", [
    "",
    "{not json",
    "[]",
    '"a string"',
    json.dumps({"url": URL, "token": "t", "peer_id": "alice"}),                  # no pid
    json.dumps({"url": URL, "peer_id": "alice", "pid": os.getpid()}),            # no token
    json.dumps({"url": URL, "token": "", "peer_id": "alice", "pid": os.getpid()}),
    json.dumps({"url": URL, "token": 7, "peer_id": "alice", "pid": os.getpid()}),
    json.dumps({"url": None, "token": "t", "peer_id": "alice", "pid": os.getpid()}),
    json.dumps({"url": URL, "token": "t", "peer_id": "alice", "pid": "1"}),
    json.dumps({"url": URL, "token": "t", "peer_id": "alice", "pid": True}),
    json.dumps({"url": URL, "token": "t", "peer_id": "alice", "pid": -1}),
    json.dumps({"url": URL, "token": "t", "peer_id": "alice", "pid": 2**80}),
    b"\xff\xfe garbage".decode("latin-1"),
], ids=lambda c: c[:40] or "empty")
def test_unreadable_or_malformed_file_is_no_session(folder, content):
    with open(session_path(folder), "w", encoding="latin-1") as f:
        f.write(content)
    assert session.read(folder) is None


def test_a_directory_in_place_of_the_file_is_no_session(folder):
    os.mkdir(session_path(folder))
    assert session.read(folder) is None


def test_forget_removes_only_what_this_process_wrote(folder):
    session.write(folder, URL, "tok-1", "alice")
    rewrite(folder, pid=exited_pid())  # another peer process wrote it
    session.forget(folder)
    assert os.path.exists(session_path(folder))
    session.write(folder, URL, "tok-2", "alice")
    session.forget(folder)
    assert not os.path.exists(session_path(folder))
    session.forget(folder)  # nothing left to forget: no error


def test_forget_removes_an_unreadable_file(folder):
    with open(session_path(folder), "w") as f:
        f.write("{half a rec")
    session.forget(folder)
    assert not os.path.exists(session_path(folder))


def test_write_failure_is_logged_not_raised(tmp_path, caplog):
    missing = str(tmp_path / "no-such-folder")
    assert session.write(missing, URL, "tok", "alice") is False
    assert "cannot record the session" in caplog.text
    assert not os.path.exists(missing)


@pytest.mark.parametrize("host, port, advertise, expected", [
    ("127.0.0.1", 5000, None, "127.0.0.1:5000"),
    ("127.0.0.1", 5000, "peer.example:6000", "peer.example:6000"),
    ("::1", 5000, None, "[::1]:5000"),
    ("localhost", 1, None, "localhost:1"),
])
def test_advertised_address(host, port, advertise, expected):
    assert advertised_address(host, port, advertise) == expected


@pytest.mark.parametrize("wildcard", ["0.0.0.0", "::", "[::]", ""])
def test_a_wildcard_host_is_advertised_by_hostname(wildcard):
    import socket

    assert advertised_address(wildcard, 7000) == f"{socket.gethostname()}:7000"
