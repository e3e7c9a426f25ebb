"""Reliability of backup peers (issue 5): how many files are lost, and downloads fail, when holders crash.

One real directory (R = 2, short lease) and a pool of four real `p2p serve` peers on loopback.
Each round: write a new file of random bytes into a random live peer's folder; wait until the
directory lists two live holders (time-to-R, from the write); SIGKILL one of them, chosen at
random; fetch the file at once with `python -m peer_node get SHA` (which must fail over from the
dead holder on its own) and verify its sha256; wait until the directory lists two live holders
again (time-to-restore, from the kill); then start the killed peer again, under the same id,
with its folder wiped every other time on average (a lost disk), so the pool is back at four.

Before each kill, every file of the run must be back at R (one failure at a time, as R = 2 promises).
A file is lost when no live peer holds it (right after the kill, or at the end of the run, for
every file of every round); a download failed when `get` exits non-zero or writes other bytes.
Run alone: `python -m bench.reliability [--rounds N] [--quick] [--json PATH]`; the runner calls run().
"""
from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import ROOT, Proc, http_json, summary

log = logging.getLogger(__name__)

PY_ENV = {"PYTHONPATH": str(ROOT), "P2P_CONFIG": "", "P2P_RESCAN_INTERVAL": "0.3"}
LEASE_S = 2.0
REPLICATION = 2
POOL = 4
FULL_ROUNDS, QUICK_ROUNDS = 50, 10
WAIT_R_S = 30.0          # a round that does not reach R (or restore it) in this time counts as such
GET_TIMEOUT_S = 60.0


class Pool:
    """The directory and the peers of one run; every process is stopped by its own PID in close()."""

    def __init__(self, workdir: Path, lease_s: float):
        """Start the directory; peers come with start_peer()."""
        self.workdir, self.lease_s = workdir, lease_s
        self.peers: dict[str, Proc] = {}
        self.directory = Proc(
            [sys.executable, "-m", "directory_api", "--host", "127.0.0.1", "--port", "0",
             "--database", f"sqlite:///{workdir / 'directory.db'}", "--lease", str(lease_s),
             "--replication", str(REPLICATION), "--open-downloads"],  # p2p get asks anonymous tickets
            name="directory", cwd=workdir, env=PY_ENV, ready=r"directory listening on (http://\S+)", timeout=60)
        self.url = self.directory.match.group(1).rstrip("/")

    def folder(self, peer_id: str) -> Path:
        """The shared folder of peer_id (kept across restarts unless wiped)."""
        return self.workdir / "peers" / peer_id

    def start_peer(self, peer_id: str, wipe: bool = False) -> Proc:
        """Start (or start again) peer_id on a free loopback port and wait until it is live."""
        folder = self.folder(peer_id)
        if wipe:
            shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True, exist_ok=True)
        proc = Proc([sys.executable, "-m", "peer_node", "serve", "--peer-id", peer_id, "--secret", "bench",
                     "--host", "127.0.0.1", "--port", "0", "--folder", str(folder), "--directory", self.url],
                    name=peer_id, cwd=self.workdir, env=PY_ENV, ready=r"peer \S+ serving on", timeout=60)
        self.peers[peer_id] = proc
        self.wait(lambda: peer_id in self.live_peers(), 15.0)
        return proc

    def kill(self, peer_id: str) -> None:
        """SIGKILL peer_id, as a crash would."""
        proc = self.peers.pop(peer_id)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.proc.wait(timeout=10)  # reaped: no signal is ever sent to this PID again

    def live_peers(self) -> list[str]:
        """peer_ids the directory lists as live."""
        status, body = http_json("GET", f"{self.url}/api/v1/peers", timeout=5)
        return sorted(p["peer_id"] for p in body) if status == 200 else []

    def holders(self, digest: str) -> list[str]:
        """Live holders of digest according to the directory."""
        status, body = http_json("GET", f"{self.url}/api/v1/files/{digest}", timeout=5)
        return sorted(h["peer_id"] for h in body["holders"]) if status == 200 else []

    def replicated(self, digest: str, without: str | None = None) -> list[str] | None:
        """The live holders of digest once there are R of them (none of them `without`), else None."""
        holders = self.holders(digest)
        return holders if len(holders) >= REPLICATION and without not in holders else None

    @staticmethod
    def wait(condition, timeout: float, interval: float = 0.05):
        """Poll condition until it answers something true or timeout passes; answers it or None."""
        deadline = time.monotonic() + timeout
        while True:
            value = condition()
            if value or time.monotonic() >= deadline:
                return value or None
            time.sleep(interval)

    def close(self) -> None:
        """Stop every peer, then the directory, each by its PID."""
        for proc in list(self.peers.values()):
            proc.stop()
        self.peers.clear()
        self.directory.stop()


