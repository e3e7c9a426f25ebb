"""Profile one directory workload under wrk with py-spy: `python -m bench.profile search --files 100000`.

Seeds a scratch SQLite (or PostgreSQL) store like bench/directory.py, serves it with the same
gunicorn settings, drives one workload with wrk and records every gunicorn worker with py-spy
for the same seconds. Writes a flame graph (SVG) and collapsed stacks per worker to --out, then
prints the functions with the most samples, inclusive and exclusive, summed over workers.
"""
from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import directory, transfer, vocab
from bench.common import MiB
from bench.profiling import print_top, py_spy, record, stop

log = logging.getLogger(__name__)


def profile_transfer(size_mib: int, out: Path) -> None:
    """Profile one `p2p get` of a size_mib file: the serving peer and the downloading client, with py-spy."""
    with tempfile.TemporaryDirectory(prefix="p2p-profile-xfer-") as tmp:
        tmp = Path(tmp)
        folder = tmp / "share"
        folder.mkdir()
        sha = transfer.make_file(folder / "f.bin", size_mib * MiB, seed=size_mib)
        with transfer.directory_server(tmp) as (directory_url, _d), \
                transfer.serving_peer("bench-profile-src", folder, directory_url, tmp) as peer:
            transfer.wait_holder(directory_url, sha, "bench-profile-src")
            # py-spy starts the client itself (so no sample is lost) and records the serving peer alongside
            server_spy = record(peer.pid, 600, out / "transfer-server", "raw")
            client = subprocess.run(
                [py_spy(), "record", "--rate", "200", "--format", "raw", "--output", str(out / "transfer-client.txt"),
                 "--", sys.executable, "-m", "peer_node", "get", sha, "--out", str(tmp / "got.bin"),
                 "--directory", directory_url],
                cwd=tmp, env=dict(os.environ, **transfer.PY_ENV), capture_output=True, text=True, timeout=600)
            server_spy.send_signal(2)  # SIGINT: py-spy writes what it has and exits
            stop(server_spy)
            if client.returncode != 0:
                raise RuntimeError(f"p2p get failed under py-spy: {client.stderr[-2000:]}")
    print_top([out / "transfer-client.txt"], f"p2p get client, {size_mib} MiB")
    print_top([out / "transfer-server.txt"], f"serving peer, {size_mib} MiB")


def main(argv=None) -> int:
    """Seed, serve, load and profile one workload; print the hottest functions."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workload", choices=("search", "lookup", "heartbeat", "ceiling", "transfer"))
    parser.add_argument("--size-mib", type=int, default=1024, help="file size for the transfer profile")
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--peers", type=int, default=None, help="default: files / 100")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--postgres", action="store_true", help="use PostgreSQL instead of SQLite")
    parser.add_argument("--out", type=Path, default=Path("bench-profile"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    args.out.mkdir(parents=True, exist_ok=True)
    if args.workload == "transfer":
        profile_transfer(args.size_mib, args.out)
        return 0
    cfg = directory.DirectoryBenchConfig(heartbeat_peers=128, warmup_s=1.0)
    peers = args.peers or max(10, args.files // 100)
    ds = vocab.generate(peers, args.files, replication=cfg.replication)
    with tempfile.TemporaryDirectory(prefix="p2p-profile-") as tmp:
        tmp = Path(tmp)
        if args.postgres:
            db_url = directory.pg_url_with_schema(cfg.pg_url, directory.PG_SCHEMA)
            directory.pg_reset_schema(cfg.pg_url, directory.PG_SCHEMA, create=True)
        else:
            db_url = f"sqlite:///{tmp / 'profile.db'}"
        try:
            facts = directory.seed(db_url, ds, login_peers=min(cfg.heartbeat_peers, peers))
            env = directory.directory_env(db_url, cfg)
            with directory.gunicorn(directory.DIRECTORY_APP, env, cfg, name="gunicorn-profile") as (base, proc):
                tokens = []
                if args.workload == "heartbeat":
                    tokens, _ = directory.login_tokens(base, ds, min(cfg.heartbeat_peers, peers),
                                                       facts["seeded_peers_can_login"])
                files = {
                    "queries": str(directory.write_lines(tmp / "q.txt", vocab.encoded_queries())),
                    "digests": str(directory.write_lines(tmp / "d.txt", (f["sha256"] for f in ds.files[:5000]))),
                    "tokens": str(directory.write_lines(tmp / "t.txt", tokens or ["none"])),
                }
                directory.check_endpoints(base, ds, tokens)
                import psutil

                workers = [c.pid for c in psutil.Process(proc.pid).children()]
                spies = []
                for pid in workers:
                    spies.append(record(pid, args.seconds, args.out / f"{args.workload}-{pid}", "flamegraph"))
                    spies.append(record(pid, args.seconds, args.out / f"{args.workload}-{pid}", "raw"))
                time.sleep(0.5)
                res = directory.run_workload(args.workload, base, files, cfg, args.seconds, seed=1)
                for spy in spies:
                    stop(spy, timeout=args.seconds + 30)
        finally:
            if args.postgres:
                directory.pg_reset_schema(cfg.pg_url, directory.PG_SCHEMA, create=False)
    print(f"{args.workload} at {args.files:,} files: {res['rps']:.0f} req/s, p50 {res['p50_ms']} ms, "
          f"p99 {res['p99_ms']} ms")
    print_top(sorted(args.out.glob(f"{args.workload}-*.txt")), f"gunicorn workers, {args.workload}")
    print(f"\nflame graphs: {', '.join(str(p) for p in sorted(args.out.glob(f'{args.workload}-*.svg')))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
