"""Name search on PostgreSQL: two fixed statements whose plans do not depend on the query.

Letting the planner choose per query (custom plans, ``ILIKE``) went wrong both ways: it
scanned files in id order hoping to meet 21 matches soon, and names of one artist come in
clumps (an album is a run of rows), so a rare query read half the table; or it trusted the
trigram index for a frequent word and rechecked tens of thousands of rows to keep 21. Planning
alone cost 1-2 ms a query, and a bigger statistics target made estimates slower, not better.

So the search decides itself, and PostgreSQL only runs plans that cannot go wrong (generic
plans, prepared once per connection, see ``engine._configure_postgresql``):

- ``scan``: the next ``window`` rows after the cursor in id order (the primary key), each
  checked with a byte-wise ``LIKE`` on the stored lower-cased name; the scan stops as soon as
  ``limit`` results are found, so frequent words cost a few dozen rows. If the window ends
  first, its last id comes back and the search goes on from there.
- ``index``: every match after a point, from the pg_trgm GIN index (or, for 1-2 character
  prefixes, a range on the name's text_pattern_ops index), sorted by id: its cost grows with
  the number of matches, which is small exactly when the scan found too few.

A second, larger window is scanned when the first one found some results (the word is
frequent enough that a longer scan beats sorting all its matches), else the index is asked.
Liveness, "first live matching row per sha256" and the holders are sub-plans evaluated per
candidate row, in order, never joins the planner could turn into a hash of a whole table.
"""
from __future__ import annotations

import json

from sqlalchemy import text
from sqlalchemy.engine import Connection

FIRST_WINDOW = 1024  # rows scanned before the index is asked: ~0.4 ms when nothing matches
GROWTH = 4  # each next window, while windows find something, is this many times longer
INDEX_CAP = 2048  # matches the index may return (and sort) before the word counts as frequent
MAX_WINDOW = 32_768  # the scans of a frequent word, once the index has said it is one

# Per candidate w: its peer is live, and no earlier live row with the same sha256 matches too.
_LIVE_FIRST = """
    (SELECT p.last_seen FROM p2p_peers p WHERE p.peer_id = w.peer_id) >= :ls
    AND (SELECT 1 FROM p2p_files f2 JOIN p2p_peers p2 ON p2.peer_id = f2.peer_id
         WHERE f2.sha256 = w.sha256 AND f2.id < w.id AND p2.last_seen >= :ls AND {match2}
         LIMIT 1) IS NULL"""
# Per hit: its live holders as one JSON array, through the (sha256, peer_id) index.
_HOLDERS = """(SELECT json_agg(json_build_array(x.peer_id, x.address)) FROM (
        SELECT hf.peer_id,
               (SELECT h.grpc_address FROM p2p_peers h WHERE h.peer_id = hf.peer_id AND h.last_seen >= :ls)
               AS address
        FROM p2p_files hf WHERE hf.sha256 = hits.sha256 OFFSET 0) x
      WHERE x.address IS NOT NULL)"""
_PAGE = f"SELECT json_agg(json_build_array(hits.id, hits.sha256, hits.name, hits.size, {_HOLDERS})) FROM hits"

# How a name matches: "like" a lower-cased pattern (substring; "%" for every name), or in the
# byte range of names that start with a lower-cased prefix (chr(1114111) is the last code point),
# which the text_pattern_ops index serves. Folding happens here, with the database's lower(),
# which is what filled name_folded.
# The pattern is folded in an uncorrelated sub-select, which PostgreSQL runs once per statement
# (an InitPlan); written plainly, a generic plan would call lower() again on every row. LIKE's
# default escape character is the backslash the pattern was escaped with.
_LIKE = "LIKE (SELECT lower(:pat))"
_FROM = "~>=~ (SELECT lower(:prefix))"
_TO = "~<~ (SELECT lower(:prefix) || chr(1114111))"
_MATCH = {"like": (f"w.name_folded {_LIKE}", f"f2.name_folded {_LIKE}"),
          "range": (f"w.name_folded {_FROM} AND w.name_folded {_TO}",
                    f"f2.name_folded {_FROM} AND f2.name_folded {_TO}")}


def _scan_statement(match: str):
    """Hits among the next :w rows after :after; the window's last id when it ran out first."""
    own, other = _MATCH[match]
    return text(f"""
        WITH hits AS (
            SELECT w.id, w.sha256, w.name, w.size FROM (
                SELECT id, sha256, name, size, peer_id, name_folded FROM p2p_files
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
    own, other = _MATCH[match]
    # The inner LIMIT without ORDER BY stops the bitmap heap scan after :cap matches, so a
    # frequent word costs at most :cap rows here. "id + 0": the primary key can neither give
    # the order nor narrow the bitmap, so the plan is always the name index and a sort, never an
    # id-order scan hoping to meet matches early, nor a bitmap of every id after the cursor.
    return text(f"""
        WITH w AS MATERIALIZED (
            SELECT * FROM (
                SELECT id, sha256, name, size, peer_id, name_folded FROM p2p_files w
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


def search_page(conn: Connection, params: dict, match: str, limit: int, use_index: bool = True) -> list:
    """Up to limit rows [id, sha256, name, size, holders] after params["after"], in id order.

    params: ls, after, and pat (match "like") or prefix (match "range"). use_index False: only
    scan windows (every name matches, so the index would return the whole table).
    """
    page: list = []
    after, window, index_asked = params["after"], FIRST_WINDOW, not use_index
    while True:
        args = {**params, "after": after, "lim": limit - len(page)}
        if window:
            got, window_end = conn.execute(_STATEMENTS[("scan", match)], {**args, "w": window}).one()
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
        got, capped = conn.execute(_STATEMENTS[("index", match)], {**args, "cap": INDEX_CAP}).one()
        index_asked = True
        if not capped:
            return page + _rows(got)
        window = MAX_WINDOW  # a frequent word after all: its matches are near in id order


def _rows(value) -> list:
    return (json.loads(value) if isinstance(value, str) else value) or []
