"""Blueprint for the files resource: search by name and one file's details."""
from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request

from .. import validation
from ..errors import NotFound
from .paging import decode_cursor, encode_cursor

bp = Blueprint("files", __name__)


@bp.get("/files")
def search():
    """Case-insensitive substring search on names, grouped by sha256, live holders only."""
    ctx = current_app.extensions["p2p"]
    query = validation.query_text(request.args.get("q"))
    limit = validation.limit(request.args.get("limit"))
    after = decode_cursor(request.args["cursor"]) if request.args.get("cursor") else 0
    page = ctx.store.search(query, ctx.liveness.live_since(), limit, after)
    next_cursor = encode_cursor(page["next_after"]) if page["next_after"] is not None else None
    return jsonify(results=page["results"], next_cursor=next_cursor)


@bp.get("/files/<sha256>")
def file_detail(sha256):
    """Size, names, live holders, pieces and replication state of one file."""
    ctx = current_app.extensions["p2p"]
    validation.sha256(sha256)
    now = ctx.liveness.now()
    detail = ctx.store.file_detail(sha256, ctx.liveness.live_since(now), now)
    if detail is None:
        raise NotFound(f"no live peer holds {sha256}")
    detail["replication"] = ctx.planner.file_state(
        len(detail["holders"]), detail.pop("pending"), detail.pop("withdrawn")
    )
    return jsonify(detail)
