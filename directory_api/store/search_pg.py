"""Name search on PostgreSQL: fixed statements whose plans cannot go wrong, chosen by the search.

Letting the planner choose per query (custom plans, ``ILIKE``) went wrong both ways: it
scanned files in id order hoping to meet 21 matches soon, and names of one artist come in
clumps (an album is a run of rows), so a rare query read half the table; or it trusted the
trigram index for a frequent word and rechecked tens of thousands of rows to keep 21. Planning
alone cost 1-2 ms a query, and a bigger statistics target made planning slower, not better.

So PostgreSQL runs generic plans, prepared once per connection (``engine._configure_postgresql``),
of two statements whose plans do not depend on the values:

- ``scan``: the next ``window`` rows after the cursor in id order (the primary key), each
  checked with a byte-wise ``LIKE`` on the stored lower-cased name; the scan stops as soon as
  ``limit`` results are found, so a frequent word costs a few dozen rows. If the window ends
  first, its last id comes back and the search goes on from there.
- ``index``: the first ``INDEX_CAP`` matches after a point from the pg_trgm GIN index, sorted
  by id: its cost grows with the number of matches, which is small exactly when a scan would
  find too few. A query of 1-2 characters has no trigram to look up: it is only scanned for.

The search picks one from the share of matching names in a sample (``NameSample``: the
histogram ANALYZE keeps of ``name_folded``, 1,000 names, read once every few minutes): a word
in at least ``scan_density`` of the names is scanned for, others are looked up. A wrong guess
costs one more statement, never a wrong answer: a window that finds nothing hands over to the
index, an index with more than ``INDEX_CAP`` matches hands over to longer windows.
Liveness, "first live matching row per sha256" and the holders are sub-plans evaluated per
candidate row, in order, never joins the planner could turn into a hash of a whole table.
"""
from __future__ import annotations

import json
import math
import threading
import time

from sqlalchemy import text
from sqlalchemy.engine import Connection

FIRST_WINDOW = 1024  # rows of the first scan when the sample says nothing
GROWTH = 4  # each next window, while windows find something, is this many times longer
INDEX_CAP = 2048  # matches the index may return (and sort) before the word counts as frequent
MAX_WINDOW = 32_768  # the longest window
# A looked-up match costs about this many scanned rows: its heap page is a random visit (the
# bitmap of "01 - love" touched 2,732 pages for 6,578 candidates), then a recheck and a sort.
INDEX_ROW_COST = 10.0
SAMPLE_TTL_S = 300.0
PLAN_CACHE = 4096  # queries whose plan (not result) is remembered until the sample is read again
INDEX_TRIGRAMS = 3  # trigrams the index is asked with (index_pattern)

# Per candidate w: not a refuted claim (store.claims), its peer is live, and no earlier live row
# with the same sha256 matches too.
_LIVE_FIRST = """
    w.proof != 2 AND (SELECT p.last_seen FROM p2p_peers p WHERE p.peer_id = w.peer_id) >= :ls
    AND (SELECT 1 FROM p2p_files f2 JOIN p2p_peers p2 ON p2.peer_id = f2.peer_id
         WHERE f2.sha256 = w.sha256 AND f2.id < w.id AND p2.last_seen >= :ls AND f2.proof != 2 AND {match2}
         LIMIT 1) IS NULL"""
# Per hit: its live holders that are not refuted, as one JSON array, through the (sha256, id,
# peer_id, proof) index.
_HOLDERS = """(SELECT json_agg(json_build_array(x.peer_id, x.address)) FROM (
        SELECT hf.peer_id,
               (SELECT h.grpc_address FROM p2p_peers h WHERE h.peer_id = hf.peer_id AND h.last_seen >= :ls)
               AS address
        FROM p2p_files hf WHERE hf.sha256 = hits.sha256 AND hf.proof != 2 OFFSET 0) x
      WHERE x.address IS NOT NULL)"""
_PAGE = f"SELECT json_agg(json_build_array(hits.id, hits.sha256, hits.name, hits.size, {_HOLDERS})) FROM hits"

