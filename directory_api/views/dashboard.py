"""Blueprint for the dashboard: a page at / for people, its overview fragment (polled) and its search.

Server-rendered HTML with the package's own CSS and script (no external asset: the page says
so in its Content-Security-Policy). Without the script the page still works: it shows the state
when it was loaded, and the search form is a plain GET of /?q=.
"""
from __future__ import annotations

import datetime
import logging

from flask import Blueprint, current_app, render_template, request

from pydantic import ValidationError

from ..schemas import MAX_QUERY_CHARS, SearchQuery
from ..shared_read import SharedRead

log = logging.getLogger(__name__)
bp = Blueprint("dashboard", __name__)
# One shared read of the overview per app, made once at registration (not on every request).
bp.record_once(lambda state: state.app.extensions.setdefault("p2p_dashboard", SharedRead(_read_overview)))

ROWS = 50            # rows per list: the page stays small on a network of thousands of peers
REMOVALS_SHOWN = 20
SEARCH_RESULTS = 20
REFRESH_S = 3        # the page polls its overview fragment this often
# Several open pages (and processes) poll: each process reads the overview at most this often.
# The per-file counts read the live peers' whole index, which costs a second at a million files.
CACHE_S = 2.0
# Only what the package serves itself; nothing inline, nothing from elsewhere.
CSP = "default-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"


def _ctx():
    return current_app.extensions["p2p"]


def _ago(now: float):
    def ago(then: float | None) -> str:
        if then is None:
            return "–"
        seconds = max(0.0, now - then)
        if seconds < 60:
            return f"{seconds:.0f} s ago"
        if seconds < 3600:
            return f"{seconds / 60:.0f} min ago"
        return f"{seconds / 3600:.1f} h ago"

    return ago


def _clock(then: float | None) -> str:
    if then is None:
        return ""
    return datetime.datetime.fromtimestamp(then, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _processes(store):
    """The directory processes that wrote their clock lately, with their skew (clocks.py)."""
    from ..clocks import current_processes

    return [{"host": p["host"], "pid": p["pid"], "skew": f"{p['skew_s']:+.3f} s",
             "clock": "off by more than a second" if p["skewed"] else "ok", "last beat": f"{p['age_s']:.0f} s ago"}
            for p in current_processes(store)]


def _overview() -> dict:
    """What the overview shows, read at most once per CACHE_S in each process (longer when the
    read is slow, and by one request at a time: directory_api/shared_read.py)."""
    return current_app.extensions["p2p_dashboard"].get(min_age_s=CACHE_S)


def _read_overview() -> dict:
    ctx = _ctx()
    store, now = ctx.store, ctx.liveness.now()
    live_since = ctx.liveness.live_since(now)
    return {
        "now": now,
        "ago": _ago(now),
        "clock": _clock,
        "target": ctx.config.replication,
        "lease_s": ctx.config.lease_s,
        "counts": store.overview_counts(ctx.config.replication, live_since, now),
        "peers": store.live_peer_rows(live_since, ROWS),
        "files": store.replication_rows(live_since, ROWS),
        "copies": store.copies_in_flight(now, ROWS),
        "removals": store.recent_removals(REMOVALS_SHOWN),
        "processes": _processes(store),
        "rows": ROWS,
        "metrics_on": ctx.config.metrics,
    }


def _search(raw: str | None) -> dict:
    """The search fragment's context: q, results (None before any search) and an error to show."""
    ctx = _ctx()
    try:
        query = SearchQuery(q=raw or "").q  # the API's own rule for a search text
    except ValidationError as exc:
        log.debug("dashboard search refused: %s", exc.errors()[0]["msg"])
        return {"q": (raw or "").replace("\x00", "")[:100], "results": None,
                "error": f"q: must be at most {MAX_QUERY_CHARS} characters without NUL"}
    if raw is None:
        return {"q": "", "results": None, "error": None}
    page = ctx.store.search(query.strip(), ctx.liveness.live_since(), SEARCH_RESULTS, 0)
    return {"q": query, "results": page["results"], "more": page["next_after"] is not None, "error": None}


def _html(body: str):
    return body, 200, {"Content-Type": "text/html; charset=utf-8", "Content-Security-Policy": CSP,
                       "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}


@bp.get("/")
def page():
    """The whole dashboard, with search results when ?q= is given."""
    return _html(render_template("dashboard/page.html", refresh_s=REFRESH_S, **_overview(),
                                 **_search(request.args.get("q"))))


@bp.get("/dashboard/overview")
def overview():
    """The overview fragment the page polls: counts, peers, files, copies, removals, processes."""
    return _html(render_template("dashboard/_overview.html", **_overview()))


@bp.get("/dashboard/search")
def search():
    """The search results fragment for ?q=."""
    return _html(render_template("dashboard/_search.html", **_search(request.args.get("q", ""))))
