"""Render docs/BENCHMARKS.md, docs/img/*.png and docs/benchmarks.json from the raw results of bench.run."""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from bench import report_scale
from bench.common import BENCH_DIR, MiB
from bench.fmt import fmt_summary
from bench.fmt import num as _num

log = logging.getLogger(__name__)

NOTES_FILE = BENCH_DIR / "NOTES.md"
SECTION_ORDER = ("directory", "planning", "cluster", "transfer", "reliability", "ops", "swarm", "trust")
WORKLOAD_LABELS = {
    "ceiling": "ceiling: GET /health",
    "search": "search: GET /files?q=",
    "lookup": "lookup: GET /files/{sha256}",
    "heartbeat": "heartbeat: POST /heartbeat",
}


# -- formatting ---------------------------------------------------------------------------


def _met(flag) -> str:
    if flag is None:
        return "–"
    return "**met**" if flag else "**not met**"


def _target(r: dict) -> str:
    t = r.get("target")
    if t is None:
        return "–"
    op = r.get("target_op") or ("<" if r.get("lower_is_better") else "≥")
    if isinstance(t, int):
        return f"{op} {t}"
    return f"{op} {t:.2f}" if t < 10 else f"{op} {t:g}"


def _ratio_cell(r: dict, digits=2) -> str:
    v = r.get("value")
    if v is None:
        return "–"
    text = f"{v:.{digits}f}"
    if r.get("min") is not None and r.get("max") is not None and r["min"] != r["max"]:
        text += f" [{r['min']:.{digits}f}–{r['max']:.{digits}f}]"
    if r.get("best_over_best") is not None:
        text += f"; best runs: {r['best_over_best']:.{digits}f}"
    if r.get("normalised_by_ceiling") is not None:
        text += f" (each over its own ceiling: {r['normalised_by_ceiling']:.2f})"
    return text


# -- charts -------------------------------------------------------------------------------


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _errbar(ax, xs, sums, label, style="-o", **kw):
    meds = [s["median"] for s in sums]
    lo = [s["median"] - s["min"] for s in sums]
    hi = [s["max"] - s["median"] for s in sums]
    ax.errorbar(xs, meds, yerr=[lo, hi], fmt=style, capsize=4, label=label, **kw)


def chart_directory(res: dict, out: Path) -> list[str]:
    """Throughput and p99 latency vs file count (one line per workload); answers the files written."""
    plt = _plt()
    written = []
    sqlite = sorted(res.get("sqlite", []), key=lambda s: s["files"])
    pg = sorted(res.get("postgres", []), key=lambda s: s["files"])
    if not sqlite:
        return written
    for metric, fname, ylabel in (("rps", "directory_throughput.png", "requests/s (median, min–max bars)"),
                                  ("p99_ms", "directory_p99.png", "p99 latency, ms (median, min–max bars)")):
        fig, ax = plt.subplots(figsize=(8, 5), dpi=110)
        xs = [s["files"] for s in sqlite]
        for w in ("ceiling", "search", "lookup", "heartbeat"):
            if all(w in s["workloads"] for s in sqlite):
                _errbar(ax, xs, [s["workloads"][w][metric] for s in sqlite], f"{WORKLOAD_LABELS[w]} (SQLite)")
        if pg:
            pxs = [s["files"] for s in pg]
            _errbar(ax, pxs, [s["workloads"]["search"][metric] for s in pg], "search (PostgreSQL)", style="--s")
            if metric == "rps":
                _errbar(ax, pxs, [s["workloads"]["ceiling"][metric] for s in pg], "ceiling (PostgreSQL server)",
                        style=":^")
        if metric == "rps" and res.get("hello"):
            ax.axhline(res["hello"]["rps"]["median"], color="gray", linestyle="--", linewidth=1,
                       label="bare Flask hello, same gunicorn settings")
        if metric == "p99_ms":
            ax.axhline(25, color="red", linestyle=":", linewidth=1, label="search p99 target (25 ms)")
        ax.set_xscale("log")
        ax.set_xlabel("files in the directory (log scale)")
        ax.set_ylabel(ylabel)
        if metric == "p99_ms":
            ax.set_yscale("log")
        ax.set_ylim(bottom=0 if metric == "rps" else None)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
        ax.set_title("Directory under wrk (gunicorn gthread, 2 workers; wrk -t2 -c32 on the same 2 cores)",
                     fontsize=9)
        fig.tight_layout()
        fig.savefig(out / fname)
        plt.close(fig)
        written.append(fname)
    return written


