"""Short queries (1-2 characters) against long ones, in-process, at 100k and 1M files (issue 13).

A trigram index cannot serve a query of 1-2 characters on either database, so the store walks
names in id order until a page is full: cheap for a common letter, a scan of every name for
one nothing contains. This measures that plan against the trigram path (median of --repeat
runs of Store.search, page of 20) and prints PostgreSQL's EXPLAIN of the short statement.
Run: `python -m bench.short_search [--sizes 100000,1000000] [--postgres URL] [--json PATH]`.
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from sqlalchemy import text

from bench import vocab
from devtools.store_tools import bulk_seed, drop_schema
from directory_api.store import Store
from directory_api.store import search_pg

# (label, query): a common letter, a frequent and a rare pair, a pair no name holds, a non-ASCII
# letter, and trigram queries to compare with.
QUERIES = [("common 1", "e"), ("frequent 2", "er"), ("rare 2", "xq"), ("absent 2", "q#"), ("non-ASCII 1", "é"),
           ("trigram 3", "lov"), ("trigram 8", "midnight")]


def seed(store: Store, n_files: int) -> None:
    """n_files named like the search benchmark's, on 100 live peers."""
    data = vocab.generate(100, n_files, replication=1)
    peers = [{"peer_id": p["peer_id"], "grpc_address": p["grpc_address"], "last_seen": 4e9} for p in data.peers]
    rows = ({"peer_id": data.peers[p]["peer_id"], **data.files[f]} for f, p in data.copies)
    bulk_seed(store, peers, rows)


def timings(store: Store, repeat: int) -> dict:
    """Median milliseconds of one search page per query, and how many results it found."""
    out = {}
    for label, query in QUERIES:
        runs, found = [], 0
        for _ in range(repeat):
            start = time.perf_counter()
            found = len(store.search(query, 0.0, 20)["results"])
            runs.append((time.perf_counter() - start) * 1000)
        out[label] = {"q": query, "ms": round(statistics.median(runs), 2), "results": found}
    return out


def explain(store: Store, query: str) -> str:
    """PostgreSQL's EXPLAIN ANALYZE of the first statement the search runs for a short query."""
    sample = search_pg.NameSample()
    with store.engine.connect() as conn:
        sample.refresh(conn)
        match, pattern, window, use_index = sample.plan(query, 21)
        kind = "scan" if window else "index"
        params = {"ls": 0.0, "after": 0, "lim": 21, "w": window, "cap": search_pg.INDEX_CAP, **pattern}
        rows = conn.execute(text("EXPLAIN (ANALYZE, COSTS OFF) " + str(search_pg.statement(kind, match))), params)
        return "\n".join(r[0] for r in rows)


def main(argv: list[str] | None = None) -> int:
    """Seed, time, print; one JSON report with --json."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--postgres", default=None, help="also run on this PostgreSQL URL (its tables are dropped)")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    report: dict = {}
    with tempfile.TemporaryDirectory(prefix="short-search-") as tmp:
        for n in (int(s) for s in args.sizes.split(",")):
            urls = {"sqlite": f"sqlite:///{tmp}/s{n}.db"}
            if args.postgres:
                urls["postgresql"] = args.postgres
            for dialect, url in urls.items():
                store = Store(url)
                drop_schema(store)
                store.create_schema()
                start = time.perf_counter()
                seed(store, n)
                seeded = time.perf_counter() - start
                result = {"seed_s": round(seeded, 1), **timings(store, args.repeat)}
                if dialect == "postgresql":
                    result["plan_absent"] = explain(store, "q#")
                    result["plan_common"] = explain(store, "e")
                report[f"{dialect} {n}"] = result
                print(f"{dialect} {n:>9,} files (seeded in {seeded:.0f} s)")
                for label, t in result.items():
                    if isinstance(t, dict):
                        print(f"  {label:<12} q={t['q']!r:<12} {t['ms']:>9.2f} ms  {t['results']} results")
                for key in ("plan_absent", "plan_common"):
                    if key in result:
                        print(f"  {key}:\n    " + result[key].replace("\n", "\n    "))
                drop_schema(store)
                store.dispose()
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
