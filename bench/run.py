"""Entry point: `python -m bench.run [--quick] [--only SECTION ...] [--report-only]` runs the benchmarks and writes the report.

With --only, the sections run are merged into the existing docs/benchmarks.json: the other sections keep
the figures (and the date) of the run that measured them, so the report stays whole.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
import traceback
from pathlib import Path

from bench import cluster, directory, ops, planning, reliability, report, swarm, transfer, trust
from bench.common import ROOT, machine_info

log = logging.getLogger(__name__)

QUICK_RELIABILITY_ROUNDS = 6
SECTIONS = ("directory", "planning", "cluster", "transfer", "reliability", "ops", "swarm", "trust")


def reliability_targets(res: dict) -> dict:
    """The reliability figures as headline rows: files lost and downloads failed, both with target zero."""
    rounds = res.get("rounds")
    return {
        "files_lost": {"value": res.get("lost"), "target": 0, "met": res.get("lost") == 0, "lower_is_better": True,
                       "target_op": "=", "what": f"files lost over {rounds} kill-a-holder rounds (backup peers)"},
        "downloads_failed": {"value": res.get("failed"), "target": 0, "met": res.get("failed") == 0,
                             "lower_is_better": True, "target_op": "=",
                             "what": f"downloads failed over {rounds} kill-a-holder rounds"},
    }


def rederive_ratios(results: dict) -> None:
    """Headline rows of the sections that can, computed again from their raw figures (after editing them)."""
    derive = {"swarm": lambda r: swarm.ratios(r, swarm.SwarmBenchConfig(**r["config"])), "trust": trust.ratios}
    for name, fn in derive.items():
        res = results.get(name)
        if res and not res.get("error") and res.get("config"):
            res["ratios"] = fn(res)


def merge_into(path: Path, new: dict, ran: list[str]) -> dict:
    """The results of path with the sections in ran replaced by new's; every section keeps its own date.

    A section the old file has and this run did not measure keeps its figures and gets the date,
    mode and duration of the run that wrote the file (when it had no "sections" entry yet).
    """
    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError):
        return new
    merged = dict(old)
    sections = dict(old.get("sections") or {})
    for name in SECTIONS:
        if name in old and name not in sections:
            sections[name] = {"measured_at": old.get("finished"), "quick": old.get("quick", False),
                              "seconds": (old.get(name) or {}).get("seconds")}
    for name in ran:
        merged[name] = new[name]
        sections[name] = new["sections"][name]
    merged["sections"] = sections
    merged["machine"] = {**(old.get("machine") or {}), **new["machine"]}
    merged["quick"] = any(s.get("quick") for s in sections.values())
    merged["finished"] = new["finished"]
    merged["updated_by"] = "python -m bench.run" + "".join(f" --only {n}" for n in ran) + (
        " --quick" if new.get("quick") else "")
    merged["seconds"] = new["seconds"]
    return merged


def main(argv=None) -> int:
    """Run every benchmark (or the ones named by --only), then write docs/BENCHMARKS.md, charts and JSON."""
    parser = argparse.ArgumentParser(description="Run the benchmarks and write docs/BENCHMARKS.md.")
    parser.add_argument("--quick", action="store_true", help="smaller sizes, fewer and shorter rounds (about 4 min)")
    parser.add_argument("--only", choices=SECTIONS, action="append",
                        help="run only this benchmark (repeatable)")
    parser.add_argument("--docs", type=Path, default=ROOT / "docs", help="where BENCHMARKS.md goes (default docs/)")
    parser.add_argument("--workdir", type=Path, default=None, help="scratch space (default: a temp dir)")
    parser.add_argument("--report-only", action="store_true",
                        help="measure nothing: render BENCHMARKS.md and charts again from docs/benchmarks.json "
                             "(after editing bench/NOTES.md or bench/report.py)")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    if args.report_only:
        results = json.loads((args.docs / "benchmarks.json").read_text())
        rederive_ratios(results)
        paths = report.write_report(results, args.docs)
        print(f"rendered {paths['markdown']} and {len(paths['images'])} charts from {paths['json']}")
        return 0
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    wanted = args.only or list(SECTIONS)
    started = time.time()
    results: dict = {"quick": args.quick, "started": started, "machine": machine_info(), "sections": {}}
    failed = False
    with tempfile.TemporaryDirectory(prefix="p2p-bench-", dir=args.workdir) as tmp:
        tmp = Path(tmp)
        def section(name: str, banner: str, measure) -> None:
            # A failed benchmark must not lose the others: the report says what failed.
            nonlocal failed
            if name not in wanted:
                return
            print(banner, flush=True)
            begun = time.time()
            try:
                results[name] = measure()
            except Exception as exc:
                failed = True
                traceback.print_exc()
                results[name] = {"error": f"{type(exc).__name__}: {exc}".splitlines()[0]}
            results["sections"][name] = {"measured_at": time.time(), "quick": args.quick,
                                         "seconds": time.time() - begun}

        dir_cfg = directory.DirectoryBenchConfig.for_mode(args.quick)
        dir_cfg.profile_dir = str(args.docs / "profiles")
        section("directory", f"== directory benchmark ({'quick' if args.quick else 'full'}): scales {dir_cfg.scales}",
                lambda: directory.run(dir_cfg, tmp / "directory"))
        pg_version = (results.get("directory") or {}).get("postgres_version")
        if pg_version:
            results["machine"]["postgres_server"] = pg_version
        plan_cfg = planning.PlanningBenchConfig.for_mode(args.quick)
        section("planning", f"== planning-round cost at {plan_cfg.peers} peers, SQLite and PostgreSQL",
                lambda: planning.run(plan_cfg, tmp / "planning"))
        cluster_cfg = cluster.ClusterBenchConfig.for_mode(args.quick)
        section("cluster", f"== cluster: {cluster_cfg.processes} directory processes behind HAProxy, "
                           f"{cluster_cfg.files:,} files on PostgreSQL",
                lambda: cluster.run(cluster_cfg, tmp / "cluster"))
        xfer_cfg = transfer.TransferBenchConfig.for_mode(args.quick)
        xfer_cfg.profile_dir = str(args.docs / "profiles")
        section("transfer", f"== transfer benchmark: sizes {xfer_cfg.sizes_mib} MiB, {xfer_cfg.rounds} rounds",
                lambda: transfer.run(xfer_cfg, tmp / "transfer"))
        # quick: 6 rounds (about 25 s), to keep bench-quick short
        rounds = QUICK_RELIABILITY_ROUNDS if args.quick else None

        def measure_reliability() -> dict:
            (tmp / "reliability").mkdir()
            res = reliability.run(rounds=rounds, quick=args.quick, workdir=tmp / "reliability")
            res["summary_line"] = reliability.summary_line(res)
            res["ratios"] = reliability_targets(res)
            print(res["summary_line"], flush=True)
            return res

        section("reliability", f"== reliability benchmark (backup peers): {rounds or reliability.FULL_ROUNDS} rounds",
                measure_reliability)
        ops_cfg = ops.OpsBenchConfig.for_mode(args.quick)
        section("ops", f"== operations benchmark: metrics on/off ({ops_cfg.rounds} rounds), slow clients, SIGTERM",
                lambda: ops.run(ops_cfg, tmp / "ops"))
        swarm_cfg = swarm.SwarmBenchConfig.for_mode(args.quick)
        section("swarm", f"== swarm benchmark: one holder vs nginx ({swarm_cfg.big_mib}, {swarm_cfg.small_mib} MiB), "
                         f"t(1)/t({swarm_cfg.holders}) at {swarm_cfg.rate}/s, client RSS, a corrupt holder",
                lambda: swarm.run(swarm_cfg))
        trust_cfg = trust.TrustBenchConfig.for_mode(args.quick)
        section("trust", f"== trust benchmark: {trust_cfg.size_mib} MiB with and without tickets and TLS, "
                         f"logins with the failed-login limiter",
                lambda: trust.run(trust_cfg, tmp / "trust"))
    results["finished"] = time.time()
    results["seconds"] = results["finished"] - started
    if args.only:
        results = merge_into(args.docs / "benchmarks.json", results, wanted)
    paths = report.write_report(results, args.docs)
    print(f"\nwrote {paths['markdown']}, {paths['json']} and {len(paths['images'])} charts "
          f"in {results['seconds']:.0f} s")
    for section in SECTIONS:
        for key, r in (results.get(section) or {}).get("ratios", {}).items():
            met = {True: "met", False: "NOT MET", None: ""}[r.get("met")]
            value = "–" if r.get("value") is None else f"{r['value']:.2f}"
            target = "" if r.get("target") is None else f"(target {r['target']:.2f})"
            print(f"  {r['what']}: {value} {target} {met}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