def chart_transfer(res: dict, out: Path) -> list[str]:
    """Throughput and peak RSS vs file size; answers the files written."""
    plt = _plt()
    sizes = sorted(res.get("sizes", []), key=lambda s: s["size_mib"])
    if not sizes:
        return []
    xs = [s["size_mib"] for s in sizes]
    fig, ax = plt.subplots(figsize=(8, 5), dpi=110)
    _errbar(ax, xs, [s["p2p_mib_s"] for s in sizes], "p2p get (gRPC, verified, fsync)")
    if all(s.get("p2p_mib_s_excl_startup") for s in sizes):
        _errbar(ax, xs, [s["p2p_mib_s_excl_startup"] for s in sizes], "p2p get less its CLI start-up", style="--o",
                alpha=0.6)
    _errbar(ax, xs, [s["nginx_mib_s"] for s in sizes], "nginx → curl → SHA-256 sink (fsync)")
    if all("devnull_mib_s" in s for s in sizes):
        _errbar(ax, xs, [s["devnull_mib_s"] for s in sizes], "nginx → curl → /dev/null (no disk, no hash)",
                style=":^")
    ax.set_xscale("log", base=2)
    ax.set_xticks(xs, [f"{x} MiB" for x in xs])
    ax.set_ylabel("MiB/s (median, min–max bars)")
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("Transfer throughput on loopback (wall time of the whole command)", fontsize=9)
    fig.tight_layout()
    fig.savefig(out / "transfer_throughput.png")
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(8, 5), dpi=110)
    ax.plot(xs, [s["server_peak_rss"] / MiB for s in sizes], "-o", label="serving peer (VmHWM)")
    ax.plot(xs, [s["client_peak_rss"] / MiB for s in sizes], "-s", label="p2p get client (VmHWM, worst round)")
    ax.axhline(120, color="red", linestyle=":", linewidth=1, label="limit at 1 GiB (120 MiB)")
    ax.set_xscale("log", base=2)
    ax.set_xticks(xs, [f"{x} MiB" for x in xs])
    ax.set_ylabel("peak RSS, MiB")
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("Peak resident memory vs file size", fontsize=9)
    fig.tight_layout()
    fig.savefig(out / "transfer_rss.png")
    plt.close(fig)
    return ["transfer_throughput.png", "transfer_rss.png"]


# -- markdown -----------------------------------------------------------------------------


def _headline_rows(results: dict) -> list[str]:
    rows = ["| what | measured: median [min–max] | target | |", "|---|---|---|---|"]
    for section in SECTION_ORDER:
        for key, r in (results.get(section) or {}).get("ratios", {}).items():
            digits = 1 if ("ms" in key or "mib" in key) else (0 if section == "reliability" else 2)
            digits = r.get("digits", digits)
            rows.append(f"| {r['what']} | {_ratio_cell(r, digits)} | {_target(r)} | {_met(r.get('met'))} |")
    return rows


def _machine_section(m: dict) -> list[str]:
    lines = ["## Machine", "", "| | |", "|---|---|"]
    lines.append(f"| CPU | {m.get('cpu_model')} |")
    lines.append(f"| cores | {m.get('cores')} |")
    lines.append(f"| memory | {m.get('memory_gib')} GiB |")
    lines.append(f"| kernel | {m.get('kernel')} |")
    lines.append(f"| Python | {m.get('python')} |")
    libs = ", ".join(f"{k} {v}" for k, v in (m.get("libraries") or {}).items() if v)
    lines.append(f"| libraries | {libs} |")
    tools = "; ".join(f"{v}" for v in (m.get("tools") or {}).values() if v)
    lines.append(f"| tools | {tools} |")
    if m.get("postgres_server"):
        lines.append(f"| PostgreSQL server | {m['postgres_server']} |")
    la = m.get("loadavg_at_start")
    if la:
        lines.append(f"| load average at start | {la[0]:.2f} {la[1]:.2f} {la[2]:.2f} |")
    return lines + [""]