# How a name matches: "like" a lower-cased pattern (substring; "%" for every name). Folding happens
# here, with the database's lower(), which is what filled name_folded.
# The pattern is folded in an uncorrelated sub-select, which PostgreSQL runs once per statement
# (an InitPlan); written plainly, a generic plan would call lower() again on every row. LIKE's
# default escape character is the backslash the pattern was escaped with.
_LIKE = "LIKE (SELECT lower(:pat))"
_MATCH = {"like": (f"w.name_folded {_LIKE}", f"f2.name_folded {_LIKE}")}
# The index is asked with the query's longer words only (index_pattern), then every candidate is
# checked against the whole query; COLLATE "C" keeps that check out of the index condition,
# where the planner would put it back and intersect every trigram again.
_INDEX_MATCH = {"like": "w.name_folded LIKE (SELECT lower(:ipat)) AND w.name_folded COLLATE \"C\" " + _LIKE}


def like_escape(text_: str) -> str:
    """text_ with LIKE's wildcards and escape character escaped (the escape is the backslash)."""
    return text_.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def search(conn: Connection, sample: "NameSample", query: str, live_since: float, limit: int, after: int) -> list:
    """Up to limit rows [id, sha256, name, size, holders] of live files whose name holds query
    after id after, in id order (see search_page)."""
    sample.refresh(conn)
    match, pattern, window, use_index = sample.plan(query, limit)
    return search_page(conn, {"ls": live_since, "after": after, **pattern}, match, limit, window, use_index)


def index_pattern(query: str, sample: "NameSample | None" = None) -> str:
    """The LIKE pattern the trigram index is asked with: the rarest trigram of each of a few words.

    The GIN index costs the length of the posting lists it intersects, and every trigram of a
    query is in the index condition when asked with the whole query: at 1M files
    "midnight train" took 67 ms there, mostly for "igh", "ght" and "ain", which half the names
    have. So the index is asked with the INDEX_TRIGRAMS trigrams (inside words, as pg_trgm
    indexes them) that are rarest among the sample's names, one a word, in query order
    ("%dni%tra%"); every candidate is then checked against the whole query. Without a
    sample (or for a query that is not ASCII, whose case folding Python could not repeat), the
    words of 4 or more letters (else 3) are used instead. A query with no run of 3 letters or
    digits is asked as it is.
    """
    spans = [(start, start + 3) for start in range(len(query) - 2) if query[start:start + 3].isalnum()]
    if not spans:
        return "%" + like_escape(query) + "%"
    if sample is not None and sample.trigrams and query.isascii():
        folded = query.lower()

        def rarity(span):
            return sample.trigrams.get(folded[span[0]:span[1]], 0), span[0]

        # The rarest trigram of each word, then the rarest of those: trigrams of one word say
        # little more together than the rarest of them alone ("midni" for "midnight train").
        by_word: dict[int, tuple] = {}
        for span in spans:
            word = _word_start(query, span[0])
            if word not in by_word or rarity(span) < rarity(by_word[word]):
                by_word[word] = span
        ranked = sorted(by_word.values(), key=rarity)
        # Add words' trigrams, rarest first, until no sampled name holds them all: trigrams of
        # one word say little more together than the rarest alone ("midni" for "midnight
        # train"), and a frequent word ("the") narrows nothing once a rare one is in.
        spans, holders = [], sample.names
        for span in ranked[:INDEX_TRIGRAMS]:
            trigram = folded[span[0]:span[1]]
            spans.append(span)
            holders = [name for name in holders if trigram in name]
            if len(holders) <= 1:
                break
        spans.sort()
    else:
        words = "".join(c if c.isalnum() else " " for c in query).split()
        for least in (4, 3):
            chosen = [w for w in words if len(w) >= least]
            if chosen:
                return "%" + "%".join(chosen) + "%"
    merged: list[list[int]] = []
    for start, end in spans:
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return "%" + "%".join(query[start:end] for start, end in merged) + "%"


def _scan_statement(match: str):
    """Hits among the next :w rows after :after; the window's last id when it ran out first."""
    own, other = _MATCH[match]
    return text(f"""
        WITH hits AS (
            SELECT w.id, w.sha256, w.name, w.size FROM (
                SELECT id, sha256, name, size, peer_id, name_folded, proof FROM p2p_files
                WHERE id > :after ORDER BY id LIMIT :w) w
            WHERE {own} AND {_LIVE_FIRST.format(match2=other)}
            LIMIT :lim)
        SELECT ({_PAGE}),
               CASE WHEN (SELECT count(*) FROM hits) < :lim THEN
                   (SELECT id FROM p2p_files WHERE id > :after ORDER BY id OFFSET :w - 1 LIMIT 1) END
    """)


