"""Planning-round cost: one holder's replication round at 100 and at 10,000 live peers, both databases.

The store is seeded directly: every peer live and accepting uploads, each holding its own files
that nobody else holds, so every round finds ``max_plans_per_heartbeat`` files below R = 2 and
asks for backup candidates for each (the situation after many leases lapsed, where the issue
measured 38 s for the first 256 heartbeats at 10,000 peers). Each round runs
``Planner.plan_for_holder`` in a transaction that is rolled back, so every round starts from the
same state; holders rotate. It runs twice: with the ring sample the planner uses, and with every
live peer tested (``BACKUP_SAMPLE = None``, how planning worked before), fewer rounds of that.
"""
from __future__ import annotations

import logging
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)


@dataclass
class PlanningBenchConfig:
    """Sizes and rounds: full and quick presets come from for_mode()."""

    peers: list = field(default_factory=lambda: [100, 10_000])
    files_per_peer: int = 20
    rounds: int = 40
    rounds_every_peer: int = 6  # rounds of the old way (every live peer tested for every file)
    pg_url: str = "postgresql+psycopg://postgres@127.0.0.1:5432/test"

    @classmethod
    def for_mode(cls, quick: bool) -> "PlanningBenchConfig":
        """Quick: 5 files a peer, fewer rounds."""
        if quick:
            return cls(files_per_peer=5, rounds=30, rounds_every_peer=2)
        return cls()


def seed(db_url: str, n_peers: int, files_per_peer: int) -> float:
    """n_peers live peers, each the only holder of files_per_peer files; answers the seeding seconds."""
    from bench.vocab import file_digest
    from devtools.store_tools import bulk_seed
    from directory_api.store import Store

    store = Store(db_url)
    try:
        started = time.perf_counter()
        store.create_schema()
        now = time.time()
        peers = [{"peer_id": f"plan-peer-{i:05d}", "grpc_address": f"127.0.0.1:{20000 + i % 40000}",
                  "last_seen": now, "free_bytes": 10 ** 12} for i in range(n_peers)]
        files = ({"peer_id": f"plan-peer-{i % n_peers:05d}", "name": f"solo/{i:07d}.bin",
                  "sha256": file_digest(i), "size": 1000 + i} for i in range(n_peers * files_per_peer))
        bulk_seed(store, peers, files)
        return time.perf_counter() - started
    finally:
        store.dispose()


def measure(db_url: str, n_peers: int, rounds: int, sample) -> dict:
    """rounds planning rounds of distinct holders, each rolled back; answers ms per round and copies."""
    from directory_api import replication
    from directory_api.config import DirectoryConfig
    from directory_api.liveness import Liveness
    from directory_api.replication import Planner
    from directory_api.store import Store

    store = Store(db_url, pool_size=1)
    config = DirectoryConfig(database_url=db_url, replication=2, lease_s=3600, replication_interval_s=0)
    now = time.time()
    planner = Planner(config, store, Liveness(config, clock=lambda: now))
    saved = replication.BACKUP_SAMPLE
    replication.BACKUP_SAMPLE = sample
    quiet = logging.getLogger("directory_api.replication")
    level = quiet.level
    quiet.setLevel(logging.WARNING)  # a line per planned copy would be most of the output
    times, planned = [], []
    try:
        for r in range(rounds):
            holder = f"plan-peer-{(r * 7919) % n_peers:05d}"
            with store.engine.connect() as conn:
                started = time.perf_counter()
                planned.append(planner.plan_for_holder(holder, now, conn=conn))
                times.append(1000 * (time.perf_counter() - started))
                conn.rollback()
    finally:
        replication.BACKUP_SAMPLE = saved
        quiet.setLevel(level)
        store.dispose()
    return {"rounds": rounds, "ms_per_round": {"median": statistics.median(times), "min": min(times),
                                               "max": max(times), "n": len(times), "values": times},
            "copies_per_round": statistics.median(planned)}


