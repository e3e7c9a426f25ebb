"""Login throughput with the failed-login limiter on and off, and what a brute force costs (issue 12).

Starts the production directory (gunicorn, 2 workers, SQLite, scrypt secrets) twice, with the
default limits and with none, and measures for a few seconds each: good logins a second from 4
client threads; then a brute force (8 threads of wrong secrets against one peer_id) and the CPU
seconds the directory's processes spent on it. With the limiter the guesses past the fifth are
429 before any scrypt, so the directory spends almost nothing on them.
Run: `python -m bench.logins [--seconds 4] [--json PATH]`.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench.common import Proc, http_json

READY = r"directory listening on (http://\S+)"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_s(pid: int) -> float:
    """CPU seconds (user + system) of pid and its direct children (the gunicorn workers)."""
    total = 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(entry) == pid or int(fields[1]) == pid:  # fields[1] is the parent pid
            total += (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return total


def _hammer(threads: int, seconds: float, call) -> dict:
    """Run call(i) from threads threads for seconds; the count of each status answered."""
    counts: dict[int, int] = {}
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def work(t):
        i = t
        while time.monotonic() < deadline:
            status = call(i)
            with lock:
                counts[status] = counts.get(status, 0) + 1
            i += threads

    pool = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return counts


def measure(limited: bool, seconds: float, tmp: Path) -> dict:
    """One directory: good-login throughput, then a brute force and its CPU cost."""
    limits = [] if limited else ["--login-failures-per-minute", "0", "--login-failures-per-address", "0"]
    proc = Proc([sys.executable, "-m", "directory_api", "--port", "0", "--workers", "2",
                 "--database", f"sqlite:///{tmp}/logins-{limited}.db", *limits], "directory", ready=READY)
    try:
        api = proc.match.group(1) + "/api/v1"
        n_peers = 40
        for i in range(n_peers):
            http_json("POST", f"{api}/login", {"peer_id": f"bench-{i}", "secret": "right"})

        def good(i):
            peer = i % n_peers
            return http_json("POST", f"{api}/login", {"peer_id": f"bench-{peer}", "secret": "right",
                                                      "grpc_address": f"127.0.0.1:{20000 + peer}"})[0]

        start = time.monotonic()
        good_counts = _hammer(4, seconds, good)
        good_s = time.monotonic() - start
        http_json("POST", f"{api}/login", {"peer_id": "victim", "secret": "right"})
        cpu_before, start = _cpu_s(proc.pid), time.monotonic()
        brute = _hammer(8, seconds, lambda i: http_json("POST", f"{api}/login",
                                                          {"peer_id": "victim", "secret": f"guess-{i}"})[0])
        brute_s, cpu = time.monotonic() - start, _cpu_s(proc.pid) - cpu_before
        guesses = sum(brute.values())
        return {"good_logins_per_s": round(good_counts.get(200, 0) / good_s, 1), "good_statuses": good_counts,
                "guesses_per_s": round(guesses / brute_s, 1), "guess_statuses": brute,
                "guesses_checked_by_scrypt": brute.get(401, 0),
                "directory_cpu_ms_per_guess": round(cpu * 1000 / max(guesses, 1), 2)}
    finally:
        proc.stop()


def main(argv=None) -> int:
    """Measure both configurations and print (and optionally write) the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0, help="seconds of each measurement")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="p2p-bench-logins-") as tmp:
        figures = {"limiter_on": measure(True, args.seconds, Path(tmp)),
                   "limiter_off": measure(False, args.seconds, Path(tmp))}
    on, off = figures["limiter_on"], figures["limiter_off"]
    figures["ratios"] = {
        "good_logins_on_over_off": round(on["good_logins_per_s"] / max(off["good_logins_per_s"], 0.1), 2),
        "cpu_per_guess_on_over_off": round(on["directory_cpu_ms_per_guess"]
                                           / max(off["directory_cpu_ms_per_guess"], 0.01), 3),
    }
    text = json.dumps(figures, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