def fetch(url: str, digest: str, out: Path, cwd: Path) -> tuple[bool, str]:
    """`python -m peer_node get` the file into out; answers (verified, detail)."""
    try:
        r = subprocess.run([sys.executable, "-m", "peer_node", "get", digest, "--out", str(out),
                            "--directory", url, "--json", "--peer-id", "bench-reader", "--secret",
                            "bench-reader-secret"], cwd=cwd, env={**os.environ, **PY_ENV},  # tickets: a client
                           capture_output=True, text=True, timeout=GET_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return False, f"timed out after {GET_TIMEOUT_S} s"
    if r.returncode != 0:
        return False, (r.stderr.strip().splitlines() or ["exit %d" % r.returncode])[-1]
    got = hashlib.sha256(out.read_bytes()).hexdigest()
    out.unlink()
    if got != digest:
        return False, f"wrote sha256 {got}"
    return True, f"sources {json.loads(r.stdout).get('sources')}"


def one_round(pool: Pool, n: int, rng: random.Random, stats: dict) -> None:
    """Share, wait for R, kill a holder, download from the survivors, wait for restore, restart."""
    owner = rng.choice(sorted(pool.peers))
    data = rng.randbytes(rng.randint(16 * 1024, 256 * 1024))
    digest = hashlib.sha256(data).hexdigest()
    name = f"round-{n:03d}.bin"
    stats["files"][digest] = name
    written = time.monotonic()
    tmp = pool.folder(owner) / f".{name}.part"  # write then rename: a rescan never indexes half a file
    tmp.write_bytes(data)
    os.rename(tmp, pool.folder(owner) / name)

    holders = pool.wait(lambda: pool.replicated(digest), WAIT_R_S)
    if holders is None:
        stats["not_replicated"] += 1
        holders = pool.holders(digest) or [owner]
    else:
        stats["time_to_r"].append(time.monotonic() - written)

    # R = 2 survives one failure at a time: a second kill before the last one's copies are
    # restored is a double failure no replication target of 2 promises to survive. So kill
    # only once every file of the run is back at R (the restarted peer may have lost its disk).
    if pool.wait(lambda: all(len(pool.holders(d)) >= REPLICATION for d in stats["files"]), WAIT_R_S) is None:
        stats["not_settled"] += 1
    holders = pool.holders(digest) or holders
    victim = rng.choice(holders)
    survivors = [p for p in holders if p != victim]
    pool.kill(victim)
    killed = time.monotonic()
    if not survivors:
        stats["lost"].add(digest)
    ok, detail = fetch(pool.url, digest, pool.workdir / f"get-{n}.bin", pool.workdir)
    if not ok:
        stats["failed"] += 1
        log.warning("round %d: download of %s failed: %s", n, name, detail)

    restored = pool.wait(lambda: pool.replicated(digest, without=victim), WAIT_R_S)
    if restored is None:
        stats["not_restored"] += 1
    else:
        stats["time_to_restore"].append(time.monotonic() - killed)
    wipe = rng.random() < 0.5
    pool.start_peer(victim, wipe=wipe)
    log.info("round %d: %s on %s, killed %s, get %s, restored on %s, %s restarted%s", n, name, owner, victim,
             "ok" if ok else "FAILED", restored, victim, " with a wiped folder" if wipe else "")


def final_check(pool: Pool, stats: dict) -> None:
    """Count every file of the run that no live peer holds once the network has settled."""
    pool.wait(lambda: all(len(pool.holders(d)) >= REPLICATION for d in stats["files"]), WAIT_R_S, interval=0.5)
    for digest in stats["files"]:
        held = len(pool.holders(digest))
        if held == 0:
            stats["lost"].add(digest)
        elif held < REPLICATION:
            stats["below_target_at_end"] += 1


def run(rounds: int | None = None, quick: bool = False, workdir: Path | None = None, seed: int = 5) -> dict:
    """Run the reliability rounds (default 50, quick 10) and answer the figures as a dict."""
    rounds = rounds or (QUICK_ROUNDS if quick else FULL_ROUNDS)
    rng = random.Random(seed)
    stats = {"files": {}, "lost": set(), "failed": 0, "not_replicated": 0, "not_restored": 0, "not_settled": 0,
             "below_target_at_end": 0, "time_to_r": [], "time_to_restore": []}
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="p2p-bench-rel-", dir=workdir) as tmp:
        pool = None
        try:
            pool = Pool(Path(tmp), LEASE_S)
            for i in range(POOL):
                pool.start_peer(f"p{i}")
            for n in range(1, rounds + 1):
                one_round(pool, n, rng, stats)
            final_check(pool, stats)
        finally:
            if pool is not None:
                pool.close()
    ttr, ttre = summary(stats["time_to_r"]), summary(stats["time_to_restore"])
    return {
        "rounds": rounds,
        "lost": len(stats["lost"]),
        "failed": stats["failed"],
        "not_replicated": stats["not_replicated"],
        "not_restored": stats["not_restored"],
        "not_settled": stats["not_settled"],
        "below_target_at_end": stats["below_target_at_end"],
        "median_time_to_r_s": ttr["median"],
        "median_time_to_restore_s": ttre["median"],
        "time_to_r_s": ttr,
        "time_to_restore_s": ttre,
        "lease_s": LEASE_S,
        "replication": REPLICATION,
        "pool": POOL,
        "seed": seed,
        "seconds": time.monotonic() - started,
    }


def summary_line(res: dict) -> str:
    """The one-line human summary of run()'s answer."""
    def s(v):
        return "-" if v is None else f"{v:.2f} s"

    return (f"reliability: {res['rounds']} rounds, {res['lost']} files lost, {res['failed']} downloads failed "
            f"(R={res['replication']}, lease {res['lease_s']:g} s, pool {res['pool']}); "
            f"median time-to-R {s(res['median_time_to_r_s'])}, "
            f"median time-to-restore {s(res['median_time_to_restore_s'])}; {res['seconds']:.0f} s")


def main(argv=None) -> int:
    """Command line: run, print the summary line and the JSON; exit 1 unless nothing was lost or failed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=None, help=f"rounds (default {FULL_ROUNDS}, quick {QUICK_ROUNDS})")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_ROUNDS} rounds")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this file")
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    if args.rounds is not None and args.rounds < 1:
        parser.error("--rounds must be at least 1")
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    res = run(args.rounds, args.quick, seed=args.seed)
    print(summary_line(res))
    text = json.dumps(res, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0 if res["lost"] == 0 and res["failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
