"""Transfer benchmark: `p2p get` between two processes on loopback against nginx -> curl -> SHA-256 sink.

For each file size a real serving peer (`python -m peer_node serve`) shares a folder holding one
file of random bytes, registered at a real directory; `python -m peer_node get SHA --out PATH`
finds it through the directory, downloads it over gRPC, verifies and writes it. The reference,
in the same run and interleaved round by round, is nginx (our own config: 127.0.0.1, sendfile,
no access log) serving the same file to `curl -s`, piped into bench/sink.py, which hashes while
writing 1 MiB blocks and fsyncs like the peer does. Throughput is file size over wall time of
the whole command. Peak RSS: the serving peer's VmHWM (a fresh peer per size) and the client's
own VmHWM, polled until it exits.
"""
from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench.common import (BENCH_DIR, ROOT, MiB, Proc, disk_free_bytes, free_port, http_json, proc_status_kib,
                          run_alone, run_timed, summary, wait_port)
from bench.profiling import py_spy, record, stop, summarize_profile
from peer_node.hashing import sha256_file

log = logging.getLogger(__name__)

# Our processes run in a scratch directory (so no ./peerConfig.ini is read); this finds our packages.
PY_ENV = {"PYTHONPATH": str(ROOT)}

NGINX_CONF = """\
{user}worker_processes 1;
daemon off;
master_process on;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    default_type application/octet-stream;
    client_body_temp_path {tmp}/nginx-body;
    proxy_temp_path {tmp}/nginx-proxy;
    fastcgi_temp_path {tmp}/nginx-fastcgi;
    uwsgi_temp_path {tmp}/nginx-uwsgi;
    scgi_temp_path {tmp}/nginx-scgi;
    server {{
        listen 127.0.0.1:{port};
        root {root};
        location / {{ }}
    }}
}}
"""


@dataclass
class TransferBenchConfig:
    """Sizes (MiB) and rounds; presets from for_mode()."""

    sizes_mib: list = field(default_factory=lambda: [64, 256, 1024])
    rounds: int = 3
    rss_small_mib: int = 64
    sink_fsync: bool = True
    devnull_reference: bool = True
    # After the measured rounds of the biggest size: one more, unmeasured, `p2p get` under py-spy
    # (client and serving peer; flame graphs into profile_dir).
    profile_biggest: bool = True
    profile_dir: str | None = None

    @classmethod
    def for_mode(cls, quick: bool) -> "TransferBenchConfig":
        """The preset for `--quick` or the full run."""
        if quick:
            return cls(sizes_mib=[64, 128], rounds=2, devnull_reference=False, profile_biggest=False)
        return cls()


def make_file(path: Path, size: int, seed: int) -> str:
    """Write size pseudo-random bytes to path (1 MiB at a time); answers their sha256."""
    import random

    rng = random.Random(seed)
    digest = hashlib.sha256()
    with open(path, "wb") as fh:
        left = size
        while left:
            block = rng.randbytes(min(MiB, left))
            digest.update(block)
            fh.write(block)
            left -= len(block)
    return digest.hexdigest()


@contextlib.contextmanager
def nginx(root: Path, tmp: Path):
    """nginx with our own config on a free 127.0.0.1 port, serving root; yields its base URL; stopped by PID."""
    exe = shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.path.exists(exe):
        raise RuntimeError("nginx is not installed: run `bash bench/install_tools.sh`")
    port = free_port()
    conf = tmp / "nginx.conf"
    # As root, nginx's worker would switch to `nobody`, which cannot enter private temp dirs.
    user = "user root;\n" if os.geteuid() == 0 else ""
    conf.write_text(NGINX_CONF.format(user=user, tmp=tmp, port=port, root=root))
    proc = Proc([exe, "-e", str(tmp / "nginx-error.log"), "-p", str(tmp), "-c", str(conf)], name="nginx")
    try:
        wait_port("127.0.0.1", port, timeout=15)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.stop()


@contextlib.contextmanager
def directory_server(tmp: Path):
    """A real directory process (`python -m directory_api`) on a free port with its own SQLite file."""
    db = tmp / "directory.db"
    proc = Proc([sys.executable, "-m", "directory_api", "--host", "127.0.0.1", "--port", "0",
                 "--database", f"sqlite:///{db}", "--lease", "60", "--replication", "1",
                 "--open-downloads"],  # peers demand tickets: p2p get asks for anonymous ones
                name="directory", cwd=tmp, env=PY_ENV, ready=r"directory listening on (http://\S+)", timeout=30)
    try:
        yield proc.match.group(1).rstrip("/"), proc
    finally:
        proc.stop()


