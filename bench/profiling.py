"""py-spy recording and summarising, shared by the benchmarks and the profile CLI (bench/profile.py)."""
from __future__ import annotations

import collections
import os
import shutil
import subprocess
import sys
from pathlib import Path


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


def stop(spy: subprocess.Popen, timeout: float = 30.0) -> None:
    """Wait for a py-spy recorder to finish (killing it past timeout seconds)."""
    try:
        spy.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        spy.kill()
        spy.wait()
