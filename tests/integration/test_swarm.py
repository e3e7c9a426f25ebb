"""`p2p get` as a process against real peers: a swarm with bad holders, and signals at random points."""
import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest

from peer_node.client import PeerClient
from peer_node.directory import DirectoryClient
from tests.fixtures.peer import flip_bytes
from tests.integration.helpers import clean_env, holders_of, sha, wait_until
from tests.procs import ROOT

pytestmark = pytest.mark.integration

PIECE = 256 * 1024
PIECES_ENV = {"P2P_PIECE_SIZE": "256KiB"}


def get_process(digest, out, directory_url, cwd, *extra):
    """Start `p2p get` in a subprocess (output captured as text)."""
    return subprocess.Popen(
        [sys.executable, "-m", "peer_node", "get", digest, "--out", str(out), "--directory", directory_url,
         "--json", "--peer-id", "reader", "--secret", "reader-secret", *extra],
        cwd=cwd, env=clean_env(PYTHONPATH=str(ROOT)), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_swarm_with_a_corrupt_a_frozen_and_a_busy_holder(directory_factory, peer_factory, tmp_path):
    directory = directory_factory(lease=60)  # the frozen peer stays listed while it is stopped
    data = os.urandom(16 * PIECE + 1234)
    files = {"film.bin": data}
    chunks = ("--chunk-size", "64KiB")  # smaller than a piece, as 1 MiB chunks are to 4 MiB pieces
    peer_factory(directory.url, files=files, peer_id="good", env=PIECES_ENV,
                 args=("--upload-rate-limit", "2MiB", *chunks))
    corrupt = peer_factory(directory.url, files=files, peer_id="corrupt", env=PIECES_ENV, args=chunks)
    frozen = peer_factory(directory.url, files=files, peer_id="frozen", env=PIECES_ENV, args=chunks)
    busy = peer_factory(directory.url, files=files, peer_id="busy", env={**PIECES_ENV, "P2P_MAX_TRANSFERS": "1"},
                        args=("--upload-rate-limit", "64KiB", "--chunk-size", "16KiB"))
    wait_until(lambda: holders_of(directory.url, sha(data)) == ["busy", "corrupt", "frozen", "good"], timeout=20)
    flip_bytes(os.path.join(corrupt.folder, "film.bin"), range(10, len(data), PIECE))  # its disk rots
    tickets = DirectoryClient(directory.url)
    tickets.login("slot-taker", "slot-taker-secret")  # a client session
    slot = PeerClient(busy.address, ticket=tickets.ticket(sha(data))[0])
    next(slot.open_download(sha256=sha(data)))  # the busy peer's only transfer slot stays taken
    frozen.signal(signal.SIGSTOP)
    try:
        client = get_process(sha(data), tmp_path / "film.bin", directory.url, tmp_path, "--stall-timeout", "1")
        stdout, stderr = client.communicate(timeout=60)
    finally:
        frozen.signal(signal.SIGCONT)
        slot.close()
        tickets.close()
    assert client.returncode == 0, stderr
    assert (tmp_path / "film.bin").read_bytes() == data
    result = json.loads(stdout)
    assert list(result["banned"]) == ["corrupt"] and "failed verification" in result["banned"]["corrupt"]
    assert stderr.count("banned from this download") == 1 and "holder corrupt" in stderr
    assert result["holders"]["frozen"]["state"] == "stalled" and result["stalled"] == 1, stderr
    assert result["busy"] >= 1 and result["holders"]["busy"]["verified"] == 0
    assert result["holders"]["good"]["verified"] == len(data)
    assert result["fetched"] - len(data) <= 2 * PIECE


def test_signals_at_random_points_stop_within_a_second_and_a_rerun_completes(directory_factory, peer_factory,
                                                                              tmp_path):
    directory = directory_factory(lease=60)
    data = os.urandom(64 * PIECE)
    peer_factory(directory.url, files={"big.bin": data}, peer_id="slow", env=PIECES_ENV,
                        args=("--upload-rate-limit", "1MiB", "--chunk-size", "64KiB"))
    wait_until(lambda: holders_of(directory.url, sha(data)) == ["slow"], timeout=20)
    out = tmp_path / "big.bin"
    part = tmp_path / ".p2p" / "partial" / f"{sha(data)}.part"
    rng = random.Random(5)
    fetched, interrupted = 0, 0
    for n in range(20):
        client = get_process(sha(data), out, directory.url, tmp_path)
        wait_until(lambda: client.poll() is not None or client.stderr.readline(), timeout=20)  # it started
        time.sleep(rng.uniform(0, 0.8))  # a random point of the download, not a synchronisation
        signum = signal.SIGKILL if n % 5 == 4 else (signal.SIGINT, signal.SIGTERM)[n % 2]
        sent = time.monotonic()
        client.send_signal(signum)
        stdout, stderr = client.communicate(timeout=10)
        took = time.monotonic() - sent
        if client.returncode == 0:
            break  # it finished before the signal arrived
        if signum == signal.SIGKILL:
            assert client.returncode == -signal.SIGKILL
        else:
            assert took < 1.0, f"run {n}: {took:.2f} s after {signum.name}"
            assert client.returncode == 128 + signum, stderr
            assert "Traceback" not in stderr and f"{signum.name}: interrupted" in stderr
            assert stderr.strip().splitlines()[-1].startswith(signum.name)
            fetched += json.loads(stdout)["fetched"]
            interrupted += 1
        assert part.exists() and not out.exists()  # every run leaves a resumable partial
    assert interrupted >= 10
    assert fetched <= len(data) + 2 * PIECE * interrupted
    peer_factory(directory.url, files={"big.bin": data}, peer_id="fast", env=PIECES_ENV)
    wait_until(lambda: holders_of(directory.url, sha(data)) == ["fast", "slow"], timeout=20)
    final = get_process(sha(data), out, directory.url, tmp_path)
    stdout, stderr = final.communicate(timeout=60)
    assert final.returncode == 0, stderr
    assert out.read_bytes() == data and not part.exists()
    assert json.loads(stdout)["resumed_bytes"] > 0