def explain_round(db_url: str, n_peers: int) -> list[dict]:
    """The plans of a round's statements: the ring window and the backup candidates it tests."""
    from directory_api.store import Store, copies, plans
    from directory_api.store.ring import file_place
    from bench.vocab import file_digest

    store = Store(db_url, pool_size=1)
    now = time.time()
    try:
        with store.engine.connect() as conn:
            window = plans.explain(conn, copies.sample_statement(),
                                   {"place": file_place(file_digest(1)), "ls": now - 3600, "k": 32})
            conn.rollback()
        return [{"label": "ring window (32 live peers that accept uploads)", **window}]
    finally:
        store.dispose()


def run(cfg: PlanningBenchConfig, workdir: Path) -> dict:
    """Both databases, every peer count, both ways of choosing candidates; answers raw results."""
    from bench.directory import PG_SCHEMA, pg_available, pg_reset_schema, pg_url_with_schema

    workdir.mkdir(parents=True, exist_ok=True)
    results: dict = {"config": asdict(cfg), "runs": []}
    pg_problem = pg_available(cfg.pg_url)
    results["postgres_skipped"] = pg_problem
    for database in ("sqlite", "postgresql"):
        if database == "postgresql" and pg_problem:
            continue
        for n_peers in cfg.peers:
            if database == "sqlite":
                url = f"sqlite:///{workdir / f'planning-{n_peers}.db'}"
            else:
                pg_reset_schema(cfg.pg_url, PG_SCHEMA, create=True)
                url = pg_url_with_schema(cfg.pg_url, PG_SCHEMA)
            try:
                seconds = seed(url, n_peers, cfg.files_per_peer)
                from directory_api.replication import BACKUP_SAMPLE

                sampled = measure(url, n_peers, cfg.rounds, BACKUP_SAMPLE)
                everyone = measure(url, n_peers, cfg.rounds_every_peer, None)
                row = {"database": database, "peers": n_peers, "files": n_peers * cfg.files_per_peer,
                       "seed_s": seconds, "ring_sample": sampled, "every_live_peer": everyone,
                       "plans": explain_round(url, n_peers)}
                results["runs"].append(row)
                log.info("planning %s, %d peers: %.1f ms a round with the ring sample, %.1f ms testing every "
                         "live peer", database, n_peers, sampled["ms_per_round"]["median"],
                         everyone["ms_per_round"]["median"])
            finally:
                if database == "postgresql":
                    pg_reset_schema(cfg.pg_url, PG_SCHEMA, create=False)
                else:
                    for suffix in ("", "-wal", "-shm", "-writelock"):
                        Path(f"{workdir / f'planning-{n_peers}.db'}{suffix}").unlink(missing_ok=True)
    results["ratios"] = ratios(results)
    return results


def ratios(results: dict) -> dict:
    """Headline rows: per database, the cost of a round at the most peers over the fewest (target
    1.5: the same cost, within this machine's noise)."""
    out: dict = {}
    for database in ("sqlite", "postgresql"):
        runs = sorted((r for r in results.get("runs", []) if r["database"] == database), key=lambda r: r["peers"])
        if len(runs) < 2:
            continue
        small, big = runs[0], runs[-1]
        value = big["ring_sample"]["ms_per_round"]["median"] / small["ring_sample"]["ms_per_round"]["median"]
        out[f"planning_growth_{database}"] = {
            "value": value, "target": 1.5, "met": value <= 1.5, "lower_is_better": True,
            "target_op": "≤",
            "what": f"{database}: planning round at {big['peers']:,} / at {small['peers']:,} peers "
                    f"({big['ring_sample']['ms_per_round']['median']:.1f} / "
                    f"{small['ring_sample']['ms_per_round']['median']:.1f} ms; every live peer tested: "
                    f"{big['every_live_peer']['ms_per_round']['median']:.0f} ms at {big['peers']:,})"}
    return out


def main(argv=None) -> int:
    """Run only the planning benchmark (`python -m bench.planning [--quick]`)."""
    from bench.common import run_alone

    return run_alone(argv, __doc__.splitlines()[0], run, PlanningBenchConfig.for_mode, "p2p-bench-plan-")


if __name__ == "__main__":
    sys.exit(main())
