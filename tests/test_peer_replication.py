"""Issue 5, peer side: holders push replicas the directory asks for; backups index them at once."""
import os
import subprocess
import sys

import pytest

from tests.test_peer_integration import ROOT, clean_env, holders_of, sha, wait_until

pytestmark = pytest.mark.integration


def test_replica_pushed_and_survives_owner_crash(directory_factory, peer_factory, tmp_path):
    directory = directory_factory(replication=2)
    data = os.urandom(300_000)
    a = peer_factory(directory.url, files={"shared/report.pdf": data}, peer_id="a")
    b = peer_factory(directory.url, peer_id="b")
    wait_until(lambda: holders_of(directory.url, sha(data)) == ["a", "b"], timeout=20)
    assert open(os.path.join(b.folder, "shared", "report.pdf"), "rb").read() == data
    a.wait_for_output(r"replicated shared/report.pdf .* to b", timeout=5)
    a.kill()
    wait_until(lambda: holders_of(directory.url, sha(data)) == ["b"], timeout=10)
    out = tmp_path / "c.pdf"
    r = subprocess.run([sys.executable, "-m", "peer_node", "get", sha(data), "--out", str(out),
                        "--directory", directory.url], cwd=tmp_path, capture_output=True, text=True,
                       env=clean_env(PYTHONPATH=str(ROOT)), timeout=60)
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == data


def test_no_push_to_a_peer_that_refuses_uploads(directory_factory, peer_factory):
    directory = directory_factory(replication=2)
    data = os.urandom(1000)
    a = peer_factory(directory.url, files={"x.bin": data}, peer_id="a")
    b = peer_factory(directory.url, peer_id="b", args=("--no-accept-uploads",))
    wait_until(lambda: holders_of(directory.url, sha(data)) == ["a"])
    b.wait_for_output("logged in to")
    import time
    time.sleep(2.0)  # several heartbeats: nothing must arrive at b
    assert holders_of(directory.url, sha(data)) == ["a"]
    assert not os.path.exists(os.path.join(b.folder, "x.bin"))
    assert "stored x.bin" not in b.output
