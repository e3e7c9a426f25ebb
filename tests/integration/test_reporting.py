"""`p2p get --config F.ini` reports an unreachable holder only through F's running session.

Real processes: a directory, a live holder, and a second holder SIGKILLed so that the
directory still lists it as live (its lease has not lapsed), which makes the download meet
an unreachable holder and call the reporter. A client command never logs in as F: whatever
state F is in, unless it is running, `GET /peers` is the same after the download as before.
"""
import os

import pytest
import requests

from tests.integration.helpers import holders_of, p2p, sha, wait_until, write_config

pytestmark = pytest.mark.integration

DATA = os.urandom(300_000)
LEASE = 30  # long enough that the SIGKILLed holder stays listed for the whole test


def listed(directory):
    """{peer_id: grpc_address} of the peers GET /peers lists as live."""
    rows = requests.get(f"{directory.url}/api/v1/peers", timeout=5).json()
    return {p["peer_id"]: p["grpc_address"] for p in rows}


@pytest.fixture
def network(directory_factory, peer_factory):
    """(directory, live holder): data.bin is held by 'crashed' (SIGKILLed, still listed) and 'live'."""
    directory = directory_factory(lease=LEASE)
    # several pieces, so the download gives the crashed holder some however fast the live one is
    pieces = {"P2P_PIECE_SIZE": "64KiB"}
    crashed = peer_factory(directory.url, files={"data.bin": DATA}, peer_id="crashed", env=pieces)
    live = peer_factory(directory.url, files={"data.bin": DATA}, peer_id="live", env=pieces)
    # holders are listed by peer_id: the download tries the crashed one first
    wait_until(lambda: holders_of(directory.url, sha(DATA)) == ["crashed", "live"], timeout=15)
    crashed.kill()
    return directory, live


def test_get_with_the_config_of_a_peer_that_is_not_running_never_makes_it_live(network, peer_factory, tmp_path):
    directory, _ = network
    never = tmp_path / "never"
    never.mkdir()
    (tmp_path / "never.ini").write_text(f"[peer]\npeer_id = never\nsecret = never-secret\nfolder = {never}\n"
                                        f"[directory]\nurl = {directory.url}\n")
    stopped = peer_factory(directory.url, peer_id="stopped")
    stopped.wait_for_output("logged in to", timeout=15)
    write_config(tmp_path / "stopped.ini", stopped, directory.url)
    assert stopped.stop() == 0  # logged out; its session went with it
    killed = peer_factory(directory.url, peer_id="killed")
    killed.wait_for_output("logged in to", timeout=15)
    write_config(tmp_path / "killed.ini", killed, directory.url)
    killed.kill()  # its session file stays behind, its token still valid for a lease
    assert os.path.exists(os.path.join(killed.folder, ".p2p", "session.json"))

    before = listed(directory)
    assert "never" not in before and "stopped" not in before and "crashed" in before
    for f in ("never", "stopped", "killed"):
        out = tmp_path / f"{f}.bin"
        # one holder at a time, in the directory's order: the crashed one is surely tried first (with
        # more, the live one can finish the single piece before the crashed one is dialed)
        r = p2p("-v", "get", sha(DATA), "--out", out, "--config", tmp_path / f"{f}.ini", "--parallel", "1",
                cwd=tmp_path)
        assert r.returncode == 0, (f, r.stderr)
        assert out.read_bytes() == DATA, f
        warnings = [line for line in r.stderr.splitlines() if "cannot report unreachable holders" in line]
        assert len(warnings) == 1 and f"peer {f} is not running" in warnings[0], (f, r.stderr)
        assert "holder crashed" in r.stderr and "reported crashed" not in r.stderr, (f, r.stderr)
        assert listed(directory) == before, f  # F absent (or as it was), nobody new, crashed not reported


def test_get_with_the_config_of_a_running_peer_reports_through_its_session(network, peer_factory, tmp_path):
    directory, live = network
    f = peer_factory(directory.url, peer_id="f")
    f.wait_for_output("logged in to", timeout=15)
    config = write_config(tmp_path / "f.ini", f, directory.url)
    before = listed(directory)
    assert before == {"crashed": before["crashed"], "f": f.address, "live": live.address}

    out = tmp_path / "got.bin"
    r = p2p("-v", "get", sha(DATA), "--out", out, "--config", config, "--parallel", "1", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == DATA
    assert "reported crashed unreachable; directory says removed" in r.stderr, r.stderr
    assert "cannot report" not in r.stderr
    # the directory probed the crashed holder and dropped it; f is as it was, nobody is new
    assert listed(directory) == {"f": f.address, "live": live.address}
    assert holders_of(directory.url, sha(DATA)) == ["live"]
