"""The progress display (peer_node.progress): a rich bar on a terminal, plain lines otherwise,
and `p2p get` / `p2p put` through click's runner."""
import hashlib
import io
import json
import os
import re


import peer_node.cli as cli
from peer_node.progress import Progress, human_size
from peer_node.swarm_state import SwarmProgress
from tests.fixtures.stub_directory import stub_directory

MiB = 2**20


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def snap(done, total, *holders):
    return SwarmProgress(done, total, done, tuple(holders))


def plain(text):
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)


def test_human_size():
    assert human_size(1536) == "1.5 KiB" and human_size(3) == "3 B" and human_size(5 * 2**40) == "5.0 TiB"


def test_off_a_terminal_one_line_per_tenth_and_per_holder_state_change():
    out, clock = io.StringIO(), Clock()
    bar = Progress("f.bin", 1000, stream=out, tty=False, clock=clock)
    for done in range(0, 1001):
        clock.now += 0.01
        state = "banned" if done >= 500 else "active"
        bar.swarm(snap(done, 1000, ("good", "active", done), ("bad", state, 0)))
    bar.finish()
    lines = out.getvalue().splitlines()
    # 10 %, 20 %, ... 100 %: the start is no step (an upload refused at once prints only its error)
    assert len([line for line in lines if line.startswith("f.bin:")]) == 10 and "\r" not in out.getvalue()
    assert [line.strip() for line in lines if "holder" in line] == [
        "holder good: active (1 B verified)", "holder bad: banned (0 B verified)"]  # nothing verified yet: no line
    assert "100.0% 1000 B of 1000 B" in lines[-1] or "100.0%" in "".join(lines)


def test_the_rate_counts_only_this_runs_bytes():
    out, clock = io.StringIO(), Clock()
    bar = Progress("f.bin", 100 * MiB, stream=out, tty=False, clock=clock)
    bar.swarm(snap(0, 10 * MiB))  # 90 MiB were verified by an earlier run
    clock.now += 10
    bar.swarm(snap(10 * MiB, 10 * MiB))
    assert "100.0% 100.0 MiB of 100.0 MiB at 1.0 MiB/s" in out.getvalue()


def test_on_a_terminal_a_rich_bar_with_a_line_per_holder():
    out, clock = io.StringIO(), Clock()
    bar = Progress("film.bin", 8 * MiB, stream=out, tty=True, clock=clock)
    bar.swarm(snap(0, 4 * MiB, ("alice", "active", 0), ("bob", "busy", 0)))  # 4 MiB resumed
    for n in range(1, 5):
        clock.now += 1
        bar.swarm(snap(n * MiB, 4 * MiB, ("alice", "active", n * MiB), ("bob", "stalled" if n > 2 else "busy", 0)))
    bar.finish()
    text = plain(out.getvalue())
    last = text[text.rindex("film.bin"):]
    assert "100%" in last and "8.0/8.0 MiB" in last and "1.0 MiB/s" in last  # 4 MiB in 4 s, not 8
    assert re.search(r"alice\s+active\s+4\.0 MiB", last) and re.search(r"bob\s+stalled\s+0 B", last)
    assert "\x1b[" in out.getvalue()  # drawn with terminal control sequences


def test_finish_twice_and_updates_after_finish_are_harmless():
    out = io.StringIO()
    bar = Progress("x", 10, stream=out, tty=True)
    bar.update(5)
    bar.finish()
    size = len(out.getvalue())
    bar.update(10)
    bar.finish()
    assert len(out.getvalue()) == size


def test_without_a_terminal_rich_is_not_imported():
    import subprocess
    import sys

    code = ("import io, sys; from peer_node.progress import Progress; b = Progress('x', 10, stream=io.StringIO()); "
            "b.update(5); b.finish(); print('rich' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "False\n"


# -- the commands ----------------------------------------------------------------------------------

def test_put_shows_progress_lines_and_answers_json(runner, inproc_peer_factory, tmp_path):
    peer = inproc_peer_factory({})
    data = os.urandom(3 * MiB + 7)
    src = tmp_path / "up.bin"
    src.write_bytes(data)
    result = runner.invoke(cli.main, ["put", str(src), peer.address, "--name", "in/up.bin", "--json"])
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert answer == {"name": "in/up.bin", "size": len(data), "sha256": hashlib.sha256(data).hexdigest(),
                      "address": peer.address, "sent": len(data)}
    steps = [line for line in result.stderr.splitlines() if line.startswith("in/up.bin:")]
    assert 2 <= len(steps) <= 11 and "100.0%" in steps[-1]


def test_put_without_json_says_one_line_on_stdout(runner, inproc_peer_factory, tmp_path):
    peer = inproc_peer_factory({})
    src = tmp_path / "up.bin"
    src.write_bytes(b"x" * 1000)
    result = runner.invoke(cli.main, ["put", str(src), peer.address])
    assert result.exit_code == 0 and result.stdout.startswith("uploaded up.bin (1000 bytes")


def test_get_shows_its_progress_off_a_terminal(runner, inproc_peer_factory, tmp_path):
    data = os.urandom(2 * MiB)
    peer = inproc_peer_factory({"d.bin": data})
    entry = peer.folder.by_name("d.bin")
    record = {"sha256": entry.sha256, "size": entry.size, "names": ["d.bin"], "piece_size": entry.piece_size,
              "pieces": entry.pieces, "holders": [{"peer_id": "alice", "grpc_address": peer.address}]}
    with stub_directory(record) as url:
        result = runner.invoke(cli.main, ["get", entry.sha256, "--out", str(tmp_path / "d.bin"), "--directory", url])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "d.bin").read_bytes() == data
    # holder lines come with verified pieces while others are still fetched (test above); a fast
    # one-piece download ends before any, so only the final line is sure
    assert "d.bin: 100.0%" in result.stderr and "Error" not in result.stderr


def test_log_lines_during_the_bar_are_printed_above_it_and_the_handler_is_put_back():
    import logging

    out = io.StringIO()
    handler = logging.StreamHandler(out)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        bar = Progress("f.bin", 10 * MiB, stream=out, tty=True)
        bar.update(MiB)
        assert handler.stream is not out  # rich's proxy while the bar is up
        logging.getLogger("peer_node.swarm").warning("holder bad banned from this download")
        bar.update(2 * MiB)
        bar.finish()
        assert handler.stream is out
    finally:
        root.removeHandler(handler)
    text = plain(out.getvalue())
    line = next(line for line in text.splitlines() if "holder bad banned" in line)
    assert "f.bin" not in line  # a line of its own, not drawn over by the bar