@contextlib.contextmanager
def serving_peer(peer_id: str, folder: Path, directory: str, cwd: Path):
    """A real serving peer (`python -m peer_node serve`) on a free port; yields the Proc; stopped by PID."""
    proc = Proc([sys.executable, "-m", "peer_node", "serve", "--peer-id", peer_id, "--secret", "bench-secret",
                 "--host", "127.0.0.1", "--port", "0", "--folder", str(folder), "--directory", directory],
                name=peer_id, cwd=cwd, env=PY_ENV, ready=r"peer \S+ serving on (\S+)", timeout=120)
    try:
        yield proc
    finally:
        proc.stop()


def wait_holder(directory: str, sha: str, peer_id: str, timeout: float = 60.0, ca=None) -> None:
    """Wait until the directory lists peer_id as a live holder of sha (an HTTPS one verified against ca)."""
    deadline = time.monotonic() + timeout
    body = None
    while time.monotonic() < deadline:
        status, body = http_json("GET", f"{directory}/api/v1/files/{sha}", ca=ca)
        if status == 200 and any(h.get("peer_id") == peer_id for h in (body or {}).get("holders", [])):
            return
        time.sleep(0.2)
    raise TimeoutError(f"the directory never listed {peer_id} as holder of {sha}: {body}")


def fetch_p2p(directory: str, sha: str, out: Path, cwd: Path) -> dict:
    """Time `python -m peer_node get SHA --out OUT`; answers seconds, peak RSS and the verified digest."""
    seconds, code, rss, output = run_timed(
        [sys.executable, "-m", "peer_node", "get", sha, "--out", str(out), "--directory", directory, "--json"],
        cwd=cwd, env=PY_ENV, timeout=900)
    if code != 0:
        raise RuntimeError(f"p2p get failed ({code}):\n{output[-3000:]}")
    got = sha256_file(out).hexdigest()  # checked again, outside the timed region
    if got != sha:
        raise RuntimeError(f"p2p get wrote a file with sha256 {got}, expected {sha}")
    return {"seconds": seconds, "client_peak_rss": rss}


