"""Trust benchmark (issue 12): what tickets and TLS cost a big `p2p get`, and logins with the failed-login limiter.

Cost: two networks side by side, each a real directory and one real serving peer of the same file
(hard links under `dir`, default /dev/shm). *Open*: plain HTTP and gRPC, the directory gives
anonymous download tickets (--open-downloads) and the peer serves without them
(P2P_REQUIRE_TICKETS=0). *Closed*: certificates from `p2p certs`, the directory over HTTPS
(--certfile/--keyfile, probing peers with --peer-ca), the peer serving gRPC over TLS and demanding a
ticket on every Download; `p2p get` logs in with a client session, asks for a ticket and dials over
TLS, verifying both against the CA. Rounds alternate; the cost is the paired ratio of wall times.

Logins: `python -m directory_api` (gunicorn) with the limiter on (the defaults) and off (0), side
by side on SQLite databases of their own; `clients` threads log registered peer_ids in with the
right secret (client sessions) for `seconds`, the two alternating. Then a brute-forcer sends wrong
secrets for one peer_id: how many are checked (401) and how many refused at once (429).

    python -m bench.trust [--quick]
"""
from __future__ import annotations

import contextlib
import http.client
import json
import logging
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlsplit

from bench.common import MiB, Proc, free_port, run_alone, summary
from bench.swarm import PY_ENV, fetch
from bench.transfer import make_file, wait_holder

log = logging.getLogger(__name__)

CLIENT_ID, CLIENT_SECRET = "bench-client", "bench-client-secret"


@dataclass
class TrustBenchConfig:
    """Sizes, rounds and login load; presets from for_mode()."""

    size_mib: int = 1024
    rounds: int = 5  # runs here vary by 1.5x from burst to burst: medians of five
    dir: str = "/dev/shm"
    login_clients: int = 8
    login_seconds: float = 8.0
    login_rounds: int = 2
    workers: int = 2
    brute_clients: int = 4
    brute_seconds: float = 5.0

    @classmethod
    def for_mode(cls, quick: bool) -> "TrustBenchConfig":
        """The preset for `--quick` or the full run."""
        if quick:
            return cls(size_mib=256, rounds=2, login_seconds=4.0, login_rounds=1, brute_seconds=3.0)
        return cls()


@contextlib.contextmanager
def directory(tmp: Path, name: str, *args, env=None, workers: int = 2):
    """`python -m directory_api` (gunicorn) on a free port with a SQLite file of its own; yields (URL, Proc)."""
    # A port of our own choosing: gunicorn's workers write to the same pipe, and a line of theirs may
    # run into the ready line, digits and all.
    port = free_port()
    proc = Proc([sys.executable, "-m", "directory_api", "--host", "127.0.0.1", "--port", str(port),
                 "--database", f"sqlite:///{tmp / (name + '.db')}", "--lease", "60", "--replication", "1",
                 "--workers", str(workers), *args],
                name=name, cwd=tmp, env={**PY_ENV, **(env or {})}, ready=r"directory listening on (https?)://",
                timeout=60)
    try:
        yield f"{proc.match.group(1)}://127.0.0.1:{port}", proc
    finally:
        proc.stop()


@contextlib.contextmanager
def peer(tmp: Path, folder: Path, url: str, env: dict):
    """One serving peer `src0` of folder, registered at url; yields the Proc."""
    proc = Proc([sys.executable, "-m", "peer_node", "serve", "--peer-id", "src0", "--secret", "bench-secret",
                 "--host", "127.0.0.1", "--port", "0", "--folder", str(folder), "--directory", url],
                name=f"peer-{folder.name}", cwd=tmp, env={**PY_ENV, **env}, ready=r"peer \S+ serving on (\S+)",
                timeout=120)
    try:
        yield proc
    finally:
        proc.stop()


def make_certs(tmp: Path) -> Path:
    """A CA and certificates for a directory and one peer, made by `p2p certs` (as a newcomer would)."""
    certs = tmp / "certs"
    res = subprocess.run([sys.executable, "-m", "peer_node", "certs", str(certs), "--peers", "1"], cwd=tmp,
                         env={**os.environ, **PY_ENV}, capture_output=True, text=True, timeout=120)
    if res.returncode != 0:
        raise RuntimeError(f"p2p certs failed: {res.stderr[-1500:]}")
    return certs


VARIANTS = ("open", "tickets", "closed")  # closed = tickets + TLS


