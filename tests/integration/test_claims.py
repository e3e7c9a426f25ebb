"""Claims against real processes: a corrupt holder is reported, ordered to verify, and quarantines
its copy; an audit by a proven holder catches a peer that only claims a file; a scrub finds rot.
"""
import json
import os
import subprocess
import sys
import threading

import pytest
import requests

from tests.fixtures.peer import flip_bytes
from tests.integration.helpers import clean_env, holders_of, sha, wait_until, write_config
from tests.procs import ROOT

pytestmark = pytest.mark.integration

PIECE = 256 * 1024
PIECES_ENV = {"P2P_PIECE_SIZE": "256KiB"}


def file_detail(directory_url, digest):
    r = requests.get(f"{directory_url}/api/v1/files/{digest}", timeout=5)
    return r.json() if r.ok else {}


def replication(directory_url, digest):
    return file_detail(directory_url, digest).get("replication") or {}


def p2p_get(digest, out, ini, *extra):
    return subprocess.run([sys.executable, "-m", "peer_node", "-v", "get", digest, "--out", str(out), "--config", str(ini),
                           "--json", *extra], cwd=ROOT, env=clean_env(PYTHONPATH=str(ROOT)),
                          capture_output=True, text=True, timeout=60)


def test_a_corrupt_holder_is_ordered_to_verify_and_quarantines_its_copy(directory_factory, peer_factory, tmp_path):
    directory = directory_factory(lease=3)
    data = os.urandom(6 * PIECE + 17)
    files = {"film.bin": data}
    bad = peer_factory(directory.url, files=files, peer_id="bad", env=PIECES_ENV)
    for peer_id in ("good1", "good2"):
        peer_factory(directory.url, files=files, peer_id=peer_id, env=PIECES_ENV)
    me = peer_factory(directory.url, peer_id="me", env=PIECES_ENV)  # the downloader's own running peer
    wait_until(lambda: holders_of(directory.url, sha(data)) == ["bad", "good1", "good2"], timeout=20)
    me.wait_for_output("logged in to", timeout=15)
    flip_bytes(os.path.join(bad.folder, "film.bin"), [PIECE // 2])  # its disk rots; size and mtime kept
    ini = write_config(tmp_path / "me.ini", me, directory.url)
    # one holder at a time, "bad" first: it is surely asked for a piece, and banned for it
    got = p2p_get(sha(data), tmp_path / "out.bin", ini, "--parallel", "1")
    assert got.returncode == 0, got.stderr
    result = json.loads(got.stdout)
    assert list(result["banned"]) == ["bad"] and (tmp_path / "out.bin").read_bytes() == data
    assert "reported bad as sending bad data" in got.stderr and "reported good1 as verified" in got.stderr
    # the directory orders a re-hash in bad's next heartbeat answer; bad quarantines and withdraws
    quarantined = os.path.join(bad.folder, ".p2p", "quarantine", f"{sha(data)}-film.bin")
    wait_until(lambda: os.path.exists(quarantined), timeout=15)
    wait_until(lambda: holders_of(directory.url, sha(data)) == ["good1", "good2"], timeout=10)
    assert not os.path.exists(os.path.join(bad.folder, "film.bin"))
    bad.wait_for_output(r"film\.bin no longer matches its sha256", timeout=5)
    assert sum("no longer matches" in line for line in bad.lines) == 1
    # the holder whose pieces made the file was reported verified: its claim is proven
    assert replication(directory.url, sha(data)).get("proven", 0) >= 1
    # the quarantined copy is served to nobody, and a rescan never finds it again
    bad.wait_for_output(r"published|folder changed", timeout=5)
    assert "bad" not in holders_of(directory.url, sha(data))


class Liar:
    """A peer that claims a file it does not have: logged in over REST (as any implementation of
    the contract may) at the address of a real gRPC server that shares nothing, heartbeating."""

    def __init__(self, directory_url, address, entry):
        self.url = directory_url
        r = requests.post(f"{directory_url}/api/v1/login", timeout=5, json={
            "peer_id": "liar", "secret": "liar-secret", "grpc_address": address, "files": [entry],
            "accept_uploads": False})
        assert r.status_code == 200, r.text
        self.token, self.lease = r.json()["token"], r.json()["lease_s"]
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._beat, daemon=True)
        self.thread.start()

    def _beat(self):
        while not self.stop.wait(self.lease / 3):
            try:
                requests.post(f"{self.url}/api/v1/heartbeat", json={}, timeout=5,
                              headers={"Authorization": f"Bearer {self.token}"})
            except requests.RequestException:
                pass


def test_an_audit_catches_a_peer_that_only_claims_a_file(directory_factory, peer_factory, inproc_peer_factory,
                                                         tmp_path):
    directory = directory_factory(lease=3, replication=2,
                                  extra_args=("--audits-per-minute", "600", "--audit-interval", "1"))
    data = os.urandom(3 * PIECE + 5)
    owner = peer_factory(directory.url, files={"doc.bin": data}, peer_id="owner", env=PIECES_ENV)
    wait_until(lambda: holders_of(directory.url, sha(data)) == ["owner"], timeout=20)
    pieces = [sha(data[i:i + PIECE]) for i in range(0, len(data), PIECE)]
    empty = inproc_peer_factory({}, piece_size=PIECE)  # answers every Download with NOT_FOUND
    liar = Liar(directory.url, empty.address, {"name": "doc.bin", "size": len(data), "sha256": sha(data),
                                               "piece_size": PIECE, "pieces": pieces})
    try:
        wait_until(lambda: holders_of(directory.url, sha(data)) == ["liar", "owner"], timeout=10)
        # two unproven claims count as one copy: a real backup is planned, pushed and confirmed
        backup = peer_factory(directory.url, peer_id="backup", env=PIECES_ENV)
        wait_until(lambda: os.path.exists(os.path.join(backup.folder, "doc.bin")), timeout=60)
        # the proven backup audits the other claims: the liar is refuted, the owner proven (claims
        # seen while nobody was proven were put off for the audit interval, 1 s here)
        wait_until(lambda: replication(directory.url, sha(data)).get("refuted") == 1, timeout=60, interval=0.5)
        assert holders_of(directory.url, sha(data)) == ["backup", "owner"]
        wait_until(lambda: replication(directory.url, sha(data)).get("proven") == 2, timeout=30)
        backup.wait_for_output(r"audit \S+: liar \(\S+\) failed for", timeout=5)
        assert open(os.path.join(backup.folder, "doc.bin"), "rb").read() == data
        # the real holder dies: the file lives on, and a download gets it from the backup
        owner.proc.kill()
        owner.proc.wait(timeout=10)
        wait_until(lambda: holders_of(directory.url, sha(data)) == ["backup"], timeout=30)
        ini = write_config(tmp_path / "me.ini", backup, directory.url)
        got = p2p_get(sha(data), tmp_path / "after.bin", ini)
        assert got.returncode == 0, got.stderr
        assert (tmp_path / "after.bin").read_bytes() == data
    finally:
        liar.stop.set()


def test_the_scrub_finds_a_rotted_copy_and_withdraws_it(directory_factory, peer_factory):
    directory = directory_factory(lease=3)
    data = os.urandom(2 * PIECE)
    # a pass every 2 s over the two files: each is re-hashed about once a second
    peer = peer_factory(directory.url, files={"a.bin": data, "b.bin": b"fine"}, peer_id="disk",
                        env={**PIECES_ENV, "P2P_SCRUB_INTERVAL": "2", "P2P_SCRUB_RATE": "64MiB"})
    wait_until(lambda: holders_of(directory.url, sha(data)) == ["disk"], timeout=20)
    flip_bytes(os.path.join(peer.folder, "a.bin"), [PIECE + 3])  # bit rot: size and mtime kept
    wait_until(lambda: holders_of(directory.url, sha(data)) == [], timeout=15)
    assert os.path.exists(os.path.join(peer.folder, ".p2p", "quarantine", f"{sha(data)}-a.bin"))
    assert holders_of(directory.url, sha(b"fine")) == ["disk"]  # the good copy stays shared
    peer.wait_for_output(r"a\.bin no longer matches its sha256", timeout=5)
