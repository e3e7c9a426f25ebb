"""Profile one directory workload under wrk with py-spy: `python -m bench.profile search --files 100000`.

Seeds a scratch SQLite (or PostgreSQL) store like bench/directory.py, serves it with the same
gunicorn settings, drives one workload with wrk and records every gunicorn worker with py-spy
for the same seconds. Writes a flame graph (SVG) and collapsed stacks per worker to --out, then
prints the functions with the most samples, inclusive and exclusive, summed over workers.
"""
from __future__ import annotations

import argparse
import collections
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import directory, vocab

log = logging.getLogger(__name__)


def py_spy() -> str:
    """The py-spy executable (installed by requirements-bench.txt)."""
    exe = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not os.path.exists(exe):
        raise RuntimeError("py-spy is not installed: pip install -r requirements-bench.txt")
    return exe


def record(pid: int, seconds: float, out_base: Path, fmt: str) -> subprocess.Popen:
    """Start `py-spy record` on pid for seconds, writing out_base.<fmt>; answers the Popen."""
    suffix = {"flamegraph": "svg", "raw": "txt", "speedscope": "json"}[fmt]
    return subprocess.Popen([py_spy(), "record", "--pid", str(pid), "--duration", str(int(seconds)),
                             "--rate", "200", "--format", fmt, "--nonblocking",
                             "--output", f"{out_base}.{suffix}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def top_functions(collapsed_files, n: int = 25) -> tuple[list, list, int]:
    """(inclusive, exclusive, total samples) from py-spy collapsed stacks ("a;b;c COUNT" lines)."""
    incl: collections.Counter = collections.Counter()
    excl: collections.Counter = collections.Counter()
    total = 0
    for path in collapsed_files:
        for line in Path(path).read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if not stack or not count.isdigit():
                continue
            c = int(count)
            total += c
            frames = stack.split(";")
            for f in set(frames):
                incl[f] += c
            excl[frames[-1]] += c
    return incl.most_common(n), excl.most_common(n), total


def summarize_profile(collapsed, own_code: str, n: int = 12) -> dict:
    """Top frames of collapsed stacks as shares: exclusive overall, and inclusive within our own package."""
    incl, excl, total = top_functions(collapsed, n=400)
    if not total:
        return {"samples": 0}
    return {
        "samples": total,
        "exclusive": [[name, round(100 * c / total, 1)] for name, c in excl[:n]],
        "inclusive_own": [[name, round(100 * c / total, 1)] for name, c in incl if own_code in name][:n],
    }


def print_top(collapsed, label: str) -> None:
    """Print the hottest functions of some collapsed-stack files."""
    incl, excl, total = top_functions(collapsed)
    if not total:
        print(f"{label}: no samples")
        return
    print(f"\n{label}: {total} samples over {len(collapsed)} process(es); inclusive:")
    for name, c in incl:
        print(f"  {100 * c / total:5.1f}%  {name}")
    print("exclusive (frame at the top of the stack):")
    for name, c in excl:
        print(f"  {100 * c / total:5.1f}%  {name}")


def profile_transfer(size_mib: int, out: Path) -> None:
    """Profile one `p2p get` of a size_mib file: the serving peer and the downloading client, with py-spy."""
    from bench import transfer
    from bench.common import MiB

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
            try:
                server_spy.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server_spy.kill()
                server_spy.wait()
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
            env = {"P2P_DATABASE_URL": db_url, "P2P_LEASE_S": str(cfg.lease_s),
                   "P2P_REPLICATION": str(cfg.replication)}
            with directory.gunicorn("directory_api:create_app()", env, cfg, name="gunicorn-profile") as (base, proc):
                tokens = []
                if args.workload == "heartbeat":
                    tokens, _ = directory.login_tokens(base, ds, min(cfg.heartbeat_peers, peers),
                                                       facts["seeded_peers_can_login"])
                files = {
                    "queries": str(directory._write_lines(tmp / "q.txt", vocab.encoded_queries())),
                    "digests": str(directory._write_lines(tmp / "d.txt", (f["sha256"] for f in ds.files[:5000]))),
                    "tokens": str(directory._write_lines(tmp / "t.txt", tokens or ["none"])),
                }
                directory.check_endpoints(base, ds, tokens)
                import psutil

                workers = [c.pid for c in psutil.Process(proc.pid).children()]
                spies = []
                for pid in workers:
                    spies.append(record(pid, args.seconds, args.out / f"{args.workload}-{pid}", "flamegraph"))
                    spies.append(record(pid, args.seconds, args.out / f"{args.workload}-{pid}", "raw"))
                time.sleep(0.5)
                res = directory._wrk_for(args.workload, base, files, cfg, args.seconds, seed=1)
                for spy in spies:
                    try:
                        spy.wait(timeout=args.seconds + 30)
                    except subprocess.TimeoutExpired:
                        spy.kill()
                        spy.wait()
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