def _workload_table(scale: dict) -> list[str]:
    rows = ["| workload | requests/s | p50 ms | p99 ms | server CPU ms/request | / ceiling (paired) | errors |",
            "|---|---|---|---|---|---|---|"]
    for w, v in scale["workloads"].items():
        ratio = v.get("ratio_to_ceiling")
        rows.append(
            f"| {WORKLOAD_LABELS.get(w, w)} | {fmt_summary(v['rps'])} | {fmt_summary(v['p50_ms'], 1)} "
            f"| {fmt_summary(v['p99_ms'], 1)} | {fmt_summary(v['server_cpu_ms_per_req'], 2)} "
            f"| {fmt_summary(ratio, 2) if ratio else '1'} | {v['non_2xx'] + v['socket_errors']} |")
    return rows


def _directory_section(d: dict) -> list[str]:
    cfg = d.get("config", {})
    lines = ["## Directory", ""]
    if d.get("error"):
        lines += [f"**The directory benchmark failed:** `{d['error']}`", ""]
    if not cfg:  # it failed before it recorded its configuration: nothing below can be described
        return lines
    lines += [
        f"The store is seeded directly with `devtools.store_tools.bulk_seed` (each file on {cfg.get('replication')} peers, "
        f"so the replication target is already met and heartbeats find no work), every seeded peer "
        f"freshly seen and the lease set to {cfg.get('lease_s'):.0f} s. gunicorn serves "
        f"`directory_api.wsgi:app` with `-k gthread -w {cfg.get('workers')} --threads {cfg.get('threads')}` "
        f"on 127.0.0.1; wrk runs `-t{cfg.get('wrk_threads')} -c{cfg.get('connections')} "
        f"-d{cfg.get('duration_s'):g}s --latency` with the Lua scripts of `bench/lua/` "
        f"after a {cfg.get('warmup_s'):g} s warm-up of each workload, in {cfg.get('rounds')} rounds; in each "
        f"round every workload runs right beside a run of the ceiling (the pair's order alternates), because "
        f"this machine's noise comes in bursts of ten seconds or more that slow every run they overlap. wrk "
        f"and the server share the machine's cores, so absolute figures are low; compare the ratios, each "
        f"taken within such a pair.",
        "",
        "- **ceiling**: `GET /api/v1/health`, the trivial JSON endpoint of the same app on the same server.",
        f"- **search**: `GET /api/v1/files?q=` with a random query from a fixed mix of {len(d.get('queries', []))} "
        "(artist names, shared words, frequent and rare title words, 3–4 letter fragments, extensions, "
        "phrases, and misses); each answers the first page (default limit) with live holders.",
        "- **lookup**: `GET /api/v1/files/{sha256}` of a random seeded file.",
        "- **heartbeat**: `POST /api/v1/heartbeat` with the body a peer node sends "
        "(`{\"free_bytes\": ..., \"accept_uploads\": true}`) and the bearer token of one of "
        f"{cfg.get('heartbeat_peers')} distinct peers logged in beforehand (round robin); each token "
        "was used once before the measurement, so the first replication check of each peer is not measured.",
        "",
        "At the biggest scale the smallest store is served again by a second gunicorn beside the "
        "biggest, and the search workload alternates between the two run by run: the growth ratio "
        "pairs runs seconds apart instead of scales measured many minutes apart.",
        "",
    ]
    if d.get("hello"):
        lines += [f"Bare Flask hello app under the same gunicorn settings (the framework's own ceiling): "
                  f"{fmt_summary(d['hello']['rps'])} requests/s, p99 {fmt_summary(d['hello']['p99_ms'], 1)} ms.", ""]
    for s in d.get("sqlite", []):
        lines += [f"### SQLite, {s['peers']:,} peers / {s['files']:,} files ({s['file_rows']:,} index rows)", ""]
        lines += [f"Seeded in {s['seed']['seconds']:.1f} s. Heartbeats from {s['heartbeat_peers']} "
                  f"{s.get('heartbeat_peer_kind') or ''}.", ""]
        lines += _workload_table(s) + [""]
        growth = s.get("growth")
        if growth:
            lines += [f"Search side by side with the smallest store, {len(growth['big'].get('runs', []))} "
                      f"alternating runs each: this store {fmt_summary(growth['big']['rps'])} requests/s "
                      f"(p99 {fmt_summary(growth['big']['p99_ms'], 1)} ms), the smallest "
                      f"{fmt_summary(growth['small']['rps'])} requests/s (p99 {fmt_summary(growth['small']['p99_ms'], 1)} ms); "
                      f"paired ratio {fmt_summary(growth['ratio'], 2)}.", ""]
        hits = s.get("matching_names_per_query") or {}
        if hits:
            vals = sorted(hits.values())
            lines += [f"Names matching a query at this scale: from {vals[0]:,} to {vals[-1]:,} "
                      f"(median {vals[len(vals) // 2]:,}); {sum(1 for v in vals if v == 0)} queries match nothing.",
                      ""]
        lat = (s.get("checks") or {}).get("unloaded_search_ms") or {}
        if lat:
            ordered = sorted(lat.items(), key=lambda kv: kv[1])
            slow = ", ".join(f"`{q}` {ms:.1f} ms ({hits.get(q, 0):,} names)" for q, ms in ordered[::-1][:5])
            lines += [f"Unloaded search latency, one client, best of three: median "
                      f"{ordered[len(ordered) // 2][1]:.1f} ms; slowest: {slow}.", ""]
    for s in d.get("postgres", []):
        lines += [f"### PostgreSQL, {s['peers']:,} peers / {s['files']:,} files (same workloads)", ""]
        lines += [f"Seeded in {s['seed']['seconds']:.1f} s into the schema `p2p_bench` (dropped afterwards).", ""]
        lines += _workload_table(s) + [""]
    if d.get("postgres_skipped") and d.get("postgres_skipped") != "not requested":
        lines += [f"PostgreSQL was skipped: {d['postgres_skipped']}", ""]
    return lines


