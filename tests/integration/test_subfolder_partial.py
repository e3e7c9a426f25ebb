"""A partial download inside a sub-folder of a shared folder is never indexed or published.

`p2p get --out <folder>/sub/x` keeps its partial in `<folder>/sub/.p2p/partial/`: a work area
below the top, which the peer must skip like the top one (`.p2p` is reserved at every depth).
"""
import glob
import os
import subprocess
import sys

import pytest
import requests

from peer_node.client import PeerClient
from protos.rules import is_reserved_component
from tests.integration.helpers import clean_env, holders_of, sha, wait_until, write_config
from tests.procs import ROOT

pytestmark = pytest.mark.integration

BIG = os.urandom(8 * 1024 * 1024)  # at 1 MiB/s from its one holder: about 8 s to download


def in_work_area(name):
    """True when a shared name has a .p2p component anywhere."""
    return any(is_reserved_component(part) for part in name.split("/"))


def directory_view(directory_url, peer_id):
    """The names the directory lists for peer_id; [] while it is not live."""
    r = requests.get(f"{directory_url}/api/v1/peers/{peer_id}/files", timeout=5)
    if r.status_code == 404:
        return []
    r.raise_for_status()
    return [f["name"] for f in r.json()["files"]]


def partials(folder):
    """Non-empty files anywhere under folder/sub/.p2p/."""
    found = glob.glob(os.path.join(folder, "sub", ".p2p", "**", "*"), recursive=True)
    return [p for p in found if os.path.isfile(p) and os.path.getsize(p) > 0]


def test_partial_in_a_subfolder_is_never_indexed(directory_proc, peer_factory, tmp_path):
    slow = ("--chunk-size", "64KiB", "--upload-rate-limit", "1MiB")
    peer_factory(directory_proc.url, files={"big.bin": BIG}, peer_id="a", args=slow)
    b = peer_factory(directory_proc.url, files={"sub/mine.txt": b"b's own"}, peer_id="b")
    wait_until(lambda: holders_of(directory_proc.url, sha(BIG)) == ["a"], timeout=15)
    wait_until(lambda: directory_view(directory_proc.url, "b") == ["sub/mine.txt"], timeout=15)

    cfg = write_config(tmp_path / "b.ini", b, directory_proc.url)
    out = os.path.join(b.folder, "sub", "big.bin")
    get = subprocess.Popen(
        [sys.executable, "-m", "peer_node", "get", sha(BIG), "--out", out, "--config", str(cfg)],
        cwd=tmp_path, env=clean_env(PYTHONPATH=str(ROOT)), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    try:
        found = wait_until(lambda: partials(b.folder) or get.poll() is not None, timeout=30)
        assert get.poll() is None, f"the get ended before its partial was seen: {get.communicate()}"
        assert os.path.join("sub", ".p2p", "partial") in found[0]
    finally:
        get.kill()  # by its PID; SIGKILL, so nothing tidies the partial away
        get.communicate(timeout=15)
    left = partials(b.folder)
    assert left and sum(os.path.getsize(p) for p in left) < len(BIG)
    assert not os.path.exists(out)

    # The partial existed before the sentinel was written beside its work area, so the rescan
    # that publishes the sentinel has walked sub/ with sub/.p2p/ in it.
    with open(os.path.join(b.folder, "sub", "sentinel.txt"), "wb") as f:
        f.write(b"written after the partial appeared")

    def published_with_sentinel():
        names = directory_view(directory_proc.url, "b")
        return names if "sub/sentinel.txt" in names else None

    listed = wait_until(published_with_sentinel, timeout=15)
    assert sorted(listed) == ["sub/mine.txt", "sub/sentinel.txt"]
    with PeerClient(b.address) as c:
        shared = [f.name for f in c.list_files()]
    assert sorted(shared) == ["sub/mine.txt", "sub/sentinel.txt"]
    assert not [n for n in listed + shared if in_work_area(n)]
    assert partials(b.folder) == left  # still there: it was skipped, not missing