def ticket_cost(cfg: TrustBenchConfig, base: Path) -> dict:
    """p2p get of one file from an open network, one with tickets (plaintext) and one with tickets + TLS, rounds rotating."""
    share = base / "share"
    share.mkdir()
    src = share / f"trust-{cfg.size_mib}MiB.bin"
    sha = make_file(src, cfg.size_mib * MiB, seed=12)
    folders = {}
    for name in VARIANTS:
        folders[name] = base / f"serve-{name}"
        folders[name].mkdir()
        os.link(src, folders[name] / src.name)
    certs = make_certs(base)
    ca = certs / "ca.pem"
    identity = {"P2P_PEER_ID": CLIENT_ID, "P2P_SECRET": CLIENT_SECRET}
    closed_peer_env = {"P2P_TLS_CERT": str(certs / "peer1.pem"), "P2P_TLS_KEY": str(certs / "peer1-key.pem"),
                       "P2P_TLS_CA": str(ca), "P2P_DIRECTORY_CA": str(ca), "P2P_REQUIRE_TICKETS": "1"}
    times = {name: [] for name in VARIANTS}
    with contextlib.ExitStack() as stack:
        open_url, _ = stack.enter_context(directory(base, "dir-open", "--open-downloads"))
        stack.enter_context(peer(base, folders["open"], open_url, {"P2P_REQUIRE_TICKETS": "0"}))
        tickets_url, _ = stack.enter_context(directory(base, "dir-tickets"))
        stack.enter_context(peer(base, folders["tickets"], tickets_url, {"P2P_REQUIRE_TICKETS": "1"}))
        closed_url, _ = stack.enter_context(directory(
            base, "dir-closed", "--certfile", str(certs / "directory.pem"), "--keyfile",
            str(certs / "directory-key.pem"), "--peer-ca", str(ca)))
        stack.enter_context(peer(base, folders["closed"], closed_url, closed_peer_env))
        wait_holder(open_url, sha, "src0")
        wait_holder(tickets_url, sha, "src0")
        wait_holder(closed_url, sha, "src0", ca=ca)
        urls = {"open": (open_url, {}), "tickets": (tickets_url, identity),
                "closed": (closed_url, {"P2P_TLS_CA": str(ca), "P2P_DIRECTORY_CA": str(ca), **identity})}
        for r in range(cfg.rounds):
            # the order rotates, so no variant always runs first (or right after the file was made)
            for name in VARIANTS[r % 3:] + VARIANTS[:r % 3]:
                url, env = urls[name]
                got = fetch(url, sha, base / f"out-{name}.bin", base, env=env)
                times[name].append(got["seconds"])
                log.info("%d MiB, %s network, round %d: %.2f s", cfg.size_mib, name, r + 1, got["seconds"])
    out = {"size_mib": cfg.size_mib, "closed_directory": "HTTPS directory, verified against the CA"}
    for name in VARIANTS:
        out[f"{name}_s"] = summary(times[name])
        out[f"{name}_mib_s"] = summary(cfg.size_mib / t for t in times[name])
    out["slower_pct"] = summary((c / o - 1) * 100 for o, c in zip(times["open"], times["closed"]))
    out["tickets_slower_pct"] = summary((c / o - 1) * 100 for o, c in zip(times["open"], times["tickets"]))
    return out


