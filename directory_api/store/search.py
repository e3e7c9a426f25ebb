"""Name search and one file's details: the read paths every client hits, tuned by the benchmarks.

Both run one fixed statement per request (see _search_statement and _FILE_DETAIL): building
SQL per request, or fetching a row per holder, cost more than the database's own work.
"""
from __future__ import annotations

import functools
import itertools
import json

from sqlalchemy import text
from sqlalchemy.engine import Connection

from . import search_pg
from .claims import PROVEN, REFUTED, UNPROVEN
from .engine import StoreEngine, transactional


def _fts_match(query: str) -> tuple[str, int]:
    """The FTS5 MATCH text for a substring query of 3+ characters, and 1 if it is exact.

    A quoted phrase is an exact case-insensitive substring match, but FTS5 checks it by walking
    the posting and position lists of every one of its trigrams: 12 of them for "midnight
    train", most of them frequent. For an ASCII query every third trigram (and the last) is
    enough to find the candidates, without positions; the search then keeps the names that
    contain the query (SQLite's lower() folds ASCII exactly as the index does). Other queries
    keep the phrase, whose Unicode case folding lower() could not repeat.
    """
    if not query.isascii():
        return '"' + query.replace('"', '""') + '"', 1
    folded = query.lower()
    starts = list(range(0, len(folded) - 2, 3))
    if starts[-1] != len(folded) - 3:
        starts.append(len(folded) - 3)
    terms = dict.fromkeys(folded[i:i + 3] for i in starts)
    return " AND ".join('"' + term.replace('"', '""') + '"' for term in terms), 0


def case_variants(query: str) -> list[str]:
    """The spellings of a 1-2 character query that SQLite's LIKE must try to match it in any case.

    LIKE folds ASCII letters itself; any other character is tried in its lower and upper case
    (where each is one character): at most four spellings, usually one.
    """
    options = [[c] if c.isascii() else sorted({v for v in (c, c.lower(), c.upper()) if len(v) == 1})
               for c in query]
    return ["".join(p) for p in itertools.product(*options)]


_like_escape = search_pg.like_escape


@functools.lru_cache(maxsize=None)
def _search_statement(kind: str):
    """The SQLite search SQL for one query kind (substring, short<n> or all), built once (see
    search_pg for PostgreSQL's)."""
    # Every request runs one of a few fixed statements: plain SQL with bound parameters costs
    # nothing to build, where composing aliased Core selects per request dominated its CPU time.
    order_key, source, match, match2 = "f.id", "p2p_files f", "", ""
    if kind == "substring":
        # FTS5 drives the scan in rowid order, so LIMIT stops it early.
        order_key = "p2p_files_fts.rowid"
        source = "p2p_files_fts JOIN p2p_files f ON f.id = p2p_files_fts.rowid"
        match = "AND p2p_files_fts MATCH :m AND (:exact OR instr(lower(f.name), :ql) > 0)"
        # Only the few rows sharing one sha256 are checked here: a plain case-folded test will do.
        match2 = "AND instr(lower(f2.name), :ql) > 0"
    elif kind.startswith("short"):
        # 1-2 characters: no trigram to look up, so walk the names in id order until the page is
        # full (LIMIT stops the scan; a common letter fills a page at once, a pair no name holds
        # reads every name: 17 ms at 100k files, see bench/short_search.py). LIKE folds ASCII
        # itself, faster than instr(lower(name)); other characters come as case variants.
        n = int(kind[len("short"):])
        like = " OR ".join(f"{{n}} LIKE :v{i} ESCAPE '\\'" for i in range(n))
        match = "AND (" + like.format(n="f.name") + ")"
        match2 = "AND (" + like.format(n="f2.name") + ")"
    # A refuted claim (proof 2, store.claims) is neither a match nor a holder.
    # The page comes back as one JSON array of [id, sha256, name, size, [[peer_id, address], ...]].
    agg = "json_group_array(json_array({}))"
    holders = f"""json((
            SELECT {agg.format("h.peer_id, h.grpc_address")} FROM p2p_files hf JOIN p2p_peers h ON h.peer_id = hf.peer_id
            WHERE hf.sha256 = page.sha256 AND h.last_seen >= :ls AND hf.proof != 2))"""
    entry = f"page.id, page.sha256, page.name, page.size, {holders}"
    return text(f"""
        WITH page AS (
            SELECT f.id AS id, f.sha256 AS sha256, f.name AS name, f.size AS size
            FROM {source} JOIN p2p_peers p ON p.peer_id = f.peer_id
            WHERE {order_key} > :after AND p.last_seen >= :ls AND f.proof != 2 {match}
              AND NOT EXISTS (
                  SELECT 1 FROM p2p_files f2 JOIN p2p_peers p2 ON p2.peer_id = f2.peer_id
                  WHERE f2.sha256 = f.sha256 AND f2.id < f.id AND p2.last_seen >= :ls AND f2.proof != 2 {match2})
            ORDER BY {order_key}
            LIMIT :lim
        )
        SELECT {agg.format(entry)} FROM page
    """)