def _transfer_section(t: dict) -> list[str]:
    cfg = t.get("config", {})
    lines = ["## Transfers", ""]
    if t.get("error"):
        lines += [f"**The transfer benchmark failed:** `{t['error']}`", ""]
    lines += [
        "A serving peer (`python -m peer_node serve`, a fresh process per file size) shares one file of "
        "random bytes and is registered at a real directory; `python -m peer_node get SHA256 --out PATH` "
        "finds it through the directory, downloads it over gRPC on loopback, verifies the sha256 and "
        "writes it (fsync, rename). The reference, in the same run and interleaved round by round (the "
        "order alternates), is nginx (own config: 127.0.0.1, `sendfile on`, no access log) serving the "
        "same file to `curl -s`, piped into `bench/sink.py`, which hashes with SHA-256 while writing 1 MiB "
        f"blocks{' and fsyncs at the end like the peer' if cfg.get('sink_fsync') else ''}. Throughput is the "
        "file size over the wall time of the whole command (process start included); every output is "
        "checked against the source digest and deleted. Peak RSS: the serving peer's VmHWM (from start, "
        "indexing included, to after the last round) and the client's own VmHWM, polled every 10 ms until it exits (wait4's ru_maxrss would include the benchmark process's RSS, which Linux carries into a child at exec).",
        "",
    ]
    if t.get("cli_startup_s"):
        lines += [f"Start-up of `python -m peer_node get --help` alone: {fmt_summary(t['cli_startup_s'], 2)} s "
                  "(inside every `p2p get` timing).", ""]
    rows = ["| file | p2p get MiB/s | same, less CLI start-up | nginx → curl → sink MiB/s | ratio (paired) "
            "| curl → /dev/null MiB/s | serving peer peak RSS | client peak RSS (worst round) |",
            "|---|---|---|---|---|---|---|---|"]
    for s in t.get("sizes", []):
        rows.append(
            f"| {s['size_mib']} MiB | {fmt_summary(s['p2p_mib_s'])} | {fmt_summary(s.get('p2p_mib_s_excl_startup'))} "
            f"| {fmt_summary(s['nginx_mib_s'])} "
            f"| {fmt_summary(s['ratio'], 2)} | {fmt_summary(s.get('devnull_mib_s'))} "
            f"| {s['server_peak_rss'] / MiB:.0f} MiB | {s['client_peak_rss'] / MiB:.0f} MiB |")
    lines += rows + [""]
    return lines