def fetch_nginx(url: str, sha: str, size: int, out: Path, fsync: bool) -> dict:
    """Time `curl -s URL | python bench/sink.py OUT`; answers seconds and the digest the sink computed."""
    curl = shutil.which("curl")
    if not curl:
        raise RuntimeError("curl is not installed")
    sink_args = [sys.executable, str(BENCH_DIR / "sink.py"), str(out)] + (["--fsync"] if fsync else [])
    start = time.perf_counter()
    c = subprocess.Popen([curl, "-s", "--fail", url], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        s = subprocess.Popen(sink_args, stdin=c.stdout, stdout=subprocess.PIPE, text=True)
        c.stdout.close()
        try:
            sink_out, _ = s.communicate(timeout=900)
        except subprocess.TimeoutExpired:
            s.kill()
            raise
        c.wait(timeout=30)
    finally:
        if c.poll() is None:
            c.kill()
            c.wait()
    seconds = time.perf_counter() - start
    if c.returncode != 0 or s.returncode != 0:
        raise RuntimeError(f"curl ({c.returncode}) | sink ({s.returncode}) failed: {sink_out}")
    digest, count = sink_out.split()
    if digest != sha or int(count) != size:
        raise RuntimeError(f"nginx reference got {digest} ({count} bytes), expected {sha} ({size})")
    return {"seconds": seconds}


def fetch_devnull(url: str, size: int) -> dict:
    """Time `curl -s URL -o /dev/null`: the loopback + nginx speed with no disk and no hashing."""
    seconds, code, _, output = run_timed([shutil.which("curl") or "curl", "-s", "--fail", "-o", "/dev/null", url],
                                         timeout=300)
    if code != 0:
        raise RuntimeError(f"curl failed: {output}")
    return {"seconds": seconds}


def cli_startup_s(cwd: Path) -> float:
    """Wall time of `python -m peer_node get --help`: the fixed cost inside every p2p get timing."""
    seconds, code, _, output = run_timed([sys.executable, "-m", "peer_node", "get", "--help"], cwd=cwd, env=PY_ENV, timeout=60)
    if code != 0:
        raise RuntimeError(f"p2p get --help failed: {output}")
    return seconds


def profile_get(directory: str, sha: str, peer: Proc, tmp: Path, out_dir: Path, label: str) -> dict:
    """One unmeasured `p2p get` run under py-spy, with the serving peer recorded alongside; answers hot frames."""
    out_dir.mkdir(parents=True, exist_ok=True)
    got = tmp / "out" / "profiled.bin"
    server_raw = record(peer.pid, 900, tmp / f"{label}-server", "raw")
    server_svg = record(peer.pid, 900, out_dir / f"{label}-server", "flamegraph")
    try:
        for fmt, suffix in (("raw", "txt"), ("flamegraph", "svg")):
            target = (tmp if fmt == "raw" else out_dir) / f"{label}-client.{suffix}"
            res = subprocess.run(
                [py_spy(), "record", "--rate", "200", "--format", fmt, "--output", str(target), "--",
                 sys.executable, "-m", "peer_node", "get", sha, "--out", str(got), "--directory", directory],
                cwd=tmp, env=dict(os.environ, **PY_ENV), capture_output=True, text=True, timeout=900)
            with contextlib.suppress(FileNotFoundError):
                got.unlink()
            if res.returncode != 0:
                raise RuntimeError(f"p2p get under py-spy failed: {res.stderr[-1500:]}")
    finally:
        for spy in (server_raw, server_svg):
            spy.send_signal(2)  # SIGINT: py-spy writes what it has, then exits
            stop(spy)
    return {
        "client": {"flamegraph": f"{label}-client.svg",
                   **summarize_profile([tmp / f"{label}-client.txt"], "peer_node/")},
        "server": {"flamegraph": f"{label}-server.svg",
                   **summarize_profile([tmp / f"{label}-server.txt"], "peer_node/")},
        "note": "the client was profiled twice (raw stacks, then the flame graph); the serving peer over both runs",
    }


def bench_size(size_mib: int, cfg: TransferBenchConfig, tmp: Path, directory: str, nginx_url: str,
               root: Path) -> dict:
    """Create one file, serve it from a fresh peer, run interleaved rounds; answers this size's figures."""
    size = size_mib * MiB
    folder = root / f"share-{size_mib}"
    folder.mkdir(mode=0o755)
    name = f"bench-{size_mib}MiB.bin"
    src = folder / name
    t0 = time.perf_counter()
    sha = make_file(src, size, seed=size_mib)
    os.chmod(src, 0o644)
    log.info("transfer %d MiB: made the file in %.1fs", size_mib, time.perf_counter() - t0)
    outdir = tmp / "out"
    outdir.mkdir(exist_ok=True)
    peer_id = f"bench-src-{size_mib}m"
    res: dict = {"size_mib": size_mib, "sha256": sha, "rounds": []}
    try:
        with serving_peer(peer_id, folder, directory, cwd=tmp) as peer:
            t1 = time.perf_counter()
            wait_holder(directory, sha, peer_id)
            res["peer_ready_s"] = time.perf_counter() - t1
            res["server_hwm_after_start"] = (proc_status_kib(peer.pid, "VmHWM") or 0) * 1024
            for r in range(cfg.rounds):
                order = ("p2p", "nginx") if r % 2 == 0 else ("nginx", "p2p")
                row: dict = {"round": r, "order": list(order)}
                for method in order:
                    out = outdir / f"{method}-{size_mib}.bin"
                    try:
                        if method == "p2p":
                            got = fetch_p2p(directory, sha, out, cwd=tmp)
                            row["p2p_s"] = got["seconds"]
                            row["client_peak_rss"] = got["client_peak_rss"]
                        else:
                            got = fetch_nginx(f"{nginx_url}/share-{size_mib}/{name}", sha, size, out, cfg.sink_fsync)
                            row["nginx_s"] = got["seconds"]
                    finally:
                        with contextlib.suppress(FileNotFoundError):
                            out.unlink()
                if cfg.devnull_reference:
                    row["devnull_s"] = fetch_devnull(f"{nginx_url}/share-{size_mib}/{name}", size)["seconds"]
                row["p2p_mib_s"] = size_mib / row["p2p_s"]
                row["nginx_mib_s"] = size_mib / row["nginx_s"]
                row["ratio"] = row["p2p_mib_s"] / row["nginx_mib_s"]
                row["server_hwm"] = (proc_status_kib(peer.pid, "VmHWM") or 0) * 1024
                res["rounds"].append(row)
                log.info("  %4d MiB round %d: p2p %6.0f MiB/s  nginx %6.0f MiB/s  ratio %.2f  client RSS %.0f MiB",
                         size_mib, r + 1, row["p2p_mib_s"], row["nginx_mib_s"], row["ratio"],
                         row["client_peak_rss"] / MiB)
            res["server_peak_rss"] = (proc_status_kib(peer.pid, "VmHWM") or 0) * 1024
            res["server_rss_now"] = (proc_status_kib(peer.pid, "VmRSS") or 0) * 1024
            if cfg.profile_biggest and cfg.profile_dir and size_mib == max(cfg.sizes_mib):
                try:
                    res["profiles"] = profile_get(directory, sha, peer, tmp, Path(cfg.profile_dir),
                                                  f"transfer-{size_mib}")
                except Exception as exc:  # a profiler problem must not lose the measurements
                    log.warning("profiling the transfer failed: %s", exc)
                    res["profiles"] = {"error": str(exc)}
    finally:
        with contextlib.suppress(FileNotFoundError):
            src.unlink()
    rows = res["rounds"]
    res["p2p_mib_s"] = summary(r["p2p_mib_s"] for r in rows)
    res["nginx_mib_s"] = summary(r["nginx_mib_s"] for r in rows)
    res["ratio"] = summary(r["ratio"] for r in rows)
    if cfg.devnull_reference:
        res["devnull_mib_s"] = summary(size_mib / r["devnull_s"] for r in rows)
    startup = cli_startup_s(tmp)
    res["cli_startup_s"] = startup
    res["p2p_mib_s_excl_startup"] = summary(size_mib / max(1e-6, r["p2p_s"] - startup) for r in rows)
    res["client_peak_rss"] = max(r["client_peak_rss"] for r in rows)
    res["client_peak_rss_rounds"] = summary(r["client_peak_rss"] for r in rows)
    return res


def ratios(results: dict) -> dict:
    """Headline ratios of the transfer benchmark with their targets."""
    sizes = {s["size_mib"]: s for s in results.get("sizes", [])}
    if not sizes:
        return {}
    big = max(sizes)
    small = results["config"]["rss_small_mib"] if results["config"]["rss_small_mib"] in sizes else min(sizes)
    out = {}
    r = sizes[big]["ratio"]
    out["p2p_over_nginx"] = {"size_mib": big, "value": r["median"], "min": r["min"], "max": r["max"], "target": 1.0,
                             "met": r["median"] >= 1.0,
                             "what": f"`p2p get` / nginx+curl+sink throughput, {big} MiB (paired per round)"}
    limit = 120 * MiB
    for role in ("server", "client"):
        peak_big = sizes[big][f"{role}_peak_rss"]
        peak_small = sizes[small][f"{role}_peak_rss"]
        out[f"{role}_peak_rss_mib"] = {
            "size_mib": big, "value": peak_big / MiB, "target": limit / MiB, "met": peak_big < limit,
            "lower_is_better": True,
            "what": f"peak RSS of the {'serving peer' if role == 'server' else 'downloading client'} at {big} MiB (MiB)"}
        growth = peak_big / peak_small if peak_small else None
        out[f"{role}_rss_growth"] = {
            "size_mib": big, "value": growth, "target": 1.2, "met": growth is not None and growth <= 1.2,
            "lower_is_better": True, "target_op": "≤",
            "what": f"{role} peak RSS at {big} MiB / at {small} MiB"}
    return out


def run(cfg: TransferBenchConfig, workdir: Path) -> dict:
    """Run the transfer benchmark in workdir (big files deleted after use); answers raw results."""
    workdir.mkdir(parents=True, exist_ok=True)
    os.chmod(workdir, 0o755)  # nginx's worker (user nobody when run as root) must traverse it
    need = 2 * max(cfg.sizes_mib) * MiB + 2 * 1024 * MiB
    free = disk_free_bytes(workdir)
    if free < need:
        raise RuntimeError(f"{workdir}: {free / MiB:.0f} MiB free, need {need / MiB:.0f} MiB")
    started = time.time()
    results: dict = {"config": asdict(cfg), "disk_free_mib_before": free / MiB, "sizes": []}
    tmp = Path(tempfile.mkdtemp(prefix="transfer-", dir=workdir))
    os.chmod(tmp, 0o755)  # nginx's worker (user nobody when run as root) reads the shared files
    root = tmp / "www"
    root.mkdir(mode=0o755)
    try:
        results["cli_startup_s"] = summary(cli_startup_s(tmp) for _ in range(3))
        with directory_server(tmp) as (directory, _dproc), nginx(root, tmp) as nginx_url:
            for size_mib in cfg.sizes_mib:
                results["sizes"].append(bench_size(size_mib, cfg, tmp, directory, nginx_url, root))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    results["ratios"] = ratios(results)
    results["seconds"] = time.time() - started
    return results


def main(argv=None) -> int:
    """Run only the transfer benchmark and print its ratios (`python -m bench.transfer [--quick]`)."""
    return run_alone(argv, __doc__.splitlines()[0], run, TransferBenchConfig.for_mode, "p2p-bench-xfer-")


if __name__ == "__main__":
    sys.exit(main())
