"""Run wrk (bounded by its own -d duration and a hard timeout) and parse its --latency report."""
from __future__ import annotations

import logging
import re
import shutil
import subprocess

from bench.common import LUA_DIR

log = logging.getLogger(__name__)

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60000.0, "h": 3600000.0}
_LAT_RE = re.compile(r"^\s*(50|75|90|99)(?:\.0+)?%\s+([\d.]+)(us|ms|s|m|h)\s*$")
_RPS_RE = re.compile(r"^Requests/sec:\s+([\d.]+)")
_TOTAL_RE = re.compile(r"^\s*(\d+) requests in ([\d.]+)(us|ms|s|m|h)")
_NON2XX_RE = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
_SOCKERR_RE = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")


def _ms(value: str, unit: str) -> float:
    return float(value) * _UNITS[unit]


def parse_wrk(text: str) -> dict:
    """Requests/s, total requests, p50/p75/p90/p99 (ms), non-2xx and socket errors from wrk --latency output."""
    out: dict = {"rps": None, "requests": None, "p50_ms": None, "p75_ms": None, "p90_ms": None,
                 "p99_ms": None, "non_2xx": 0, "socket_errors": 0}
    in_dist = False
    for line in text.splitlines():
        if line.strip().startswith("Latency Distribution"):
            in_dist = True
            continue
        if in_dist:
            found = _LAT_RE.match(line)
            if found:
                out[f"p{found.group(1)}_ms"] = _ms(found.group(2), found.group(3))
                continue
            in_dist = False
        found = _RPS_RE.match(line)
        if found:
            out["rps"] = float(found.group(1))
            continue
        found = _TOTAL_RE.match(line)
        if found:
            out["requests"] = int(found.group(1))
            continue
        found = _NON2XX_RE.search(line)
        if found:
            out["non_2xx"] = int(found.group(1))
            continue
        found = _SOCKERR_RE.search(line)
        if found:
            out["socket_errors"] = sum(int(g) for g in found.groups())
    if out["rps"] is None:
        raise ValueError(f"no 'Requests/sec' in wrk output:\n{text}")
    return out


def run_wrk(url: str, duration_s: float, script: str | None = None, script_args=(),
            threads: int = 2, connections: int = 32, timeout_s: str = "5s") -> dict:
    """One wrk run against url for duration_s seconds; answers the parsed figures plus the raw text."""
    exe = shutil.which("wrk")
    if not exe:
        raise RuntimeError("wrk is not installed: run `bash bench/install_tools.sh`")
    args = [exe, f"-t{threads}", f"-c{connections}", f"-d{max(1, int(round(duration_s)))}s",
            f"--timeout={timeout_s}", "--latency"]
    if script:
        args += ["-s", str(LUA_DIR / script)]
    args.append(url)
    if script_args:
        args += ["--", *[str(a) for a in script_args]]
    log.debug("wrk: %s", " ".join(args))
    res = subprocess.run(args, capture_output=True, text=True, timeout=duration_s + 60)
    if res.returncode != 0:
        raise RuntimeError(f"wrk failed ({res.returncode}): {res.stderr}\n{res.stdout}")
    parsed = parse_wrk(res.stdout)
    parsed["raw"] = res.stdout
    if parsed["non_2xx"] or parsed["socket_errors"]:
        log.warning("wrk %s: %d non-2xx, %d socket errors", url, parsed["non_2xx"], parsed["socket_errors"])
    return parsed