def _reliability_section(r: dict) -> list[str]:
    lines = ["## Reliability (backup peers)", ""]
    if r.get("error"):
        return lines + [f"**The reliability benchmark failed:** `{r['error']}`", ""]
    lines += [
        "`bench/reliability.py`: one real directory (replication target R = "
        f"{r.get('replication')}, lease {r.get('lease_s')} s) and {r.get('pool')} real peers. Each round writes a "
        "new file into a random peer's folder, waits until two live peers hold it, SIGKILLs one holder at random, "
        "downloads the file at once with `p2p get` (which must fail over by itself) and verifies it, waits until "
        "the directory has restored R live holders, then restarts the killed peer (with its folder wiped every "
        "other time on average).", "",
        "| figure | value |", "|---|---|",
        f"| rounds | {r.get('rounds')} |",
        f"| files lost | {r.get('lost')} |",
        f"| downloads failed | {r.get('failed')} |",
        f"| rounds that never reached R / never restored R | {r.get('not_replicated')} / {r.get('not_restored')} |",
        f"| files below R at the end | {r.get('below_target_at_end')} |",
        f"| time to R after the write, s | {fmt_summary(r.get('time_to_r_s'), 2)} |",
        f"| time to restore R after the kill, s | {fmt_summary(r.get('time_to_restore_s'), 2)} |",
        f"| run time | {r.get('seconds', 0):.0f} s |", ""]
    return lines


def _ops_section(o: dict) -> list[str]:
    """Metrics on against off, threads under half-sent requests, SIGTERM under load."""
    if o.get("error"):
        return ["## Operations", "", f"Failed: {o['error']}", ""]
    lines = ["## Operations", "", "Metrics on against off: the same store served by two `python -m directory_api` "
             "side by side, paired per round (bench/ops.py).", "",
             "| workload | req/s, metrics on | req/s, metrics off |", "|---|---|---|"]
    for workload in ("ceiling", "search", "heartbeat"):
        rps = o["metrics"][f"{workload}_rps"]
        lines.append(f"| {workload} | {fmt_summary(rps['on'])} | {fmt_summary(rps['off'])} |")
    lines += ["", "| server | threads per process, idle | with half-sent requests | a request meanwhile |",
              "|---|---|---|---|"]
    for h in o.get("half_sent", []):
        lines.append(f"| {h['server']} | {h['threads_before']} | {h['threads_with_half_sent']} | "
                     f"{'ok' if h['health_ok'] else 'failed'}, {h['health_ms']:.0f} ms |")
    sig = o.get("sigterm") or {}
    if sig:
        lines += ["", f"SIGTERM to exit with {sig['clients']} clients sending: {fmt_summary(sig['seconds'], 2)} s "
                  f"over {sig['tries']} tries.", ""]
    return lines


def _sections_table(results: dict) -> list[str]:
    """When each section was measured, and in which mode (sections may come from different runs)."""
    sections = results.get("sections") or {}
    rows = []
    for name in SECTION_ORDER:
        if name not in results:
            continue
        meta = sections.get(name) or {"measured_at": results.get("finished"), "quick": results.get("quick"),
                                      "seconds": (results.get(name) or {}).get("seconds")}
        at = meta.get("measured_at")
        when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(at)) if at else "–"
        took = f"{meta['seconds'] / 60:.1f} min" if meta.get("seconds") else "–"
        failed = " (failed)" if (results.get(name) or {}).get("error") else ""
        rows.append(f"| {name}{failed} | {when} | {'quick' if meta.get('quick') else 'full'} | {took} |")
    if not rows:
        return []
    return ["| section | measured | mode | took |", "|---|---|---|---|", *rows, ""]


