"""directory_api.clocks: each process's clock beside the database's, and the skew it logs."""
import logging
import time

from directory_api.clocks import ClockWatch, current_processes, spread


class OffsetClock:
    """The real clock moved by offset seconds, which a test may change."""

    def __init__(self, offset=0.0):
        self.offset = offset

    def __call__(self):
        return time.time() + self.offset


def skew_lines(caplog):
    return [r.getMessage() for r in caplog.records if r.name == "directory_api.clocks"]


def test_a_skew_past_a_second_is_logged_once_per_change(store, caplog):
    clock = OffsetClock(2.5)
    watch = ClockWatch(store, clock=clock, host="host-a", pid=7)
    caplog.set_level(logging.INFO, logger="directory_api.clocks")
    assert 2.0 < watch.beat() < 3.0
    watch.beat()
    [line] = skew_lines(caplog)
    assert "host-a:7) is +2." in line and "off the database's clock" in line
    [row] = current_processes(store)
    assert (row["host"], row["pid"], row["skewed"]) == ("host-a", 7, True) and 2.0 < row["skew_s"] < 3.0
    clock.offset = 0.0
    assert abs(watch.beat()) < 0.5
    watch.beat()
    lines = skew_lines(caplog)
    assert len(lines) == 2 and "back within" in lines[1]
    assert current_processes(store)[0]["skewed"] is False


def test_processes_on_one_host_see_no_skew(store):
    """SQLite (one host) and a PostgreSQL server on this machine: the same clock, through the same code."""
    watches = [ClockWatch(store, host="here", pid=pid) for pid in (1, 2)]
    for watch in watches:
        assert abs(watch.beat()) < 0.5
    found = current_processes(store)
    assert [p["pid"] for p in found] == [1, 2]
    assert spread(found) < 0.5 and not any(p["skewed"] for p in found)


def test_a_stopped_process_removes_its_row_and_a_forgotten_one_registers_again(store):
    watch = ClockWatch(store, interval_s=60, host="h", pid=3).start()
    assert [p["pid"] for p in current_processes(store)] == [3]
    store.forget_process(watch.process_id)  # as the sweep does to a long-silent process
    assert current_processes(store) == []
    watch.beat()
    assert [p["pid"] for p in current_processes(store)] == [3]
    watch.stop()
    assert current_processes(store) == [] and not watch.running


def test_spread_is_the_widest_gap_between_two_processes():
    assert spread([]) == spread([{"skew_s": 4.0}]) == 0.0
    assert spread([{"skew_s": 0.5}, {"skew_s": -0.75}, {"skew_s": 0.0}]) == 1.25
