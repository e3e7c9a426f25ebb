"""The query plans the report shows: each query shape of the directory benchmark, as the directory runs it."""
from __future__ import annotations

import time

from bench import vocab

# The query shapes of the benchmark's mix whose plans the report shows: a frequent word, an
# artist's name (rare, clumped), a phrase, a miss, a 1-2 character query, the empty query.
PLAN_QUERIES = [("substring, frequent word", "love"), ("substring, an artist's name", None),
                ("substring, phrase", "midnight train"), ("substring, no match", "zzyzx"),
                ("1-2 characters (contains)", "lo"), ("empty query (every file)", "")]


def explain_shapes(db_url: str, ds: vocab.Dataset) -> list[dict]:
    """EXPLAIN (ANALYZE, BUFFERS) (PostgreSQL) or EXPLAIN QUERY PLAN (SQLite) of each query shape
    of the workloads, as the directory runs them; answers [{label, query, statement, plan, ms}]."""
    from directory_api.store import Store, plans, search_pg

    store = Store(db_url, pool_size=1)
    out: list[dict] = []
    try:
        now = time.time()
        live_since = now - 3600
        store.search("love", live_since, 20)  # PostgreSQL: reads the name sample the search plans with
        sample = getattr(store, "_name_sample", None)
        with store.engine.connect() as conn:  # one transaction, rolled back at the end
            for label, query in PLAN_QUERIES:
                query = vocab.ARTISTS[3].lower() if query is None else query
                first = None
                if store.dialect == "postgresql" and query:
                    density = sample.density(query)
                    if len(query) < 3:
                        first = "scan window"  # no trigram to look up
                    else:
                        candidates = sample.share_like(sample.index_pattern(query))
                        first = "scan window" if search_pg.first_window(density, candidates, 21, sample.rows) else "index"
                for shape, statement, params in plans.search_shapes(store.dialect, query, live_since, sample=sample):
                    found = plans.explain(conn, statement, params)
                    runs_first = first is None or shape.startswith(first) or (first == "index" and "index" in shape)
                    out.append({"label": label, "query": query, "statement": shape, "runs_first": runs_first,
                                "params": {k: v for k, v in params.items() if k in ("pat", "ipat", "w")},
                                **found})
            token = "0" * 64  # the plan of a heartbeat does not depend on the token being known
            for label, statement, params in plans.hot_shapes(
                    store.dialect, sha256=ds.files[len(ds.files) // 2]["sha256"], token_hash=token,
                    holder=ds.peers[0]["peer_id"], live_since=live_since, now=now):
                out.append({"label": label, "statement": label, "runs_first": True, **plans.explain(conn, statement, params)})
            conn.rollback()  # the handouts statement is an UPDATE: leave the seeded store as it was
    finally:
        store.dispose()
    return out