def _swarm_section(w: dict) -> list[str]:
    """One holder against nginx, the speed-up of four rate-limited holders, client memory, a corrupt holder."""
    lines = ["## Swarm downloads (issue 11)", ""]
    if w.get("error"):
        return lines + [f"**The swarm benchmark failed:** `{w['error']}`", ""]
    cfg = w.get("config", {})
    lines += [
        f"`bench/swarm.py`, files under `{cfg.get('dir')}` (the disk's noise stays out): a real directory "
        "(open downloads, so every `p2p get` asks it for anonymous download tickets, as on a public network) "
        "and real serving peers on loopback. Times are wall times of the whole `p2p get` command, start-up "
        "included; every output is checked against the source digest.", ""]
    single = w.get("single") or {}
    if single.get("sizes"):
        lines += [f"**One holder, no limit**, against nginx (`sendfile`) → `curl -s` → `bench/sink.py` (SHA-256 "
                  "while writing, fsync), interleaved round by round. `p2p get --help` alone takes "
                  f"{fmt_summary(single.get('cli_startup_s'), 2)} s.", "",
                  "| file | p2p get MiB/s | less start-up | nginx → curl → sink MiB/s | ratio (paired) "
                  "| ratio less start-up |", "|---|---|---|---|---|---|"]
        for s in single["sizes"]:
            lines.append(f"| {s['size_mib']} MiB | {fmt_summary(s['p2p_mib_s'])} "
                         f"| {fmt_summary(s['p2p_mib_s_excl_startup'])} | {fmt_summary(s['nginx_mib_s'])} "
                         f"| {fmt_summary(s['ratio'], 2)} | {fmt_summary(s['ratio_excl_startup'], 2)} |")
        lines.append("")
    sp = w.get("speedup")
    if sp:
        lines += [f"**Speed-up**: {sp['holders']} holders of one {sp['size_mib']} MiB file, each serving at most "
                  f"{sp['rate']}/s (`--upload-rate-limit`); `p2p get --parallel 1` took {fmt_summary(sp['t1_s'], 1)} s, "
                  f"`--parallel {sp['holders']}` {fmt_summary(sp['tn_s'], 1)} s (alternating): t(1)/t({sp['holders']}) "
                  f"= {sp['speedup']:.2f} (medians; paired per round {fmt_summary(sp['paired'], 2)}). The ideal, "
                  f"{sp['holders']}, is the four links; the start-up is paid once either way"
                  + (f": less the CLI's start-up ({sp['cli_startup_s']:.2f} s) the ratio is "
                     f"{sp['speedup_excl_startup']:.2f}" if sp.get("speedup_excl_startup") else "") + ".", ""]
    mem = w.get("memory") or {}
    if mem.get("rss"):
        cells = "; ".join(f"{r['size_mib']} MiB: {fmt_summary(r['client_peak_rss_mib'])} MiB" for r in mem["rss"])
        lines += [f"**Client memory** (VmHWM, polled every 10 ms), {cfg.get('holders')} unlimited holders, "
                  f"`--parallel {cfg.get('holders')}`: {cells}"
                  + (f"; the big file from one of them (`--parallel 1`): {fmt_summary(mem['rss_one_source_mib'])} MiB"
                     if mem.get("rss_one_source_mib") else "") + ".", ""]
    cor = mem.get("corrupt")
    if cor:
        rounds = cor.get("rounds", [])
        banned = sorted({b for r in rounds for b in (r.get("banned") or {})})
        lines += [f"**A corrupt holder among {cfg.get('holders')}**: src0's copy of a {cor['size_mib']} MiB file "
                  f"had one byte flipped in every {cor['piece_size'] // MiB} MiB piece after it was indexed (size "
                  "and mtime kept, so the holder still offers it). Bytes `p2p get --json` fetched beyond the file "
                  f"size: {fmt_summary(cor['extra_pieces'], 2)} pieces over {cor['rounds_with_corrupt_holder']} "
                  f"rounds in which the corrupt holder served; banned: {', '.join(banned) or 'none'}; pieces "
                  f"re-fetched after a failed verification: "
                  f"{', '.join(str((r.get('refetched') or {}).get('failed_verification')) for r in rounds)}.", ""]
    return lines


