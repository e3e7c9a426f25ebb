"""Query plans of the store's hot statements, as the database runs them (for the benchmark report).

PostgreSQL: each statement is prepared (``PREPARE``) and explained with
``EXPLAIN (ANALYZE, BUFFERS) EXECUTE``, so the plan shown is the generic plan the directory's
connections use (``plan_cache_mode = force_generic_plan``), with its real timings. SQLite:
``EXPLAIN QUERY PLAN`` of the same statement, and the best of three timed runs after a warm one.
"""
from __future__ import annotations

import re
import time

from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import TextClause

from . import search_pg
from . import copies
from .search import _FILE_DETAIL, _fts_match, _like_escape, _search_statement, case_variants
from .sessions import _LEASE_SESSION

_PARAM = re.compile(r"(?<![:\w]):(\w+)")


def _as_text(conn: Connection, statement) -> tuple[TextClause, dict]:
    """The statement as text with :name parameters, and the values it binds itself (LIMIT's OFFSET)."""
    if isinstance(statement, TextClause):
        return statement, {}
    compiled = statement.compile(dialect=conn.dialect)
    own = {k: v for k, v in compiled.params.items() if v is not None}
    if compiled.positional:  # sqlite's "?", in the order of positiontup
        names = iter(compiled.positiontup)
        return text(re.sub(r"\?", lambda _: ":" + next(names), compiled.string)), own
    return text(re.sub(r"%\((\w+)\)s", r":\1", compiled.string)), own  # psycopg's pyformat


def explain(conn: Connection, statement, params: dict) -> dict:
    """{plan: text, ms: one timed run} of statement with params, on this connection's database."""
    clause, own = _as_text(conn, statement)
    params = {**own, **params}
    sql = clause.text
    if conn.dialect.name == "postgresql":
        names: list[str] = []

        def number(match):
            if match.group(1) not in names:
                names.append(match.group(1))
            return f"${names.index(match.group(1)) + 1}"

        numbered = _PARAM.sub(number, sql)
        types = ", ".join(_pg_type(params[n]) for n in names)
        conn.exec_driver_sql("SET LOCAL plan_cache_mode = force_generic_plan")
        conn.exec_driver_sql(f"PREPARE p2p_explained ({types}) AS {numbered}" if names
                             else f"PREPARE p2p_explained AS {numbered}")
        # EXECUTE is a utility statement: it takes no bound parameters, only literals.
        from psycopg import sql

        raw = conn.connection.driver_connection
        args = ", ".join(f"{sql.Literal(params[n]).as_string(raw)}::{_pg_type(params[n])}" for n in names)
        execute = f"EXECUTE p2p_explained({args})" if names else "EXECUTE p2p_explained"
        with raw.cursor() as cur:  # no parameters: psycopg leaves the literals' "%" alone
            cur.execute(execute)  # warm: the same cache state as a busy server
            cur.execute("EXPLAIN (ANALYZE, BUFFERS) " + execute)
            rows = [r[0] for r in cur.fetchall()]
        conn.exec_driver_sql("DEALLOCATE p2p_explained")
        plan = "\n".join(rows)
        found = re.search(r"Execution Time: ([\d.]+) ms", plan)
        return {"plan": plan, "ms": float(found.group(1)) if found else None}
    rows = conn.execute(text("EXPLAIN QUERY PLAN " + sql), params).all()
    plan = "\n".join(f"{'  ' * _depth(rows, r)}{r[-1]}" for r in rows)
    conn.execute(clause, params).all()  # warm: the same cache state as a busy server
    runs = []
    for _ in range(3):
        started = time.perf_counter()
        conn.execute(clause, params).all()
        runs.append(1000 * (time.perf_counter() - started))
    return {"plan": plan, "ms": min(runs)}


def _pg_type(value) -> str:
    """The parameter type psycopg sends for a Python value."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "bigint"
    if isinstance(value, float):
        return "double precision"
    return "text"


def _depth(rows, row) -> int:
    parents = {r[0]: r[1] for r in rows}
    depth, parent = 0, row[1]
    while parent in parents:
        depth, parent = depth + 1, parents[parent]
    return depth


def search_shapes(dialect: str, query: str, live_since: float, after: int = 0, limit: int = 21,
                  sample=None) -> list[tuple]:
    """The statements one search runs first, as [(label, statement, params)]."""
    if dialect == "postgresql":
        params = {"ls": live_since, "after": after, "lim": limit}
        if len(query) >= 3:
            like = {**params, "pat": "%" + _like_escape(query) + "%", "ipat": search_pg.index_pattern(query, sample)}
            return [("scan window", search_pg.statement("scan", "like"), {**like, "w": search_pg.FIRST_WINDOW}),
                    ("trigram index", search_pg.statement("index", "like"), {**like, "cap": search_pg.INDEX_CAP})]
        if query:  # 1-2 characters: scanned for only (no trigram to look up)
            return [("scan window", search_pg.statement("scan", "like"),
                     {**params, "pat": "%" + _like_escape(query) + "%", "w": search_pg.FIRST_WINDOW})]
        return [("scan window", search_pg.statement("scan", "like"),
                 {**params, "pat": "%", "w": search_pg.FIRST_WINDOW})]
    params = {"ls": live_since, "after": after, "lim": limit}
    if len(query) >= 3:
        m, exact = _fts_match(query)
        ql = "".join(c.lower() if c.isascii() else c for c in query)
        return [("fts5", _search_statement("substring"), {**params, "m": m, "exact": exact, "ql": ql})]
    if query:
        variants = case_variants(query)
        return [("short scan", _search_statement(f"short{len(variants)}"),
                 {**params, **{f"v{i}": "%" + _like_escape(v) + "%" for i, v in enumerate(variants)}})]
    return [("all", _search_statement("all"), params)]


def hot_shapes(dialect: str, *, sha256: str, token_hash: str, holder: str, live_since: float,
               now: float) -> list[tuple]:
    """The other hot statements: lookup, heartbeat, handouts, a backup-candidate sample."""
    from .ring import file_place

    return [
        ("lookup GET /files/{sha256}", _FILE_DETAIL, {"s": sha256, "ls": live_since, "now": now}),
        ("heartbeat (lease_session)", _LEASE_SESSION, {"th": token_hash, "ls": live_since, "now": now}),
        ("handouts (take_handouts)", copies.handouts_statement(), {"src": holder, "now": now}),
        ("backup candidates (ring sample)", copies.sample_statement(),
         {"place": file_place(sha256), "ls": live_since, "k": 32}),
    ]