def _index_statement(match: str):
    """Hits among the first :cap indexed matches after :after, in id order; and whether the
    index had more than :cap (then the hits are not the first ones, and are not used)."""
    own, other = _INDEX_MATCH[match], _MATCH[match][1]
    # The inner LIMIT without ORDER BY stops the bitmap heap scan after :cap matches, so a
    # frequent word costs at most :cap rows here. "id + 0": the primary key can neither give
    # the order nor narrow the bitmap, so the plan is always the name index and a sort, never an
    # id-order scan hoping to meet matches early, nor a bitmap of every id after the cursor.
    return text(f"""
        WITH w AS MATERIALIZED (
            SELECT * FROM (
                SELECT id, sha256, name, size, peer_id, name_folded, proof FROM p2p_files w
                WHERE {own} AND id + 0 > :after LIMIT :cap) c
            ORDER BY id),
        hits AS (
            SELECT w.id, w.sha256, w.name, w.size FROM w WHERE {_LIVE_FIRST.format(match2=other)} LIMIT :lim)
        SELECT CASE WHEN (SELECT count(*) FROM w) < :cap THEN ({_PAGE}) END, (SELECT count(*) FROM w) >= :cap
    """)


_STATEMENTS = {(kind, match): build(match) for kind, build in (("scan", _scan_statement), ("index", _index_statement))
               for match in _MATCH}


def statement(kind: str, match: str):
    """One of the four fixed statements (for EXPLAIN in the benchmark report)."""
    return _STATEMENTS[(kind, match)]


def _driver_sql(statement) -> str:
    from sqlalchemy.dialects.postgresql import psycopg

    return str(statement.compile(dialect=psycopg.dialect()))


# The statements in psycopg's own placeholders, run on the driver's cursor: SQLAlchemy's part of
# an execute (bind processing, result wrapping) cost more than the search's own Python work.
_DRIVER_SQL = {key: _driver_sql(statement) for key, statement in _STATEMENTS.items()}


def _run(conn: Connection, key: tuple, params: dict) -> tuple:
    with conn.connection.driver_connection.cursor() as cursor:
        cursor.execute(_DRIVER_SQL[key], params, prepare=True)
        return cursor.fetchone()


class NameSample:
    """The lower-cased names ANALYZE sampled (pg_stats histogram of name_folded) and the table's
    size, refreshed every SAMPLE_TTL_S; the share of names matching a query, estimated from it."""

    _QUERY = text("""
        SELECT s.histogram_bounds::text::text[], c.reltuples
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        LEFT JOIN pg_stats s ON s.schemaname = n.nspname AND s.tablename = c.relname AND s.attname = 'name_folded'
        WHERE c.oid = 'p2p_files'::regclass
    """)

    def __init__(self):
        self.names: list[str] = []
        self.trigrams: dict[str, int] = {}  # how many sampled names hold each trigram
        self.rows = 0.0
        self._text = ""
        self._loaded_at = -math.inf
        self._lock = threading.Lock()
        self._plans: dict[tuple[str, int], tuple] = {}

    def refresh(self, conn: Connection, now: float | None = None) -> None:
        """Read the sample again when it is older than SAMPLE_TTL_S."""
        now = time.monotonic() if now is None else now
        if now - self._loaded_at < SAMPLE_TTL_S or not self._lock.acquire(blocking=False):
            return
        try:
            row = conn.execute(self._QUERY).first()
            names, rows = (row[0] or [], float(row[1] or 0)) if row else ([], 0.0)
            self.names, self.rows = list(names), max(rows, 0.0)
            self.trigrams = _trigram_counts(self.names)
            self._text = "\n" + "\n".join(self.names) + "\n"
            self._plans = {}
            self._loaded_at = now
        finally:
            self._lock.release()

    def index_pattern(self, query: str) -> str:
        """index_pattern with this sample."""
        return index_pattern(query, self)

    def plan(self, query: str, limit: int) -> tuple[str, dict, int, bool]:
        """How to search for query: (match, the pattern parameters, first window, use the index).

        Remembered per query until the sample is read again: weighing a query against 1,000
        sampled names costs a few hundred microseconds of Python, the search itself about a
        millisecond. (It is the plan that is remembered, never a result.)
        """
        key = (query, limit)
        found = self._plans.get(key)
        if found is None:
            found = self._plan(query, limit)
            if len(self._plans) >= PLAN_CACHE:
                self._plans = {}
            self._plans[key] = found
        return found

    def _plan(self, query: str, limit: int) -> tuple[str, dict, int, bool]:
        if not query:  # every name matches: the index would return the whole table
            return "like", {"pat": "%"}, MAX_WINDOW, False
        if len(query) < 3:
            # Contains, any case, but no trigram to look up: scan names in id order until the page
            # is full (a common letter fills it at once; a pair no name holds reads every name).
            window = first_window(self.density(query), None, limit, self.rows) or MAX_WINDOW
            return "like", {"pat": "%" + like_escape(query) + "%"}, window, False
        params = {"pat": "%" + like_escape(query) + "%", "ipat": self.index_pattern(query)}
        window = first_window(self.density(query), self.share_like(params["ipat"]), limit, self.rows)
        return "like", params, window, True

    def density(self, query: str) -> float | None:
        """The estimated share of names containing query; None without a sample."""
        if len(self.names) < 100:
            return None
        folded = query.lower()
        if "\n" in folded or len(folded) < 3:  # counted per name: a letter may occur twice in one
            hits = sum(1 for name in self.names if folded in name)
        else:
            hits = self._text.count(folded)
        return hits / len(self.names)

    def share_like(self, pattern: str) -> float | None:
        """The share of sampled names an index pattern of index_pattern ("%a%b%") matches."""
        if len(self.names) < 100:
            return None
        parts = [part.lower() for part in pattern.strip("%").split("%")]
        hits = 0
        for name in self.names:
            at = 0
            for part in parts:
                at = name.find(part, at)
                if at < 0:
                    break
                at += len(part)
            else:
                hits += 1
        return hits / len(self.names)