def _trust_section(t: dict) -> list[str]:
    """Tickets and TLS against neither, and logins with the failed-login limiter."""
    lines = ["## Tickets, TLS and logins (issue 12)", ""]
    if t.get("error"):
        return lines + [f"**The trust benchmark failed:** `{t['error']}`", ""]
    cost = t.get("cost")
    if cost:
        lines += [
            f"**Tickets and TLS** (`bench/trust.py`): three networks side by side, each a directory and one "
            f"serving peer of the same {cost['size_mib']} MiB file under `{t.get('config', {}).get('dir')}`. "
            "*Open*: plaintext, the directory gives anonymous download tickets (`--open-downloads`) and the peer "
            "serves without them (`require_tickets = false`). *Tickets*: plaintext, the peer demands a ticket on "
            "every Download; `p2p get` logs in with a client session (one scrypt check at the directory) and asks "
            "for one. *Closed*: tickets as before, plus gRPC over TLS with a certificate of `p2p certs`, and "
            f"the {cost.get('closed_directory')}. The order of the three rotates round by round; times are the "
            "whole command.", "",
            "| network | p2p get s | MiB/s |", "|---|---|---|",
            f"| open | {fmt_summary(cost['open_s'], 2)} | {fmt_summary(cost['open_mib_s'])} |",
            *([f"| tickets, plaintext | {fmt_summary(cost['tickets_s'], 2)} | {fmt_summary(cost['tickets_mib_s'])} |"]
              if cost.get("tickets_s") else []),
            f"| closed: tickets + TLS | {fmt_summary(cost['closed_s'], 2)} | {fmt_summary(cost['closed_mib_s'])} |",
            "", f"Tickets + TLS against open: {cost['slower_pct']['median']:+.1f} % (median of the paired rounds; "
                f"[{cost['slower_pct']['min']:.1f}–{cost['slower_pct']['max']:.1f}] %)"
            + (f"; tickets alone (client login, ticket, the peer's check, plaintext): "
               f"{cost['tickets_slower_pct']['median']:+.1f} %" if cost.get("tickets_slower_pct") else "") + ".", ""]
    logins = t.get("logins")
    if logins:
        cfg = logins.get("config", {})
        lines += [
            f"**Logins** through gunicorn (`python -m directory_api`, {cfg.get('workers')} workers, SQLite), "
            f"{cfg.get('clients')} clients each logging in a registered peer_id of its own with the right secret "
            f"(client sessions), {cfg.get('seconds'):g} s a run, the limiter on (defaults: 5 failures a minute "
            "per peer_id, 20 per address) and off, alternating:", "",
            "| limiter | successful logins/s | p50 ms | p99 ms | errors |", "|---|---|---|---|---|"]
        for name in ("on", "off"):
            r = logins.get(name)
            if r:
                lines.append(f"| {name} | {fmt_summary(r['rps'], 1)} | {fmt_summary(r['p50_ms'], 0)} "
                             f"| {fmt_summary(r['p99_ms'], 0)} | {sum(r['errors'])} |")
        b = logins.get("brute")
        if b:
            lines += ["", f"A brute-forcer ({b['clients']} clients, wrong secrets for one peer_id, "
                          f"{b['seconds']:.0f} s): {b['attempts']} attempts, {b['status'].get('401', 0)} answered 401 "
                          f"(a guess checked), {b['status'].get('429', 0)} answered 429 with Retry-After "
                          f"{b.get('retry_after')} s ({b['answers_per_s']:.0f} answers/s); a 429 takes {b['p50_429_ms']:.1f} ms (p50) against {b.get('p50_401_ms', 0):.0f} ms for "
                          f"a checked guess. The right secret of that peer_id meanwhile: "
                          f"{b.get('victim_status')} (the per-peer limit also holds out its owner until the "
                          "window passes)."]
        lines.append("")
    return lines


def _frames(entries, limit=8) -> str:
    return "<br>".join(f"{share:.1f}% `{name}`" for name, share in (entries or [])[:limit]) or "–"


def _profile_section(results: dict) -> list[str]:
    lines: list[str] = []
    d = results.get("directory") or {}
    for s in d.get("sqlite", []):
        prof = s.get("profiles")
        if not prof or "error" in prof:
            continue
        lines += [f"### Directory at {s['files']:,} files, py-spy on both gunicorn workers", "",
                  "One extra, unmeasured wrk run per workload while py-spy sampled each worker (wall clock, "
                  "all threads, so time waiting inside SQLite counts). Shares are of all samples.", "",
                  "| workload | req/s while profiled | hottest frames (exclusive) | our code on the stack (inclusive) "
                  "| flame graph |", "|---|---|---|---|---|"]
        for w, p in prof.items():
            lines.append(f"| {w} | {_num(p.get('rps_while_profiled'))} | {_frames(p.get('exclusive'))} "
                         f"| {_frames(p.get('inclusive_own'))} | [svg](profiles/{p.get('flamegraph')}) |")
        lines.append("")
    t = results.get("transfer") or {}
    for s in t.get("sizes", []):
        prof = s.get("profiles")
        if not prof or "error" in prof:
            continue
        lines += [f"### Transfer of {s['size_mib']} MiB, py-spy on the client and the serving peer", "",
                  "| process | hottest frames (exclusive) | our code on the stack (inclusive) | flame graph |",
                  "|---|---|---|---|"]
        for role in ("client", "server"):
            p = prof.get(role) or {}
            lines.append(f"| {role} | {_frames(p.get('exclusive'))} | {_frames(p.get('inclusive_own'))} "
                         f"| [svg](profiles/{p.get('flamegraph')}) |")
        lines.append("")
    if lines:
        lines = ["## Profiles", ""] + lines
    return lines


