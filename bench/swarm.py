"""Swarm benchmark: single-holder `p2p get` against a baseline tree, and the multi-holder speed-up.

Single holder: for each size, a real directory and a real serving peer of this tree, and (with
--baseline PATH, e.g. an export of main made with `git archive main | tar -x -C PATH`) the same
pair run from the baseline tree on its own network; rounds alternate between the two clients.
Throughput is file size over wall time of the whole `p2p get` command; peak RSS is the
client's VmHWM. Multi-holder: four serving peers, each with an upload rate limit, share one
file; t(1)/t(4) is the median wall time of `p2p get --parallel 1` over that of `--parallel 4`.
Files live under --dir (default /dev/shm), so the disk's noise stays out of the figures.

    python -m bench.swarm [--baseline PATH] [--sizes 256,1024] [--rounds 3] [--dir /dev/shm]
"""
from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from bench.common import ROOT, MiB, Proc, run_timed, summary
from bench.transfer import make_file, wait_holder
from peer_node.hashing import sha256_file

log = logging.getLogger(__name__)


def _env(tree: Path) -> dict:
    return {"PYTHONPATH": str(tree), "P2P_CONFIG": ""}


@contextlib.contextmanager
def network(tree: Path, tmp: Path, folders: list[Path], args=()):
    """A directory and one serving peer per folder, all run from tree; yields the directory URL."""
    db = tmp / f"directory-{time.monotonic_ns()}.db"
    procs = []
    try:
        procs.append(Proc([sys.executable, "-m", "directory_api", "--host", "127.0.0.1", "--port", "0",
                           "--database", f"sqlite:///{db}", "--lease", "60", "--replication", "1"],
                          name="directory", cwd=tmp, env=_env(tree), ready=r"directory listening on (http://\S+)",
                          timeout=30))
        url = procs[0].match.group(1).rstrip("/")
        for n, folder in enumerate(folders):
            procs.append(Proc([sys.executable, "-m", "peer_node", "serve", "--peer-id", f"src{n}",
                               "--secret", "bench-secret", "--host", "127.0.0.1", "--port", "0",
                               "--folder", str(folder), "--directory", url, *args],
                              name=f"src{n}", cwd=tmp, env=_env(tree), ready=r"peer \S+ serving on (\S+)",
                              timeout=120))
        yield url
    finally:
        for proc in reversed(procs):
            proc.stop()


def fetch(tree: Path, url: str, sha: str, out: Path, cwd: Path, *extra) -> dict:
    """Time one `p2p get` run from tree; answers seconds and the client's peak RSS."""
    seconds, code, rss, output = run_timed(
        [sys.executable, "-m", "peer_node", "get", sha, "--out", str(out), "--directory", url, *extra],
        cwd=cwd, env=_env(tree), timeout=900)
    try:
        if code != 0:
            raise RuntimeError(f"p2p get ({tree}) failed ({code}):\n{output[-3000:]}")
        if sha256_file(out).hexdigest() != sha:  # checked again, outside the timed region
            raise RuntimeError(f"p2p get ({tree}) wrote other bytes")
    finally:
        with contextlib.suppress(FileNotFoundError):
            out.unlink()
    return {"seconds": seconds, "rss": rss}


def single_holder(size_mib: int, rounds: int, base: Path, baseline: Path | None) -> dict:
    """Single-holder throughput and client RSS of this tree (and the baseline), rounds interleaved."""
    share = base / f"share-{size_mib}"
    share.mkdir()
    sha = make_file(share / f"bench-{size_mib}.bin", size_mib * MiB, seed=size_mib)
    trees = {"this": ROOT} | ({"baseline": baseline} if baseline else {})
    rows = {name: [] for name in trees}
    try:
        with contextlib.ExitStack() as stack:
            urls = {}
            for name, tree in trees.items():
                folder = base / f"serve-{name}-{size_mib}"
                folder.mkdir()
                os.link(share / f"bench-{size_mib}.bin", folder / f"bench-{size_mib}.bin")
                urls[name] = stack.enter_context(network(tree, base, [folder]))
                wait_holder(urls[name], sha, "src0")
            for r in range(rounds):
                order = list(trees) if r % 2 == 0 else list(reversed(trees))
                for name in order:
                    got = fetch(trees[name], urls[name], sha, base / f"out-{name}.bin", base)
                    rows[name].append(got)
                    log.info("%5d MiB round %d %-8s %6.0f MiB/s  RSS %.0f MiB", size_mib, r + 1, name,
                             size_mib / got["seconds"], got["rss"] / MiB)
    finally:
        shutil.rmtree(share, ignore_errors=True)
    return {name: {"mib_s": summary(size_mib / g["seconds"] for g in got),
                   "peak_rss_mib": summary(g["rss"] / MiB for g in got)} for name, got in rows.items()}


def speedup(size_mib: int, rounds: int, base: Path, rate: str, holders: int = 4) -> dict:
    """t(1)/t(4): `--parallel 1` against `--parallel 4` over holders rate-limited peers."""
    share = base / f"swarm-{size_mib}"
    share.mkdir()
    sha = make_file(share / "swarm.bin", size_mib * MiB, seed=7)
    folders = []
    for n in range(holders):
        folders.append(base / f"holder-{n}")
        folders[-1].mkdir()
        os.link(share / "swarm.bin", folders[-1] / "swarm.bin")
    times = {1: [], 4: []}
    try:
        with network(ROOT, base, folders, args=("--upload-rate-limit", rate)) as url:
            for n in range(holders):
                wait_holder(url, sha, f"src{n}")
            for r in range(rounds):
                for parallel in ((1, 4) if r % 2 == 0 else (4, 1)):
                    got = fetch(ROOT, url, sha, base / "out-swarm.bin", base, "--parallel", str(parallel))
                    times[parallel].append(got["seconds"])
                    log.info("%d MiB from %d holders at %s/s each, --parallel %d: %.1f s",
                             size_mib, holders, rate, parallel, got["seconds"])
    finally:
        for folder in folders + [share]:
            shutil.rmtree(folder, ignore_errors=True)
    t1, t4 = summary(times[1]), summary(times[4])
    return {"size_mib": size_mib, "rate": rate, "t1_s": t1, "t4_s": t4, "speedup": t1["median"] / t4["median"]}


def main(argv=None) -> int:
    """Run the swarm benchmark and print its figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, help="a tree to compare the single-holder figures with")
    parser.add_argument("--sizes", default="256,1024", help="MiB, comma-separated (single holder)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dir", default="/dev/shm", help="where the files live")
    parser.add_argument("--swarm-size", type=int, default=128, help="MiB for the multi-holder run")
    parser.add_argument("--rate", default="16MiB", help="upload rate limit of each holder")
    parser.add_argument("--skip-single", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    results: dict = {"single": {}}
    with tempfile.TemporaryDirectory(prefix="p2p-bench-swarm-", dir=args.dir) as tmp:
        base = Path(tmp)
        if not args.skip_single:
            for size in (int(s) for s in args.sizes.split(",")):
                results["single"][size] = single_holder(size, args.rounds, base, args.baseline)
        results["speedup"] = speedup(args.swarm_size, args.rounds, base, args.rate)
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