def _post_login(conn: http.client.HTTPConnection, peer_id: str, secret: str):
    body = json.dumps({"peer_id": peer_id, "secret": secret})
    t0 = time.perf_counter()
    conn.request("POST", "/api/v1/login", body=body, headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    resp.read()
    return resp.status, (time.perf_counter() - t0) * 1000, resp.getheader("Retry-After")


def hammer(url: str, clients: int, seconds: float, creds) -> dict:
    """clients threads POST /login for seconds (creds(i, n) -> (peer_id, secret)); answers status counts and latencies."""
    parts = urlsplit(url)
    stop = time.monotonic() + seconds
    lock = threading.Lock()
    statuses: dict = {}
    lat: dict = {}
    retry_after = []

    def worker(i):
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        n = 0
        try:
            while time.monotonic() < stop:
                peer_id, secret = creds(i, n)
                n += 1
                try:
                    status, ms, ra = _post_login(conn, peer_id, secret)
                except (OSError, http.client.HTTPException):
                    conn.close()
                    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
                    status, ms, ra = "error", 0.0, None
                with lock:
                    statuses[str(status)] = statuses.get(str(status), 0) + 1
                    lat.setdefault(str(status), []).append(ms)
                    if ra:
                        retry_after.append(ra)
        finally:
            conn.close()

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    return {"seconds": elapsed, "status": statuses, "latency_ms": lat, "retry_after": retry_after}


def _pct(values, q):
    if not values:
        return None
    vals = sorted(values)
    return vals[min(len(vals) - 1, int(q * len(vals)))]


def logins(cfg: TrustBenchConfig, base: Path) -> dict:
    """Successful logins/s with the limiter on and off, alternating; then a brute-forcer against the limiter."""
    creds = lambda i, n: (f"bench-login-{i}", f"secret-{i}")  # noqa: E731
    runs = {"on": [], "off": []}
    brute = None
    with contextlib.ExitStack() as stack:
        urls = {"on": stack.enter_context(directory(base, "dir-limiter-on", workers=cfg.workers))[0],
                "off": stack.enter_context(directory(base, "dir-limiter-off", "--login-failures-per-minute", "0",
                                                     "--login-failures-per-address", "0", workers=cfg.workers))[0]}
        for url in urls.values():  # register every peer_id (and warm both servers) before measuring
            hammer(url, cfg.login_clients, 0.1, creds)
        for r in range(cfg.login_rounds):
            for name in (("on", "off") if r % 2 == 0 else ("off", "on")):
                got = hammer(urls[name], cfg.login_clients, cfg.login_seconds, creds)
                ok = got["status"].get("200", 0)
                runs[name].append({"rps": ok / got["seconds"], "p50_ms": _pct(got["latency_ms"].get("200"), 0.5),
                                   "p99_ms": _pct(got["latency_ms"].get("200"), 0.99),
                                   "errors": sum(v for k, v in got["status"].items() if k != "200")})
                log.info("logins, limiter %s: %.1f/s ok, statuses %s", name, ok / got["seconds"], got["status"])
        # Last, because it fills the per-address count of 127.0.0.1 for a minute.
        victim = ("bench-victim", "the-right-secret")
        hammer(urls["on"], 1, 0.01, lambda i, n: victim)
        got = hammer(urls["on"], cfg.brute_clients, cfg.brute_seconds, lambda i, n: (victim[0], f"guess-{i}-{n}"))
        after = hammer(urls["on"], 1, 0.01, lambda i, n: victim)
        lat = got["latency_ms"]
        brute = {"clients": cfg.brute_clients, "seconds": got["seconds"], "status": got["status"],
                 "attempts": sum(got["status"].values()),
                 "answers_per_s": sum(got["status"].values()) / got["seconds"],
                 "retry_after": got["retry_after"][-1] if got["retry_after"] else None,
                 "p50_429_ms": _pct(lat.get("429"), 0.5) or 0.0, "p50_401_ms": _pct(lat.get("401"), 0.5) or 0.0,
                 "victim_status": ", ".join(sorted(after["status"]))}
        log.info("brute force: %s in %.1f s", got["status"], got["seconds"])
    out = {"config": {"clients": cfg.login_clients, "seconds": cfg.login_seconds, "workers": cfg.workers}}
    for name, rows in runs.items():
        out[name] = {"rps": summary(r["rps"] for r in rows), "p50_ms": summary(r["p50_ms"] for r in rows),
                     "p99_ms": summary(r["p99_ms"] for r in rows), "errors": [r["errors"] for r in rows]}
    out["brute"] = brute
    return out


def ratios(res: dict) -> dict:
    """Headline figures of the trust benchmark with their targets."""
    out = {}
    cost = res.get("cost")
    if cost:
        slower = cost["open_s"]["median"] and (cost["closed_s"]["median"] / cost["open_s"]["median"] - 1) * 100
        out["tickets_tls_slower_pct"] = {
            "value": slower, "min": cost["slower_pct"]["min"], "max": cost["slower_pct"]["max"], "target": 10,
            "met": slower < 10, "lower_is_better": True, "digits": 1,
            "what": f"`p2p get` {cost['size_mib']} MiB with tickets + TLS, % slower than without (ratio of "
                    f"medians; median of the paired rounds {cost['slower_pct']['median']:.1f}; [paired min–max])"}
    lg = res.get("logins")
    if lg:
        on, off = lg["on"]["rps"], lg["off"]["rps"]
        out["logins_per_s_limiter_on"] = {
            "value": on["median"], "min": on["min"], "max": on["max"], "target": None, "met": None, "digits": 1,
            "what": f"successful logins/s through gunicorn, limiter on ({lg['config']['clients']} clients; "
                    f"off: {off['median']:.1f})"}
        b = lg.get("brute") or {}
        checked = b.get("status", {}).get("401", 0)
        out["brute_force_checked"] = {
            "value": checked, "target": None, "met": None, "digits": 0,
            "what": f"wrong secrets checked (401) of {b.get('attempts')} sent in {b.get('seconds', 0):.0f} s "
                    f"for one peer_id by {b.get('clients')} clients (limit: 5 a minute); the rest 429"}
    return out


def run(cfg: TrustBenchConfig, workdir: Path | None = None) -> dict:
    """Run the trust benchmark with its files under cfg.dir; answers raw results and headline ratios."""
    started = time.time()
    results: dict = {"config": asdict(cfg)}
    with tempfile.TemporaryDirectory(prefix="p2p-bench-trust-", dir=cfg.dir) as tmp:
        base = Path(tmp)
        results["cost"] = ticket_cost(cfg, base)
        results["logins"] = logins(cfg, base)
    results["ratios"] = ratios(results)
    results["seconds"] = time.time() - started
    return results


def main(argv=None) -> int:
    """Run only the trust benchmark and print its headline ratios (`python -m bench.trust [--quick]`)."""
    return run_alone(argv, __doc__.splitlines()[0], run, TrustBenchConfig.for_mode, "p2p-bench-trust-")


if __name__ == "__main__":
    sys.exit(main())
