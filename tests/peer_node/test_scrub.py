"""The scrub (peer_node.scrub) on a fake clock: even pacing, resume, and bad copies."""
import json
import os

import pytest

from peer_node.config import MiB, load_config
from peer_node.errors import ConfigError
from peer_node.folder import SharedFolder
from peer_node.scrub import PASS_DONE, Scrubber
from peer_node.verify import Verifier
from tests.fixtures.peer import fill_folder, flip_bytes

PIECE = 64 * 1024


@pytest.fixture
def folder(tmp_path):
    files = {f"f{i}.bin": os.urandom(PIECE * (i + 1)) for i in range(4)}
    shared = SharedFolder(fill_folder(str(tmp_path / "share"), files), PIECE)
    shared.scan()
    return shared


def scrubber(folder, clock, rate=100 * MiB, interval=400.0, bad=None):
    found = bad if bad is not None else []
    s = Scrubber(folder, rate, interval, found.append, clock=clock, wait=clock.wait)
    s.checked = []
    real = s.scrub

    def scrub(entry):
        s.checked.append((entry.name, clock.now))
        return real(entry)

    s.scrub = scrub
    return s


# -- the scrubber ---------------------------------------------------------------------------

def test_a_pass_spreads_the_files_evenly_over_the_interval(folder, clock):
    s = scrubber(folder, clock, interval=400.0)
    start = clock.now
    s.run_pass()
    assert [(name, at - start) for name, at in s.checked] == [
        ("f0.bin", 0.0), ("f1.bin", pytest.approx(100.0)), ("f2.bin", pytest.approx(200.0)),
        ("f3.bin", pytest.approx(300.0))]
    assert clock.now - start == pytest.approx(400.0)  # then it waits for the pass's end
    assert s.stats == {"passes": 1, "files": 4, "bytes": 10 * PIECE, "bad": 0}


def test_reads_never_go_faster_than_the_rate(folder, clock):
    s = scrubber(folder, clock, rate=PIECE, interval=1.0)  # 10 pieces at one a second
    start = clock.now
    s.run_pass()
    assert clock.now - start >= 9.0  # the first second's worth is the bucket's burst


def test_a_rotted_copy_found_by_the_scrub_is_quarantined_like_a_failed_verify(folder, clock):
    flip_bytes(os.path.join(folder.root, "f2.bin"), [3])
    sha = folder.by_name("f2.bin").sha256
    withdrawn = []
    verifier = Verifier(folder, lambda sha256, still: withdrawn.append((sha256, still)))
    s = Scrubber(folder, 100 * MiB, 400.0, verifier.failed, clock=clock, wait=clock.wait)
    s.run_pass()
    assert withdrawn == [(sha, False)] and s.stats["bad"] == 1
    assert [e.name for e in folder.entries()] == ["f0.bin", "f1.bin", "f3.bin"]
    assert os.listdir(os.path.join(folder.work_dir, "quarantine")) == [f"{sha}-f2.bin"]


def test_a_stopped_pass_is_resumed_after_the_last_file_checked(folder, clock):
    s = scrubber(folder, clock, interval=400.0)
    clock.stop_at = 2  # the wait before the third file is cut short: the peer stops
    start = clock.now
    s.run_pass()
    assert [name for name, _ in s.checked] == ["f0.bin", "f1.bin"]
    saved = json.load(open(s.state_path))
    assert saved["after"] == "f1.bin" and saved["started"] == start
    clock.stop_at = None
    again = scrubber(folder, clock, interval=400.0)  # a restarted peer
    again.run_pass()
    assert [name for name, _ in again.checked] == ["f2.bin", "f3.bin"]
    assert [at - start for _, at in again.checked] == [pytest.approx(200.0), pytest.approx(300.0)]
    assert json.load(open(s.state_path))["after"] == PASS_DONE


def test_a_finished_pass_is_not_run_again_before_its_interval_ends(folder, clock):
    s = scrubber(folder, clock, interval=400.0)
    s.run_pass()
    s._save(clock.now - 100, PASS_DONE)  # restarted 100 s into the next pass's wait
    again = scrubber(folder, clock, interval=400.0)
    again.run_pass()
    assert again.checked == [] and clock.waits[-1] == pytest.approx(300.0)
    again.run_pass()  # the interval is over: a new pass
    assert [name for name, _ in again.checked] == ["f0.bin", "f1.bin", "f2.bin", "f3.bin"]


@pytest.mark.parametrize("state", ['{"version": 1}', "not json", '{"version": 99, "started": 1, "after": "z"}',
                                   '{"version": 1, "started": 99999999999, "after": "f3.bin"}'])
def test_an_unreadable_or_future_state_starts_a_new_pass(folder, clock, state):
    s = scrubber(folder, clock)
    with open(s.state_path, "w") as f:
        f.write(state)
    s.run_pass()
    assert [name for name, _ in s.checked] == ["f0.bin", "f1.bin", "f2.bin", "f3.bin"]


def test_rate_zero_turns_the_scrub_off(folder, clock):
    s = Scrubber(folder, 0, 400.0, lambda check: None, clock=clock, wait=clock.wait)
    s.start()
    assert s._thread is None
    s.stop()


def test_the_scrub_thread_stops_at_once(folder):
    s = Scrubber(folder, 1024, 3600.0, lambda check: None)  # slow: it would read for seconds
    s.start()
    s.stop(timeout=2.0)
    assert not s._thread.is_alive()


# -- settings ---------------------------------------------------------------------------

def test_scrub_settings_default_to_8_mib_a_second_and_a_week():
    cfg = load_config(None, env={}, default_path=None)
    assert (cfg.scrub_rate, cfg.scrub_interval) == (8 * MiB, 604800.0)


def test_scrub_settings_from_the_file_and_the_environment(tmp_path):
    ini = tmp_path / "p.ini"
    ini.write_text("[scrub]\nrate = 1MiB\ninterval = 86400\n")
    cfg = load_config(str(ini), env={"P2P_SCRUB_RATE": "0"})
    assert (cfg.scrub_rate, cfg.scrub_interval) == (0, 86400.0)


@pytest.mark.parametrize("key, value", [("rate", "fast"), ("rate", "-1"), ("interval", "0"), ("interval", "soon")])
def test_bad_scrub_settings_name_the_key(tmp_path, key, value):
    ini = tmp_path / "p.ini"
    ini.write_text(f"[scrub]\n{key} = {value}\n")
    with pytest.raises(ConfigError, match=rf"\[scrub\] {key}"):
        load_config(str(ini), env={})
