"""Operations benchmark: what metrics cost, and how the production server holds up to slow clients and signals.

Metrics on against off: one seeded store served by two `python -m directory_api` processes side
by side (one with `--metrics on`, one with `--metrics off`, same workers and threads); in each
round, each serves the ceiling (/api/v1/health), search and heartbeat under wrk, the two
servers in alternating order. The issue's target: search / ceiling and heartbeat / ceiling with
metrics on stay within 5 % of the same ratios with metrics off (paired per round).

Slow clients and signals, reported, not asserted: the threads of every process while 200
half-sent requests are open (gunicorn, and werkzeug's `--dev` for comparison), and seconds
from SIGTERM to exit while 300 clients keep sending requests.

    python -m bench.ops [--quick]        (prints JSON; `python -m bench.run --only ops` reports it)
"""
from __future__ import annotations

import argparse
import contextlib
import json
import logging
import signal
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from bench import directory, vocab
from bench.common import Proc, summary, wait_http
from tests.integration.load import HttpLoad, half_sent, process_tree, socket_count, thread_count

log = logging.getLogger(__name__)

READY = r"directory listening on (http://\S+)"
TARGET = 0.95  # metrics on keeps at least 95 % of the ratio to the ceiling it has with metrics off


@dataclass
class OpsBenchConfig:
    """Sizes and durations; quick and full presets from for_mode()."""

    peers: int = 100
    files: int = 10_000
    rounds: int = 5
    duration_s: float = 4.0
    warmup_s: float = 2.0
    wrk_threads: int = 2
    connections: int = 32
    workers: int = 2
    threads: int = 8
    heartbeat_peers: int = 64
    half_sent: int = 200
    sigterm_tries: int = 5
    sigterm_clients: int = 300

    @classmethod
    def for_mode(cls, quick: bool) -> "OpsBenchConfig":
        """The preset for --quick (about a minute) or the full run."""
        if quick:
            return cls(rounds=2, duration_s=2.0, warmup_s=1.0, heartbeat_peers=16, sigterm_tries=2)
        return cls()


@contextlib.contextmanager
def serve(db_url: str, cfg: OpsBenchConfig, name: str, *extra: str):
    """`python -m directory_api` on a free port with this benchmark's settings; yields (base URL, Proc)."""
    args = [sys.executable, "-m", "directory_api", "--host", "127.0.0.1", "--port", "0", "--database", db_url,
            "--lease", "3600", "--replication", "2", "--workers", str(cfg.workers), "--threads", str(cfg.threads),
            *extra]
    proc = Proc(args, name=name, ready=READY, timeout=60)
    try:
        base = proc.match.group(1)
        wait_http(base + "/api/v1/health", timeout=30, proc=proc)
        yield base, proc
    finally:
        proc.stop()


def measure_metrics_cost(cfg: OpsBenchConfig, workdir: Path) -> dict:
    """Ceiling, search and heartbeat with metrics on and off, paired per round; answers ratios and runs."""
    db_url = f"sqlite:///{workdir}/ops.db"
    ds = vocab.generate(cfg.peers, cfg.files, replication=2)
    seeded = directory.seed(db_url, ds, login_peers=min(cfg.heartbeat_peers, cfg.peers))
    runs: dict = {mode: {w: [] for w in ("ceiling", "search", "heartbeat")} for mode in ("on", "off")}
    with serve(db_url, cfg, "directory-metrics-on", "--metrics", "on") as on, \
            serve(db_url, cfg, "directory-metrics-off", "--metrics", "off") as off:
        servers = {"on": on, "off": off}
        tokens, _ = directory.login_tokens(on[0], ds, min(cfg.heartbeat_peers, cfg.peers),
                                           seeded["seeded_peers_can_login"])
        files = {"queries": str(directory.write_lines(workdir / "queries.txt", vocab.encoded_queries())),
                 "tokens": str(directory.write_lines(workdir / "tokens.txt", tokens))}
        for base, _ in servers.values():
            for workload in ("ceiling", "search", "heartbeat"):
                directory.run_workload(workload, base, files, cfg, cfg.warmup_s, seed=999)
        for r in range(cfg.rounds):
            for mode in (("on", "off") if r % 2 == 0 else ("off", "on")):
                base, proc = servers[mode]
                for workload in ("ceiling", "search", "heartbeat"):
                    runs[mode][workload].append(
                        directory.timed_run(base, proc, workload, files, cfg, r, label=f"{workload} {mode}"))
    result: dict = {"runs": runs}
    for workload in ("search", "heartbeat"):
        paired = []
        for r in range(cfg.rounds):
            over = {mode: runs[mode][workload][r]["rps"] / runs[mode]["ceiling"][r]["rps"] for mode in ("on", "off")}
            paired.append(over["on"] / over["off"])
        cost = summary(paired)
        result[f"{workload}_on_over_off"] = {
            "value": cost["median"], "min": cost["min"], "max": cost["max"], "target": TARGET,
            "met": cost["median"] >= TARGET,
            "what": f"{workload} / ceiling with metrics on, over the same with metrics off (paired per round)"}
    for workload in ("ceiling", "search", "heartbeat"):
        result[f"{workload}_rps"] = {mode: summary(r["rps"] for r in runs[mode][workload]) for mode in ("on", "off")}
    return result


