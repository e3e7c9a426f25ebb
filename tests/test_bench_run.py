"""bench.run --only merges into the last report's JSON; bench.swarm's corrupt copy keeps size and mtime."""
import json
import os

import pytest

from bench import run, swarm
from peer_node.hashing import sha256_file


def _new(sections):
    return {"machine": {"cores": 2}, "finished": 2000.0, "seconds": 60.0, "quick": False,
            "sections": {n: {"measured_at": 1990.0, "quick": False, "seconds": 30.0} for n in sections},
            **{n: {"ratios": {}, "figure": n} for n in sections}}


def test_merge_keeps_other_sections_and_their_dates(tmp_path):
    old = {"quick": False, "finished": 1000.0, "machine": {"postgres_server": "16"},
           "transfer": {"figure": "old transfer", "seconds": 90.0}, "swarm": {"figure": "old swarm"}}
    path = tmp_path / "benchmarks.json"
    path.write_text(json.dumps(old))
    merged = run.merge_into(path, _new(["swarm", "trust"]), ["swarm", "trust"])
    assert merged["transfer"] == old["transfer"]
    assert merged["sections"]["transfer"] == {"measured_at": 1000.0, "quick": False, "seconds": 90.0}
    assert merged["swarm"]["figure"] == "swarm" and merged["trust"]["figure"] == "trust"
    assert merged["sections"]["swarm"]["measured_at"] == 1990.0
    assert merged["machine"] == {"postgres_server": "16", "cores": 2}
    assert merged["updated_by"] == "python -m bench.run --only swarm --only trust"


@pytest.mark.parametrize("content", ["", "{not json"])
def test_merge_without_a_readable_report_is_the_new_run(tmp_path, content):
    path = tmp_path / "benchmarks.json"
    if content:
        path.write_text(content)
    new = _new(["trust"])
    assert run.merge_into(path, new, ["trust"]) is new


def test_corrupt_in_place_flips_every_piece_and_keeps_size_and_mtime(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(bytes(10_000))
    os.utime(path, ns=(1_000_000_000, 2_000_000_000))
    before = sha256_file(path).hexdigest()
    swarm.corrupt_in_place(path, 4096)
    data = path.read_bytes()
    st = path.stat()
    assert (st.st_size, st.st_mtime_ns) == (10_000, 2_000_000_000)
    assert sha256_file(path).hexdigest() != before
    assert [i for i, b in enumerate(data) if b] == [2048, 4096 + 2048, 8192 + 904]
