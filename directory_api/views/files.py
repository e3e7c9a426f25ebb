"""Blueprint for the files resource: search by name and one file's details."""
from __future__ import annotations

from flask import current_app, jsonify

from ..errors import NotFound
from ..schemas import FileDetail, FilePath, SearchPage, SearchQuery, encode_cursor
from .api import blueprint, operation

bp = blueprint("files", __name__, "search by name, one file's holders and pieces")

_TO_DETAIL = {
    "fileDetail": {"operationId": "fileDetail", "parameters": {"path.sha256": "$response.body#/results/0/sha256"}},
    "nextPage": {"operationId": "searchFiles", "parameters": {"query.cursor": "$response.body#/next_cursor"}},
}


@operation(bp, "GET", "/files", operation_id="searchFiles", answers={200: SearchPage}, links=_TO_DETAIL)
def search(query: SearchQuery):
    """Names that contain q, in any case, grouped by sha256, live holders only."""
    ctx = current_app.extensions["p2p"]
    page = ctx.store.search(query.q, ctx.liveness.live_since(), query.page_size, query.after)
    next_cursor = encode_cursor(page["next_after"]) if page["next_after"] is not None else None
    return jsonify(results=page["results"], next_cursor=next_cursor)


@operation(bp, "GET", "/files/<sha256>", operation_id="fileDetail", answers={200: FileDetail})
def file_detail(path: FilePath):
    """Size, names, live holders, pieces and replication state of one file."""
    ctx = current_app.extensions["p2p"]
    now = ctx.liveness.now()
    detail = ctx.store.file_detail(path.sha256, ctx.liveness.live_since(now), now)
    if detail is None:
        raise NotFound(f"no live peer holds {path.sha256}")
    detail["replication"] = ctx.planner.file_state(
        len(detail["holders"]), detail.pop("pending"), detail.pop("withdrawn"), detail.pop("proofs")
    )
    return jsonify(detail)