def _word_start(query: str, position: int) -> int:
    while position > 0 and query[position - 1].isalnum():
        position -= 1
    return position


def _trigram_counts(names: list[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for name in names:
        for trigram in {name[i:i + 3] for i in range(len(name) - 2)}:
            counts[trigram] = counts.get(trigram, 0) + 1
    return counts


def first_window(density: float | None, candidates: float | None, limit: int, rows: float) -> int:
    """The first step of a search: rows to scan, or 0 to ask the index first.

    density: the estimated share of names that match; candidates: the share the index returns
    (its pattern is looser than the query); both None without a sample. Scanning costs about
    the rows needed to meet limit results (copies of one file come in pairs); the index about
    INDEX_ROW_COST for each candidate.
    """
    if density is None:
        return FIRST_WINDOW
    if density <= 0:
        return 0
    scan_rows = 2 * limit / density
    if scan_rows > INDEX_ROW_COST * max(candidates or 0.0, density) * rows:
        return 0
    return max(FIRST_WINDOW, min(MAX_WINDOW, int(3 * scan_rows)))


def search_page(conn: Connection, params: dict, match: str, limit: int, window: int = FIRST_WINDOW,
                use_index: bool = True) -> list:
    """Up to limit rows [id, sha256, name, size, holders] after params["after"], in id order.

    params: ls, after, pat (and ipat for the index). window: the rows of
    the first scan, or 0 to start with the index. use_index False: only scan windows (every
    name matches, so the index would return the whole table).
    """
    page: list = []
    after, index_asked = params["after"], not use_index
    while True:
        args = {**params, "after": after, "lim": limit - len(page)}
        if window:
            got, window_end = _run(conn, ("scan", match), {**args, "w": window})
            got = _rows(got)
            page += got
            if len(page) >= limit or window_end is None:
                return page
            after = window_end
            # A window that found something: the word is frequent enough that its next results
            # are near, so scan a longer one. One that found nothing: ask the index, unless it
            # has already said there are too many matches for it.
            if got or index_asked:
                window = min(window * GROWTH, MAX_WINDOW)
            else:
                window = 0
            continue
        got, capped = _run(conn, ("index", match), {**args, "cap": INDEX_CAP})
        index_asked = True
        if not capped:
            return page + _rows(got)
        window = MAX_WINDOW  # a frequent word after all: its matches are near in id order


def _rows(value) -> list:
    return (json.loads(value) if isinstance(value, str) else value) or []
