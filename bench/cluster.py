"""Cluster throughput: one and two directory processes behind HAProxy on one PostgreSQL database.

The store (a database of its own, dropped afterwards) is seeded as in the directory benchmark;
``devtools.cluster`` starts the directories (gunicorn gthread, the benchmark's workers and
threads each) and HAProxy in front, exactly as ``make cluster`` does. For one directory, then
two, wrk drives the ceiling (``/api/v1/health``) and search through the load balancer, and, in
the same rounds, the ceiling of one directory directly, without HAProxy: its cost shows as the
difference. CPU is counted over every process of the cluster (directories and HAProxy).
"""
from __future__ import annotations

import logging
import sys
import time
import types
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench import vocab
from bench.directory import (DirectoryBenchConfig, PG_URL_DEFAULT, pg_available, seed, server_cpu_s, summarize_runs,
                             timed_run, run_workload, write_lines)

log = logging.getLogger(__name__)

DATABASE = "p2p_bench_cluster"


@dataclass
class ClusterBenchConfig:
    """Scale, processes, rounds: full and quick presets come from for_mode()."""

    peers: int = 1_000
    files: int = 100_000
    processes: list = field(default_factory=lambda: [1, 2])
    workers: int = 2
    threads: int = 8
    rounds: int = 4
    duration_s: float = 4.0
    warmup_s: float = 2.0
    connections: int = 32
    pg_url: str = PG_URL_DEFAULT

    @classmethod
    def for_mode(cls, quick: bool) -> "ClusterBenchConfig":
        """Quick: 10k files, two short rounds."""
        if quick:
            return cls(peers=100, files=10_000, rounds=2, duration_s=2.0, warmup_s=1.0)
        return cls()

    def wrk_config(self) -> DirectoryBenchConfig:
        """The directory benchmark's settings that run_workload and timed_run read."""
        return DirectoryBenchConfig(duration_s=self.duration_s, warmup_s=self.warmup_s, connections=self.connections,
                                    workers=self.workers, threads=self.threads)


def measure_cluster(cluster, files: dict, cfg: ClusterBenchConfig) -> dict:
    """Rounds of: ceiling and search through the load balancer, the ceiling of one directory directly."""
    wrk_cfg = cfg.wrk_config()
    everything = types.SimpleNamespace(pid=list(cluster.pids().values()))
    direct = cluster.directories[0]
    targets = {"ceiling via haproxy": (cluster.url, "ceiling"), "search via haproxy": (cluster.url, "search"),
               "ceiling direct": (direct.url, "ceiling")}
    for base, workload in targets.values():
        run_workload(workload, base, files, wrk_cfg, cfg.warmup_s, seed=999)
    runs: dict[str, list] = {name: [] for name in targets}
    for r in range(cfg.rounds):
        order = list(targets) if r % 2 == 0 else list(reversed(targets))
        for name in order:
            base, workload = targets[name]
            proc = everything if "haproxy" in name else types.SimpleNamespace(pid=direct.child.pid)
            runs[name].append(timed_run(base, proc, workload, files, wrk_cfg, r, label=name))
    for lst_name in ("search via haproxy",):
        for run, ceiling in zip(runs[lst_name], runs["ceiling via haproxy"]):
            run["paired_ceiling_rps"] = ceiling["rps"]
    for run, ceiling in zip(runs["ceiling via haproxy"], runs["ceiling direct"]):
        run["paired_ceiling_rps"] = ceiling["rps"]
    return summarize_runs(runs)


def haproxy_share(cluster, files: dict, cfg: ClusterBenchConfig) -> dict:
    """One search run through the load balancer: the CPU of HAProxy and of the directories apart."""
    wrk_cfg = cfg.wrk_config()
    lb = cluster.haproxy.pid
    dirs = [d.child.pid for d in cluster.directories]
    lb0, dirs0 = server_cpu_s(lb), server_cpu_s(dirs)
    res = run_workload("search", cluster.url, files, wrk_cfg, cfg.duration_s, seed=5)
    n = res["requests"] or 1
    return {"requests": res["requests"], "haproxy_cpu_ms_per_req": 1000 * (server_cpu_s(lb) - lb0) / n,
            "directories_cpu_ms_per_req": 1000 * (server_cpu_s(dirs) - dirs0) / n}


def run(cfg: ClusterBenchConfig, workdir: Path) -> dict:
    """Seed a database of its own, measure each process count, drop the database; answers raw results."""
    from devtools.cluster import Cluster, ClusterConfig, ClusterError, drop_database, ensure_database

    workdir.mkdir(parents=True, exist_ok=True)
    results: dict = {"config": asdict(cfg), "by_processes": []}
    problem = pg_available(cfg.pg_url)
    if problem:
        results["skipped"] = problem
        results["ratios"] = {}
        return results
    from sqlalchemy.engine import make_url

    admin = make_url(cfg.pg_url).set(database="postgres").render_as_string(hide_password=False)
    drop_database(DATABASE, admin)
    url = ensure_database(DATABASE, admin)
    try:
        ds = vocab.generate(cfg.peers, cfg.files, replication=2)
        results["seed"] = seed(url, ds, login_peers=0)
        files = {"queries": str(write_lines(workdir / "queries.txt", vocab.encoded_queries()))}
        for n in cfg.processes:
            cluster = Cluster(ClusterConfig(directories=n, workers=cfg.workers, threads=cfg.threads, database_url=url,
                                            workdir=workdir / f"lb-{n}",
                                            env={"DIRECTORY_LEASE_S": "3600", "DIRECTORY_REPLICATION": "2"}),
                              say=lambda line: log.info("%s", line))
            try:
                cluster.start()
            except ClusterError as exc:
                results["skipped"] = str(exc)
                break
            try:
                started = time.time()
                row = {"processes": n, "workloads": measure_cluster(cluster, files, cfg),
                       "cpu_split": haproxy_share(cluster, files, cfg)}
                row["seconds"] = time.time() - started
                results["by_processes"].append(row)
            finally:
                cluster.stop()
    finally:
        drop_database(DATABASE, admin)
    results["ratios"] = ratios(results)
    return results


def ratios(results: dict) -> dict:
    """Headline rows (no targets): two processes over one, and what HAProxy costs."""
    rows = {r["processes"]: r["workloads"] for r in results.get("by_processes", [])}
    out: dict = {}
    if 1 in rows and 2 in rows:
        for workload in ("search via haproxy", "ceiling via haproxy"):
            value = rows[2][workload]["rps"]["median"] / rows[1][workload]["rps"]["median"]
            out[f"cluster_two_over_one_{workload.split()[0]}"] = {
                "value": value, "target": None, "met": None,
                "what": f"cluster {workload.split()[0]}: 2 directory processes / 1, through HAProxy "
                        f"(2 cores: not expected to scale)"}
    if 1 in rows and rows[1]["ceiling via haproxy"].get("ratio_to_ceiling"):
        r = rows[1]["ceiling via haproxy"]["ratio_to_ceiling"]
        out["cluster_haproxy_ceiling"] = {"value": r["median"], "min": r["min"], "max": r["max"], "target": None,
                                          "met": None, "what": "ceiling through HAProxy / the same directory "
                                                               "directly (1 process, paired per round)"}
    return out


def main(argv=None) -> int:
    """Run only the cluster benchmark (`python -m bench.cluster [--quick]`)."""
    from bench.common import run_alone

    return run_alone(argv, __doc__.splitlines()[0], run, ClusterBenchConfig.for_mode, "p2p-bench-cluster-")


if __name__ == "__main__":
    sys.exit(main())