def render_markdown(results: dict, images: list[str]) -> str:
    """The whole BENCHMARKS.md text."""
    mode = "quick" if results.get("quick") else "full"
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(results.get("finished", time.time())))
    lines = ["# Benchmarks", ""]
    if results.get("updated_by"):
        lines += [f"Last updated by `{results['updated_by']}` on {when} ({results.get('seconds', 0) / 60:.1f} min); "
                  "the other sections keep the figures of the run that measured them (dates below). Do not "
                  "edit by hand: edit `bench/` and run it again. Raw figures: [`benchmarks.json`](benchmarks.json).",
                  ""]
    else:
        lines += [f"Generated by `{'make bench-quick' if mode == 'quick' else 'make bench'}` "
                  f"(`python -m bench.run{' --quick' if mode == 'quick' else ''}`) on {when}; the run took "
                  f"{results.get('seconds', 0) / 60:.1f} min. Do not edit by hand: edit `bench/` and run it again. "
                  "Raw figures: [`benchmarks.json`](benchmarks.json).", ""]
    lines += _sections_table(results)
    if mode == "quick":
        lines += ["> **Quick mode** (in the sections marked quick): smaller sizes, shorter and fewer rounds. A "
                  "sanity check, not the reference figures; `make bench` gives those.", ""]
    lines += ["## Headline", "", "Each figure is the median over rounds with [min–max]; each ratio is taken "
              "against a reference measured in the same run. Runs on this machine are either fast or about "
              "twice slower, in bursts (see the notes), so each directory ratio also gives the ratio of the "
              "best runs (the workload's fastest run over the reference's fastest), and a directory target "
              "counts as met only when both reach it.", ""]
    lines += _headline_rows(results) + [""]
    lines += _machine_section(results.get("machine", {}))
    if results.get("directory"):
        lines += _directory_section(results["directory"])
        lines += report_scale.side_by_side(results["directory"])
        for img in images:
            if img.startswith("directory"):
                lines += [f"![{img}](img/{img})", ""]
    if results.get("planning"):
        lines += report_scale.planning_section(results["planning"])
    if results.get("cluster"):
        lines += report_scale.cluster_section(results["cluster"])
    if results.get("transfer"):
        lines += _transfer_section(results["transfer"])
        for img in images:
            if img.startswith("transfer"):
                lines += [f"![{img}](img/{img})", ""]
    if results.get("reliability"):
        lines += _reliability_section(results["reliability"])
    if results.get("ops"):
        lines += _ops_section(results["ops"])
    if results.get("swarm"):
        lines += _swarm_section(results["swarm"])
    if results.get("trust"):
        lines += _trust_section(results["trust"])
    lines += _profile_section(results)
    if results.get("directory"):
        lines += report_scale.plans_section(results["directory"])
    lines += ["## Notes", ""]
    if NOTES_FILE.exists():
        lines += [NOTES_FILE.read_text().strip(), ""]
    else:
        lines += ["(none)", ""]
    lines += ["## How to reproduce", "",
              "```", "make bench        # full run (about 40 minutes on 2 cores)",
              "make bench-quick  # sanity check, about four minutes", "```", "",
              "Both install `requirements-bench.txt` and, once, wrk, nginx and HAProxy from Debian "
              "(`bench/install_tools.sh`). PostgreSQL is used at `postgresql+psycopg://postgres@127.0.0.1:5432/test` "
              "(schema `p2p_bench`, dropped after use) and skipped when it does not answer.", ""]
    return "\n".join(lines)


def write_report(results: dict, docs: Path) -> dict:
    """Write benchmarks.json, the charts and BENCHMARKS.md under docs; answers the paths written."""
    img = docs / "img"
    img.mkdir(parents=True, exist_ok=True)
    images: list[str] = []
    if results.get("directory"):
        images += chart_directory(results["directory"], img)
    if results.get("transfer"):
        images += chart_transfer(results["transfer"], img)
    (docs / "benchmarks.json").write_text(json.dumps(results, indent=1, default=str) + "\n")
    md = render_markdown(results, images)
    (docs / "BENCHMARKS.md").write_text(md)
    return {"markdown": str(docs / "BENCHMARKS.md"), "json": str(docs / "benchmarks.json"),
            "images": [str(img / i) for i in images]}