# GET /files/{sha256}: live holders with their names and proofs (kind 0), unexpired pending copies
# (kind 1) and the withdrawal mark (kind 2) in one round trip; every branch is served by an index
# on sha256. Refuted holders come too, only to be counted (store.claims).
_FILE_DETAIL = text("""
    SELECT 0 AS kind, p.peer_id, p.grpc_address, f.name, f.size, f.piece_size, f.pieces,
           NULL AS deadline, NULL AS handed_at, f.proof
    FROM p2p_files f JOIN p2p_peers p ON p.peer_id = f.peer_id
    WHERE f.sha256 = :s AND p.last_seen >= :ls
    UNION ALL
    SELECT 1, c.to_peer_id, t.grpc_address, c.from_peer_id, NULL, NULL, NULL, c.deadline, c.handed_at, NULL
    FROM p2p_pending_copies c JOIN p2p_peers t ON t.peer_id = c.to_peer_id
    WHERE c.sha256 = :s AND c.deadline >= :now
    UNION ALL
    SELECT 2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL FROM p2p_withdrawn w WHERE w.sha256 = :s
    ORDER BY 1, 2, 4
""")


class Search(StoreEngine):
    """Search by name and file details, live holders only."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._name_sample = search_pg.NameSample()  # PostgreSQL only: what the search plans with

    @transactional("read_one")
    def search(self, query: str, live_since: float, limit: int, after_id: int = 0, *, conn: Connection) -> dict:
        """Live files whose name contains query (case-insensitive), one row per sha256.

        Rows come in file-id order; a sha256 is reported at its first live matching row only,
        so pages never repeat a file. Queries of 1-2 characters (no trigram to look up) scan the
        names in id order until the page is full. Returns {results, next_after} where next_after
        is the id to resume after, or None on the last page.
        """
        if self.dialect == "postgresql":
            page = search_pg.search(conn, self._name_sample, query, live_since, limit + 1, after_id)
        else:
            page = self._search_sqlite(conn, query, live_since, limit, after_id)
        # JSON aggregates promise no order: restore file-id order here.
        page.sort(key=lambda item: item[0])
        results: list[dict] = []
        seen: set[str] = set()
        next_after = None
        for n, (file_id, sha, name, size, holders) in enumerate(page):
            if n == limit:
                next_after = page[n - 1][0]
                break
            # Where SQLite's ASCII-only folding disagrees with the index's, a sha256 could
            # repeat: report it once, at its first row.
            if sha in seen:
                continue
            seen.add(sha)
            holders = sorted({peer_id: address for peer_id, address in holders or ()}.items())
            results.append({"sha256": sha, "name": name, "size": size,
                            "holders": [{"peer_id": peer_id, "grpc_address": address} for peer_id, address in holders]})
        return {"results": results, "next_after": next_after}

    def _search_sqlite(self, conn: Connection, query: str, live_since: float, limit: int, after_id: int) -> list:
        params = {"ls": live_since, "after": after_id, "lim": limit + 1}
        if len(query) >= 3:
            kind = "substring"
            params["m"], params["exact"] = _fts_match(query)
            # SQLite's lower() folds ASCII only, so fold the query the same way.
            params["ql"] = "".join(c.lower() if c.isascii() else c for c in query)
        elif query:
            variants = case_variants(query)
            kind = f"short{len(variants)}"
            params.update({f"v{i}": "%" + _like_escape(v) + "%" for i, v in enumerate(variants)})
        else:
            kind = "all"
        # One round trip, one row: the page (limit + 1 file rows, the last only to learn whether
        # another page follows), each with its live holders, as one JSON array built by the
        # database. A row per holder would cross the driver 2-3 times as often, and each row
        # costs a GIL hand-over inside sqlite3 and a Row object here.
        # On the driver's own cursor, which takes the statement's :name parameters as they are:
        # SQLAlchemy's part of an execute cost a fifth of the search.
        value = conn.connection.driver_connection.execute(_search_statement(kind).text, params).fetchone()[0]
        return (json.loads(value) if isinstance(value, str) else value) or []

    @transactional("read_one")
    def file_detail(self, sha256: str, live_since: float, now: float, *, conn: Connection) -> dict | None:
        """One file's size, names, live holders, pieces, pending copies and its live holders by proof
        (proofs: {proven, unproven, refuted}); None if no live holder but refuted ones."""
        # One statement answers holders, pending copies and the withdrawal flag (row kinds 0, 1, 2).
        rows = conn.execute(_FILE_DETAIL, {"s": sha256, "ls": live_since, "now": now}).all()
        shown = [r for r in rows if r[0] == 0 and r[9] != REFUTED]
        if not shown:
            return None
        holders: dict[str, dict] = {}
        names: set[str] = set()
        pending_: list[dict] = []
        detail = {"sha256": sha256, "size": shown[0][4]}
        is_withdrawn = False
        proofs: dict[str, int] = {}
        for kind, peer_id, address, name, size, piece_size, pieces, deadline, handed_at, proof in rows:
            if kind == 0:
                proofs[peer_id] = max(proof, proofs.get(peer_id, UNPROVEN))
                if proof == REFUTED:
                    continue
                if peer_id not in holders:
                    holders[peer_id] = {"peer_id": peer_id, "grpc_address": address}
                names.add(name)
                if piece_size is not None and "piece_size" not in detail:
                    detail["piece_size"], detail["pieces"] = piece_size, json.loads(pieces)
            elif kind == 1:
                pending_.append({"to_peer_id": peer_id, "to_address": address, "from_peer_id": name,
                                 "deadline": deadline, "handed_at": handed_at})
            else:
                is_withdrawn = True
        detail["names"] = sorted(names)
        detail["holders"] = list(holders.values())
        detail["pending"] = pending_
        detail["withdrawn"] = is_withdrawn
        detail["proofs"] = {state: sum(1 for p in proofs.values() if p == value)
                            for state, value in (("proven", PROVEN), ("unproven", UNPROVEN), ("refuted", REFUTED))}
        return detail

