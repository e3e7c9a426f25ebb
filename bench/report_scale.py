"""The report's sections on scale: PostgreSQL beside SQLite, the query plans, planning rounds, the cluster."""
from __future__ import annotations

from bench.fmt import fmt_summary, num

WORKLOADS = ("search", "lookup", "heartbeat")


def side_by_side(d: dict) -> list[str]:
    """One table: each database at each scale, every workload against its own server's ceiling."""
    sqlite = {s["files"]: s for s in d.get("sqlite", [])}
    pg = {s["files"]: s for s in d.get("postgres", [])}
    if not pg:
        return []
    lines = ["### PostgreSQL beside SQLite", "",
             "Each cell: the workload's requests/s over its own server's ceiling (`GET /api/v1/health` on the "
             "same gunicorn, same database), the median of the paired rounds [min–max], beside that ceiling's "
             "requests/s. The plans behind each figure follow in \"Query plans\".", "",
             "| files | database | ceiling req/s | " + " | ".join(f"{w} / ceiling" for w in WORKLOADS) + " |",
             "|---|---|---|" + "---|" * len(WORKLOADS)]
    for files in sorted(set(sqlite) | set(pg)):
        for name, scale in (("SQLite", sqlite.get(files)), ("PostgreSQL", pg.get(files))):
            if scale is None:
                continue
            wl = scale["workloads"]
            cells = [fmt_summary(wl[w].get("ratio_to_ceiling"), 2) if w in wl else "–" for w in WORKLOADS]
            lines.append(f"| {files:,} | {name} | {fmt_summary(wl['ceiling']['rps'])} | " + " | ".join(cells) + " |")
    return lines + [""]


def plans_section(d: dict) -> list[str]:
    """Every query shape's plan at every scale, folded (<details>), with the time of that run."""
    lines: list[str] = []
    for db, scales in (("SQLite", d.get("sqlite", [])), ("PostgreSQL", d.get("postgres", []))):
        for s in scales:
            found = s.get("plans") or []
            if not found:
                continue
            lines += [f"### {db}, {s['files']:,} files", "",
                      "| shape | statement | runs first | ms (this run) |", "|---|---|---|---|"]
            for p in found:
                query = f" `{p['query']}`" if p.get("query") else ""
                lines.append(f"| {p['label']}{query} | {p['statement']} | "
                             f"{'yes' if p.get('runs_first') else 'only if the first finds too little'} | "
                             f"{num(p.get('ms'), 3)} |")
            lines.append("")
            for p in found:
                query = f" `{p['query']}`" if p.get("query") else ""
                params = p.get("params") or {}
                shown = ", ".join(f"{k}={v!r}" for k, v in params.items())
                lines += [f"<details><summary>{db} {s['files']:,}: {p['label']}{query}, {p['statement']}"
                          f"{f' ({shown})' if shown else ''}</summary>", "", "```", p.get("plan", "").rstrip(), "```",
                          "", "</details>", ""]
    if lines:
        lines = ["## Query plans", "",
                 "Taken right after seeding each store, before it is served. PostgreSQL: `EXPLAIN (ANALYZE, "
                 "BUFFERS)` of the statement prepared as the directory's connections prepare it (a generic plan, "
                 "`plan_cache_mode = force_generic_plan`), after one warm run. SQLite: `EXPLAIN QUERY PLAN` and "
                 "the best of three timed runs after a warm one. A PostgreSQL search runs a scan of the next rows in id order or asks the "
                 "trigram index first, as a sample of the names says (`directory_api/store/search_pg.py`); both "
                 "statements are shown, the one it runs first marked.", ""] + lines
    return lines


def planning_section(p: dict) -> list[str]:
    """The planning-round benchmark: cost per round at each peer count, both ways, both databases."""
    lines = ["## Planning rounds", ""]
    if p.get("error"):
        return lines + [f"**The planning benchmark failed:** `{p['error']}`", ""]
    cfg = p.get("config", {})
    lines += [
        "`bench/planning.py`: every peer live and accepting uploads, each the only holder of "
        f"{cfg.get('files_per_peer')} files, so each round of `Planner.plan_for_holder` finds files below R = 2 "
        "and asks for backup candidates for each. Rounds run in a transaction that is rolled back (every round "
        "starts from the same state), for distinct holders. *ring sample*: how the planner chooses now, windows "
        "of 32 live peers that follow the file's place on the ring; *every live peer*: how it chose before.", "",
        "| database | peers | files | ms a round, ring sample | ms a round, every live peer | copies a round |",
        "|---|---|---|---|---|---|"]
    for r in p.get("runs", []):
        lines.append(f"| {r['database']} | {r['peers']:,} | {r['files']:,} | "
                     f"{fmt_summary(r['ring_sample']['ms_per_round'], 1)} | "
                     f"{fmt_summary(r['every_live_peer']['ms_per_round'], 1)} | "
                     f"{r['ring_sample']['copies_per_round']:g} |")
    lines.append("")
    for r in p.get("runs", []):
        for plan in r.get("plans", []):
            lines += [f"<details><summary>{r['database']}, {r['peers']:,} peers: {plan['label']}</summary>", "",
                      "```", plan.get("plan", "").rstrip(), "```", "", "</details>", ""]
    if p.get("postgres_skipped"):
        lines += [f"PostgreSQL was skipped: {p['postgres_skipped']}", ""]
    return lines


def cluster_section(c: dict) -> list[str]:
    """The cluster benchmark: one and two directory processes behind HAProxy."""
    lines = ["## Cluster: directories behind HAProxy", ""]
    if c.get("error"):
        return lines + [f"**The cluster benchmark failed:** `{c['error']}`", ""]
    if c.get("skipped") and not c.get("by_processes"):
        return lines + [f"Skipped: {c['skipped']}", ""]
    cfg = c.get("config", {})
    lines += [
        f"`bench/cluster.py`: {cfg.get('files', 0):,} files on a PostgreSQL database of its own; "
        f"`devtools.cluster` starts N directory processes (gunicorn gthread, {cfg.get('workers')} workers × "
        f"{cfg.get('threads')} threads each) and HAProxy in front, as `make cluster` does. Each round runs the "
        "ceiling and search through HAProxy and the ceiling of the first directory directly (no HAProxy); CPU "
        "is counted over every process of the cluster.", "",
        "| processes | workload | requests/s | p99 ms | CPU ms/request | / its pair |", "|---|---|---|---|---|---|"]
    for row in c.get("by_processes", []):
        for name, w in row["workloads"].items():
            ratio = w.get("ratio_to_ceiling")
            pair = {"search via haproxy": "ceiling via haproxy", "ceiling via haproxy": "ceiling direct"}.get(name, "")
            lines.append(f"| {row['processes']} | {name} | {fmt_summary(w['rps'])} | {fmt_summary(w['p99_ms'], 1)} | "
                         f"{fmt_summary(w['server_cpu_ms_per_req'], 2)} | "
                         f"{fmt_summary(ratio, 2) + ' (over ' + pair + ')' if ratio else '–'} |")
    lines.append("")
    for row in c.get("by_processes", []):
        split = row.get("cpu_split") or {}
        if split:
            lines.append(f"- {row['processes']} process(es), one search run through HAProxy: HAProxy "
                         f"{split['haproxy_cpu_ms_per_req']:.2f} ms CPU a request, the directories "
                         f"{split['directories_cpu_ms_per_req']:.2f} ms (PostgreSQL's own CPU is not counted).")
    return lines + [""]
