"""Swarm benchmark (issue 11): one holder against nginx, four rate-limited holders against one, memory, a corrupt holder.

Every figure comes from real processes on loopback: a directory (`python -m directory_api`, open
downloads, so `p2p get` runs with anonymous download tickets as on a public network) and serving
peers (`python -m peer_node serve`); files live under `dir` (default /dev/shm), so the disk's noise
stays out of the figures. Four measurements:

- single holder: `p2p get` of `big_mib` and `small_mib` from one unlimited peer against nginx ->
  curl -> bench/sink.py (hash, write, fsync), interleaved round by round (bench/transfer.py's
  reference); throughput is file size over the wall time of the whole command, start-up included.
- speed-up: four peers each limited to `rate` bytes/s share one file; t(1)/t(4) is the median wall
  time of `p2p get --parallel 1` over that of `--parallel 4`, the two alternating.
- memory: the client's peak RSS (VmHWM) fetching `big_mib` and `rss_small_mib` from four unlimited
  peers at once; not growing with size = the ratio of the two.
- corrupt holder: one of four holders has its copy corrupted on disk after indexing (one byte flipped
  in every piece, size and mtime kept); the cost is the bytes `p2p get --json` fetched beyond the
  file's size, in pieces.

    python -m bench.swarm [--quick] [--dir /dev/shm]
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
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.common import ROOT, MiB, Proc, free_port, http_json, run_timed, summary
from bench.transfer import cli_startup_s, fetch_nginx, make_file, nginx, wait_holder
from peer_node.hashing import sha256_file

log = logging.getLogger(__name__)

# P2P_CONFIG empty: no peerConfig.ini is read (the processes run in a scratch directory anyway).
PY_ENV = {"PYTHONPATH": str(ROOT), "P2P_CONFIG": ""}


@dataclass
class SwarmBenchConfig:
    """Sizes (MiB), rates and rounds; presets from for_mode()."""

    big_mib: int = 1024
    small_mib: int = 256
    rss_small_mib: int = 64
    rounds: int = 3
    holders: int = 4
    speedup_mib: int = 192  # 24 s at one holder's rate: the start-up (~0.5-0.9 s here) is paid once either way
    rate: str = "8MiB"  # upload rate limit of each holder in the speed-up run
    speedup_rounds: int = 3
    corrupt_mib: int = 64
    corrupt_rounds: int = 3
    dir: str = "/dev/shm"

    @classmethod
    def for_mode(cls, quick: bool) -> "SwarmBenchConfig":
        """The preset for `--quick` or the full run (quick keeps the speed-up run's seconds per round)."""
        if quick:
            return cls(big_mib=256, small_mib=128, rounds=2, speedup_mib=96, rate="4MiB", speedup_rounds=2,
                       corrupt_rounds=2)
        return cls()


@contextlib.contextmanager
def network(tmp: Path, folders: list[Path], peer_args=(), directory_args=(), env=None):
    """A directory and one serving peer per folder (peer ids src0, src1, ...); yields (directory URL, peers)."""
    env = {**PY_ENV, **(env or {})}
    db = tmp / f"directory-{time.monotonic_ns()}.db"
    procs = []
    try:
        # A port of our own choosing: a line of gunicorn's workers may run into the ready line, digits and all.
        port = free_port()
        procs.append(Proc([sys.executable, "-m", "directory_api", "--host", "127.0.0.1", "--port", str(port),
                           "--database", f"sqlite:///{db}", "--lease", "60", "--replication", "1",
                           "--open-downloads", *directory_args],
                          name="directory", cwd=tmp, env=env, ready=r"directory listening on (https?)://",
                          timeout=60))
        url = f"{procs[0].match.group(1)}://127.0.0.1:{port}"
        for n, folder in enumerate(folders):
            procs.append(Proc([sys.executable, "-m", "peer_node", "serve", "--peer-id", f"src{n}",
                               "--secret", "bench-secret", "--host", "127.0.0.1", "--port", "0",
                               "--folder", str(folder), "--directory", url, *peer_args],
                              name=f"src{n}", cwd=tmp, env=env, ready=r"peer \S+ serving on (\S+)", timeout=120))
        yield url, procs[1:]
    finally:
        for proc in reversed(procs):
            proc.stop()


def fetch(url: str, sha: str, out: Path, cwd: Path, *extra, env=None) -> dict:
    """Time one `p2p get --json` run; answers seconds, the client's peak RSS and the command's JSON result."""
    report = cwd / f"get-{time.monotonic_ns()}.json"
    with open(report, "wb") as fh:
        seconds, code, rss, output = run_timed(
            [sys.executable, "-m", "peer_node", "get", sha, "--out", str(out), "--directory", url, "--json", *extra],
            cwd=cwd, env={**PY_ENV, **(env or {})}, timeout=900, stdout=fh)
    try:
        if code != 0:
            raise RuntimeError(f"p2p get failed ({code}):\n{output[-3000:]}")
        if sha256_file(out).hexdigest() != sha:  # checked again, outside the timed region
            raise RuntimeError("p2p get wrote other bytes")
        result = json.loads(report.read_text())
    finally:
        for path in (out, report):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
    return {"seconds": seconds, "rss": rss, "result": result}


def _linked(src: Path, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    os.link(src, folder / src.name)
    return folder


def single_holder(cfg: SwarmBenchConfig, base: Path, files: dict) -> dict:
    """p2p get from one unlimited holder against nginx -> curl -> sink, per size, rounds interleaved."""
    www = base / "www"
    folder = base / "single"
    for size_mib in (cfg.big_mib, cfg.small_mib):
        _linked(files[size_mib][0], folder)
        _linked(files[size_mib][0], www)
    rows = {size: [] for size in (cfg.big_mib, cfg.small_mib)}
    with network(base, [folder]) as (url, _), nginx(www, base) as nginx_url:
        for size_mib in rows:
            wait_holder(url, files[size_mib][1], "src0")
        for r in range(cfg.rounds):
            for size_mib, got in rows.items():
                path, sha = files[size_mib]
                row = {}
                for method in (("p2p", "nginx") if r % 2 == 0 else ("nginx", "p2p")):
                    out = base / f"out-{method}.bin"
                    if method == "p2p":
                        row["p2p_s"] = fetch(url, sha, out, base)["seconds"]
                    else:
                        try:
                            row["nginx_s"] = fetch_nginx(f"{nginx_url}/{path.name}", sha, size_mib * MiB, out,
                                                         fsync=True)["seconds"]
                        finally:
                            with contextlib.suppress(FileNotFoundError):
                                out.unlink()
                row["ratio"] = row["nginx_s"] / row["p2p_s"]
                got.append(row)
                log.info("single holder %5d MiB round %d: p2p %6.0f MiB/s  nginx %6.0f MiB/s  ratio %.2f",
                         size_mib, r + 1, size_mib / row["p2p_s"], size_mib / row["nginx_s"], row["ratio"])
    startup = summary(cli_startup_s(base) for _ in range(3))
    out = {"cli_startup_s": startup, "sizes": []}
    for size_mib, got in rows.items():
        out["sizes"].append({
            "size_mib": size_mib, "rounds": got,
            "p2p_mib_s": summary(size_mib / g["p2p_s"] for g in got),
            "p2p_mib_s_excl_startup": summary(size_mib / max(1e-6, g["p2p_s"] - startup["median"]) for g in got),
            "nginx_mib_s": summary(size_mib / g["nginx_s"] for g in got),
            "ratio": summary(g["ratio"] for g in got),
            "ratio_excl_startup": summary(g["nginx_s"] / max(1e-6, g["p2p_s"] - startup["median"]) for g in got),
        })
    return out


def speedup(cfg: SwarmBenchConfig, base: Path, files: dict) -> dict:
    """t(1)/t(4): `--parallel 1` against `--parallel N` over N rate-limited holders, alternating."""
    path, sha = files[cfg.speedup_mib]
    folders = [_linked(path, base / f"limited-{n}") for n in range(cfg.holders)]
    times = {1: [], cfg.holders: []}
    with network(base, folders, peer_args=("--upload-rate-limit", cfg.rate)) as (url, _):
        for n in range(cfg.holders):
            wait_holder(url, sha, f"src{n}")
        for r in range(cfg.speedup_rounds):
            for parallel in ((1, cfg.holders) if r % 2 == 0 else (cfg.holders, 1)):
                got = fetch(url, sha, base / "out-speedup.bin", base, "--parallel", str(parallel))
                times[parallel].append(got["seconds"])
                log.info("%d MiB from %d holders at %s/s each, --parallel %d: %.1f s",
                         cfg.speedup_mib, cfg.holders, cfg.rate, parallel, got["seconds"])
    t1, tn = summary(times[1]), summary(times[cfg.holders])
    start = cli_startup_s(base)
    return {"size_mib": cfg.speedup_mib, "rate": cfg.rate, "holders": cfg.holders, "t1_s": t1, "tn_s": tn,
            "speedup": t1["median"] / tn["median"],
            "paired": summary(a / b for a, b in zip(times[1], times[cfg.holders])),
            "cli_startup_s": start, "speedup_excl_startup": (t1["median"] - start) / max(1e-6, tn["median"] - start)}


def corrupt_in_place(path: Path, piece_size: int) -> None:
    """Flip one byte in the middle of every piece of path, keeping its size and mtime (bit rot the index misses)."""
    st = path.stat()
    with open(path, "r+b") as fh:
        for offset in range(0, st.st_size, piece_size):
            at = offset + min(piece_size, st.st_size - offset) // 2
            fh.seek(at)
            byte = fh.read(1)
            fh.seek(at)
            fh.write(bytes([byte[0] ^ 0xFF]))
        fh.flush()
        os.fsync(fh.fileno())
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def memory_and_corrupt(cfg: SwarmBenchConfig, base: Path, files: dict) -> dict:
    """Client peak RSS with N unlimited holders (big and small file), then the cost of a corrupt holder among N."""
    rss_sizes = (cfg.big_mib, cfg.rss_small_mib)
    folders = [base / f"holder-{n}" for n in range(cfg.holders)]
    for size_mib in rss_sizes:
        for folder in folders:
            _linked(files[size_mib][0], folder)
    # The corrupt test file, of its own content (a holder offering the same sha256 under another,
    # good, name might serve that one): src0 has a copy of its own, every other holder links the good one.
    cpath = base / "share" / f"corrupt-{cfg.corrupt_mib}MiB.bin"
    csha = make_file(cpath, cfg.corrupt_mib * MiB, seed=7)
    bad = folders[0] / cpath.name
    shutil.copyfile(cpath, bad)
    for folder in folders[1:]:
        os.link(cpath, folder / cpath.name)
    rss = {size: [] for size in rss_sizes}
    corrupt_rounds = []
    with network(base, folders) as (url, _):
        for n in range(cfg.holders):
            for sha in (*(files[s][1] for s in rss_sizes), csha):
                wait_holder(url, sha, f"src{n}")
        one_source = []
        for r in range(cfg.rounds):
            for size_mib in (rss_sizes if r % 2 == 0 else rss_sizes[::-1]):
                got = fetch(url, files[size_mib][1], base / "out-rss.bin", base, "--parallel", str(cfg.holders))
                rss[size_mib].append(got["rss"])
                log.info("%d holders, %d MiB: %.1f s, client peak RSS %.0f MiB", cfg.holders, size_mib,
                         got["seconds"], got["rss"] / MiB)
            # the same big file from one of them, for context: what the other sources add
            got = fetch(url, files[cfg.big_mib][1], base / "out-rss.bin", base, "--parallel", "1")
            one_source.append(got["rss"])
            log.info("1 of %d holders, %d MiB: %.1f s, client peak RSS %.0f MiB", cfg.holders, cfg.big_mib,
                     got["seconds"], got["rss"] / MiB)
        status, record = http_json("GET", f"{url}/api/v1/files/{csha}")
        piece_size = int(record["piece_size"])
        corrupt_in_place(bad, piece_size)  # after it was indexed: the holder still offers it as csha
        size = cfg.corrupt_mib * MiB
        for r in range(cfg.corrupt_rounds):
            status, record = http_json("GET", f"{url}/api/v1/files/{csha}")
            listed = any(h.get("peer_id") == "src0" for h in (record or {}).get("holders", []))
            got = fetch(url, csha, base / "out-corrupt.bin", base, "--parallel", str(cfg.holders))
            res = got["result"]
            extra = max(0, int(res.get("fetched", 0)) - size)
            corrupt_rounds.append({
                "seconds": got["seconds"], "fetched": res.get("fetched"), "extra_bytes": extra,
                "extra_pieces": extra / piece_size, "banned": res.get("banned"),
                "refetched": res.get("refetched"), "corrupt_holder_listed": listed,
                "corrupt_holder_used": "src0" in (res.get("holders") or {}),
                "holders": {k: {f: v.get(f) for f in ("state", "received", "verified")}
                            for k, v in (res.get("holders") or {}).items()}})
            log.info("corrupt holder among %d, %d MiB: fetched %d bytes beyond the file (%.2f pieces), banned %s",
                     cfg.holders, cfg.corrupt_mib, extra, extra / piece_size, sorted(res.get("banned") or {}))
    used = [c for c in corrupt_rounds if c["corrupt_holder_used"]]
    return {
        "rss": [{"size_mib": s, "client_peak_rss_mib": summary(v / MiB for v in rss[s])} for s in rss_sizes],
        "rss_one_source_mib": summary(v / MiB for v in one_source),
        "corrupt": {"size_mib": cfg.corrupt_mib, "piece_size": piece_size, "rounds": corrupt_rounds,
                    "rounds_with_corrupt_holder": len(used),
                    "extra_pieces": summary(c["extra_pieces"] for c in used)},
    }


def ratios(res: dict, cfg: SwarmBenchConfig) -> dict:
    """Headline figures of the swarm benchmark with their targets."""
    out = {}
    sizes = {s["size_mib"]: s for s in (res.get("single") or {}).get("sizes", [])}
    for size_mib, target, what in ((cfg.big_mib, 1.3, "one holder, no limit"),
                                   (cfg.small_mib, 1.0, "one holder, whole process incl. start-up")):
        if size_mib in sizes:
            r = sizes[size_mib]["ratio"]
            out[f"single_{size_mib}_over_nginx"] = {
                "value": r["median"], "min": r["min"], "max": r["max"], "target": target,
                "met": r["median"] >= target,
                "what": f"`p2p get` / nginx → curl → sink (/dev/shm), {size_mib} MiB, {what} (paired per round)"}
    sp = res.get("speedup")
    if sp:
        out["speedup"] = {"value": sp["speedup"], "min": sp["paired"]["min"], "max": sp["paired"]["max"],
                          "target": 3.5, "met": sp["speedup"] >= 3.5,
                          "what": f"swarm speed-up t(1)/t({sp['holders']}), {sp['holders']} holders at "
                                  f"{sp['rate']}/s each, {sp['size_mib']} MiB (medians; [paired min–max])"}
    mem = res.get("memory") or {}
    peaks = {r["size_mib"]: r["client_peak_rss_mib"] for r in mem.get("rss", [])}
    if cfg.big_mib in peaks:
        big = peaks[cfg.big_mib]
        out["client_rss_4_sources_mib"] = {
            "value": big["max"], "target": 150, "met": big["max"] < 150, "lower_is_better": True,
            "what": f"client peak RSS, {cfg.holders} sources, {cfg.big_mib} MiB (worst round, MiB)"}
        small = peaks.get(cfg.rss_small_mib)
        if small and small["max"]:
            growth = big["max"] / small["max"]
            out["client_rss_growth"] = {
                "value": growth, "target": 1.2, "met": growth <= 1.2, "lower_is_better": True, "target_op": "≤",
                "what": f"client peak RSS, {cfg.holders} sources: {cfg.big_mib} MiB / {cfg.rss_small_mib} MiB"}
    cor = mem.get("corrupt")
    if cor:
        ex = cor["extra_pieces"]
        out["corrupt_extra_pieces"] = {
            "value": ex["max"], "target": 2.0, "met": ex["max"] is not None and ex["max"] <= 2.0,
            "lower_is_better": True, "target_op": "≤",
            "what": f"extra bytes fetched with a corrupt holder among {cfg.holders}, in pieces of "
                    f"{cor['piece_size'] // MiB} MiB (worst of {cor['rounds_with_corrupt_holder']} rounds)"}
    return out


def run(cfg: SwarmBenchConfig, workdir: Path | None = None) -> dict:
    """Run the swarm benchmark with its files under cfg.dir; answers raw results and headline ratios."""
    started = time.time()
    results: dict = {"config": asdict(cfg)}
    with tempfile.TemporaryDirectory(prefix="p2p-bench-swarm-", dir=cfg.dir) as tmp:
        base = Path(tmp)
        os.chmod(base, 0o755)  # nginx's worker may run as another user
        share = base / "share"
        share.mkdir(mode=0o755)
        files = {}
        for size_mib in sorted({cfg.big_mib, cfg.small_mib, cfg.rss_small_mib, cfg.speedup_mib}):
            path = share / f"swarm-{size_mib}MiB.bin"
            files[size_mib] = (path, make_file(path, size_mib * MiB, seed=1000 + size_mib))
            os.chmod(path, 0o644)
        results["single"] = single_holder(cfg, base, files)
        results["speedup"] = speedup(cfg, base, files)
        results["memory"] = memory_and_corrupt(cfg, base, files)
    results["ratios"] = ratios(results, cfg)
    results["finished"] = time.time()
    results["seconds"] = results["finished"] - started
    return results


def main(argv=None) -> int:
    """Run only the swarm benchmark and print its headline ratios as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--dir", default="/dev/shm", help="where the files live")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    cfg = SwarmBenchConfig.for_mode(args.quick)
    cfg.dir = args.dir
    print(json.dumps(run(cfg)["ratios"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
