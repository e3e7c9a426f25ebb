"""`make demo` runs scripts/demo.py; run it here as a subprocess with a small big file."""
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from tests.procs import ROOT

pytestmark = pytest.mark.integration

DEMO = ROOT / "scripts" / "demo.py"


def _demo_env():
    env = {k: v for k, v in os.environ.items() if not k.startswith("P2P_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _run_demo(root, big_mib=5, timeout=90, extra=()):
    return subprocess.run([sys.executable, str(DEMO), "--root", str(root), "--big-mib", str(big_mib), *extra],
                          cwd=ROOT, env=_demo_env(), stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=timeout)


def _started_pids(transcript):
    return sorted({int(pid) for pid in re.findall(r"\(pid (\d+)\)", transcript)})


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ", 1)[1][0] != "Z"
    except FileNotFoundError:
        return False


def test_demo_tells_the_whole_story_twice_and_leaves_nothing_running(tmp_path):
    """The demo exits 0 with every step in its transcript, twice in a row on the same folder."""
    root = tmp_path / "demo"
    for run in (1, 2):
        started = time.monotonic()
        done = _run_demo(root)
        took = time.monotonic() - started
        transcript = done.stdout + done.stderr
        assert done.returncode == 0, f"run {run} exited {done.returncode}:\n{transcript}"
        for expected in (
            "directory listening on http://127.0.0.1:",
            "peer peer1 serving on 127.0.0.1:",
            "peer peer2 serving on 127.0.0.1:",
            "peer1 logged in to",
            "$ p2p peers",
            "$ p2p search big-video",
            "$ p2p get ",
            "sha256 matches",
            "2 holders",
            "peer1 logged out and stopped (exit 0)",
            "directory stopped (exit 0)",
            "every step worked",
        ):
            assert expected in transcript, f"run {run}: {expected!r} missing from:\n{transcript}"
        pids = _started_pids(transcript)
        assert len(pids) == 3, transcript
        assert not [pid for pid in pids if _alive(pid)], f"run {run} left processes behind:\n{transcript}"
        assert (root / "peer2" / "big-video.bin").stat().st_size == 5 * 1024 * 1024
        assert took < 60, f"run {run} took {took:.1f} s"


def test_demo_interrupted_stops_every_child(tmp_path):
    """Ctrl-C (SIGINT) in the middle stops the directory and both peers, and the demo exits 130;
    a SIGTERM right after it (as a wrapper passes on) does not cut the cleanup short."""
    demo = subprocess.Popen([sys.executable, str(DEMO), "--root", str(tmp_path / "demo"), "--big-mib", "2"],
                            cwd=ROOT, env=_demo_env(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    lines = []
    try:
        deadline = time.monotonic() + 60
        for line in demo.stdout:
            lines.append(line)
            if line.startswith("[4/") or time.monotonic() > deadline:
                break
        transcript = "".join(lines)
        assert "[4/" in transcript, f"the demo never reached step 4:\n{transcript}"
        demo.send_signal(signal.SIGINT)
        demo.send_signal(signal.SIGTERM)
        rest, _ = demo.communicate(timeout=30)
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
    transcript += rest
    assert demo.returncode == 130, transcript
    assert "Interrupted" in transcript and "Traceback" not in transcript, transcript
    pids = _started_pids(transcript)  # the three servers, and a command the signal caught mid-way
    assert len(pids) >= 3, transcript
    assert not [pid for pid in pids if _alive(pid)], f"processes left behind:\n{transcript}"


def test_demo_fails_loudly_with_one_line_when_a_step_breaks(tmp_path):
    """A step that cannot work (the demo root is a file) ends with one DEMO FAILED line and exit 1."""
    root = tmp_path / "not-a-folder"
    root.write_text("in the way\n")
    done = subprocess.run([sys.executable, str(DEMO), "--root", str(root), "--big-mib", "1"],
                          cwd=ROOT, env=_demo_env(), capture_output=True, text=True, timeout=30)
    assert done.returncode == 1, done.stdout + done.stderr
    failed = [line for line in done.stdout.splitlines() if line.startswith("DEMO FAILED")]
    assert len(failed) == 1 and "cannot prepare the folders" in failed[0], done.stdout
    assert "Traceback" not in done.stdout + done.stderr
    assert not _started_pids(done.stdout)


def test_demo_rejects_a_big_file_size_below_one_mib(tmp_path):
    """--big-mib 0 is a usage error (exit 2), before anything starts."""
    done = subprocess.run([sys.executable, str(DEMO), "--root", str(tmp_path), "--big-mib", "0"],
                          cwd=ROOT, env=_demo_env(), capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    assert "--big-mib must be at least 1" in done.stderr


def test_demo_over_tls(tmp_path):
    """`make demo-tls`: certificates from `p2p certs`, the same story over TLS, plaintext refused in one line."""
    done = _run_demo(tmp_path / "demo", extra=("--tls",))
    transcript = done.stdout + done.stderr
    assert done.returncode == 0, transcript
    for expected in ("over TLS", "$ p2p certs ", "$ export P2P_TLS_CA=", "sha256 matches",
                     "2 holders", "serves TLS and we dialed plaintext", "every step worked"):
        assert expected in transcript, f"{expected!r} missing from:\n{transcript}"
    assert "[tls]" in (tmp_path / "demo" / "peer1.ini").read_text()
    assert not [pid for pid in _started_pids(transcript) if _alive(pid)], transcript
