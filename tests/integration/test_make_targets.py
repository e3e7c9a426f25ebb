"""`make directory` and `make peer CONFIG=...`, the README's way to run the pieces by hand."""
import shutil
import signal
import socket

import pytest
import requests

from tests.fixtures.directory import DIRECTORY_READY
from tests.fixtures.peer import PEER_READY
from tests.integration.helpers import wait_until
from tests.procs import ROOT, ServerProcess

pytestmark = pytest.mark.integration

# make itself dies of the SIGTERM its group receives; the programs under it exit cleanly (checked by their output)
MAKE_STOPPED = (0, -signal.SIGTERM)


@pytest.fixture
def make():
    """The make program; these targets are the README's instructions, so make must exist."""
    found = shutil.which("make")
    if found is None:
        pytest.fail("make is not installed; the README's commands need it")
    return found


def test_make_directory_and_make_peer(make, tmp_path):
    """Both targets run the real programs; the peer named by CONFIG logs in to the directory."""
    directory = ServerProcess(
        [make, "-s", "-C", ROOT, "directory"], DIRECTORY_READY, own_group=True,
        env={"DIRECTORY_PORT": "0", "DIRECTORY_DATABASE_URL": f"sqlite:///{tmp_path}/directory.db"},
    )
    try:
        url = directory.match.group(1)
        (tmp_path / "bob-shared").mkdir()
        (tmp_path / "bob-shared" / "notes.txt").write_text("shared by bob\n")
        config = tmp_path / "bob.ini"
        config.write_text(
            "[peer]\npeer_id = bob\nsecret = bob-secret\nhost = 127.0.0.1\nport = 0\n"
            f"folder = bob-shared\n[directory]\nurl = {url}\n"
        )
        peer = ServerProcess([make, "-s", "-C", ROOT, "peer", f"CONFIG={config}"], PEER_READY, own_group=True)
        try:
            peer.wait_for_output("logged in to", timeout=20)
            # the index is published after the login line: wait for it to be searchable
            found = wait_until(lambda: requests.get(f"{url}/api/v1/files", params={"q": "notes"},
                                                    timeout=5).json()["results"], timeout=20)
            assert [(r["name"], [h["peer_id"] for h in r["holders"]]) for r in found] == [("notes.txt", ["bob"])]
        finally:
            assert peer.stop() in MAKE_STOPPED, peer.output
        assert "logged out of" in peer.output
    finally:
        assert directory.stop() in MAKE_STOPPED, directory.output
    assert "stopping" in directory.output


def _free_ports(count):
    """Loopback ports nobody listened on a moment ago (bound together, then released)."""
    socks = [socket.socket() for _ in range(count)]
    try:
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in socks]
    finally:
        for sock in socks:
            sock.close()


def test_directory_port_moves_the_directory_and_the_peers_port_does_not(make, tmp_path):
    """A shell that exports P2P_PORT for a peer leaves `make directory` where DIRECTORY_PORT says."""
    mine, peers = _free_ports(2)
    directory = ServerProcess(
        [make, "-s", "-C", ROOT, "directory"], DIRECTORY_READY, own_group=True,
        env={"DIRECTORY_PORT": str(mine), "P2P_PORT": str(peers),
             "DIRECTORY_DATABASE_URL": f"sqlite:///{tmp_path}/directory.db"},
    )
    try:
        assert directory.match.group(1) == f"http://127.0.0.1:{mine}"
        assert requests.get(f"http://127.0.0.1:{mine}/api/v1/health", timeout=5).json() == {"status": "ok"}
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", peers)) != 0  # nobody listens on the peer's port
    finally:
        assert directory.stop() in MAKE_STOPPED, directory.output
    assert "P2P_PORT" not in directory.output  # DIRECTORY_PORT is set: nothing to warn about