def measure_half_sent(cfg: OpsBenchConfig, workdir: Path, *extra: str) -> dict:
    """Threads of each process before and with cfg.half_sent half-sent requests open; a request's latency."""
    import requests

    with serve(f"sqlite:///{workdir}/half.db", cfg, "directory-half-sent", *extra) as (base, proc):
        host, port = "127.0.0.1", int(base.rsplit(":", 1)[1])
        expected = 1 if "--dev" in extra else cfg.workers + 1
        deadline = time.monotonic() + 20
        while len(process_tree(proc.pid)) < expected and time.monotonic() < deadline:
            time.sleep(0.05)
        pids = process_tree(proc.pid)
        before = {pid: thread_count(pid) for pid in pids}
        sockets_before = sum(socket_count(pid) for pid in pids)
        socks = half_sent(host, port, cfg.half_sent)
        try:
            deadline = time.monotonic() + 15
            while sum(socket_count(pid) for pid in pids) < sockets_before + cfg.half_sent and time.monotonic() < deadline:
                time.sleep(0.05)
            during = {pid: thread_count(pid) for pid in pids}
            started = time.perf_counter()
            ok = requests.get(base + "/api/v1/health", timeout=10).ok
            latency_ms = 1000 * (time.perf_counter() - started)
        finally:
            for sock in socks:
                sock.close()
    return {"server": "werkzeug --dev" if "--dev" in extra else f"gunicorn {cfg.workers}x{cfg.threads}",
            "threads_before": list(before.values()), "threads_with_half_sent": list(during.values()),
            "health_ok": ok, "health_ms": latency_ms}


def measure_sigterm(cfg: OpsBenchConfig, workdir: Path) -> dict:
    """Seconds from SIGTERM to exit while cfg.sigterm_clients keep sending requests, cfg.sigterm_tries times."""
    seconds = []
    for i in range(cfg.sigterm_tries):
        with serve(f"sqlite:///{workdir}/sigterm-{i}.db", cfg, f"directory-sigterm-{i}") as (base, proc):
            port = int(base.rsplit(":", 1)[1])
            with HttpLoad("127.0.0.1", port, "/api/v1/health", cfg.sigterm_clients, deadline_s=60) as load:
                deadline = time.monotonic() + 30
                while load.answered < cfg.sigterm_clients and time.monotonic() < deadline:
                    time.sleep(0.05)
                started = time.monotonic()
                proc.proc.send_signal(signal.SIGTERM)
                proc.proc.wait(timeout=30)
                seconds.append(time.monotonic() - started)
    return {"tries": cfg.sigterm_tries, "clients": cfg.sigterm_clients, "seconds": summary(seconds), "all": seconds}


def run(cfg: OpsBenchConfig, workdir: Path) -> dict:
    """The whole operations benchmark in workdir; answers raw results with headline ratios."""
    workdir.mkdir(parents=True, exist_ok=True)
    results: dict = {"config": asdict(cfg)}
    log.info("metrics on / off: search, heartbeat and the ceiling, %d rounds", cfg.rounds)
    results["metrics"] = measure_metrics_cost(cfg, workdir)
    log.info("threads under %d half-sent requests", cfg.half_sent)
    results["half_sent"] = [measure_half_sent(cfg, workdir), measure_half_sent(cfg, workdir, "--dev")]
    log.info("SIGTERM under %d concurrent clients, %d tries", cfg.sigterm_clients, cfg.sigterm_tries)
    results["sigterm"] = measure_sigterm(cfg, workdir)
    results["ratios"] = {key: results["metrics"][key] for key in ("search_on_over_off", "heartbeat_on_over_off")}
    return results


def main(argv=None) -> int:
    """Run the operations benchmark alone and print its results as JSON."""
    import tempfile

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    with tempfile.TemporaryDirectory(prefix="p2p-bench-ops-") as tmp:
        results = run(OpsBenchConfig.for_mode(args.quick), Path(tmp))
    results["metrics"].pop("runs")
    print(json.dumps(results, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
