"""Blueprint for the peers resource: listing, browsing, indexing (whole or in pages), unreachable reports."""
from __future__ import annotations

from flask import current_app, jsonify

from .. import auth
from ..errors import Conflict, IndexConflict, NotFound, PayloadTooLarge, ValidationError
from ..schemas import (DeleteQuery, FileEntry, FileList, Indexed, PeerFilePath, PeerFiles, PeerList, PeerPath,
                       PublishQuery, UnreachableAnswer)
from .api import blueprint, operation

bp = blueprint("peers", __name__, "live peers, their indexes, unreachable reports")


def _ctx():
    return current_app.extensions["p2p"]


def bounded_rows(files: list[FileEntry]) -> list[dict]:
    """The entries as store rows; 413 past max_files_per_call (a big index goes up in pages)."""
    cap = _ctx().config.max_files_per_call
    if len(files) > cap:
        raise PayloadTooLarge(f"at most {cap} files in one call, got {len(files)}: send a big index in pages "
                              f"(PUT ...?generation=G&page=N&last=true)", field="files")
    return [e.row() for e in files]


@operation(bp, "GET", "/peers", operation_id="listPeers", answers={200: PeerList})
def list_peers():
    """Every live peer with its address, last_seen, file count, accept_uploads and free_bytes."""
    ctx = _ctx()
    return jsonify(ctx.store.live_peers(ctx.liveness.live_since()))


@operation(bp, "GET", "/peers/<peer_id>/files", operation_id="browsePeer", answers={200: PeerFiles})
def browse(path: PeerPath):
    """What one live peer shares."""
    ctx = _ctx()
    peer = ctx.store.peer(path.peer_id)
    if peer is None or not ctx.liveness.is_live(peer["last_seen"]):
        raise NotFound(f"no live peer {path.peer_id}")
    return jsonify(peer_id=path.peer_id, files=ctx.store.peer_files(path.peer_id))


@operation(bp, "PUT", "/peers/<peer_id>/files", operation_id="replaceIndex", answers={200: Indexed}, errors=(409,),
           auth_mode=auth.OWNER)
def replace_index(path: PeerPath, query: PublishQuery, body: FileList):
    """Replace the caller's whole index, at once or in pages; what it leaves out is never copied back to it.

    Without generation the body is the whole index. With generation=G the body is page N of
    the new index: page 0 starts G (dropping any unfinished generation), the pages follow in
    order (one sent again is ignored, a gap is 409), and the page with last=true commits:
    the old index stays visible until then and the new one replaces it at once. Names are
    unique across the pages of a generation.
    """
    ctx = _ctx()
    rows = bounded_rows(body.files)
    if query.generation is None:
        return jsonify(indexed=ctx.store.replace_files(path.peer_id, rows, ctx.liveness.now()))
    try:
        state = ctx.store.publish_page(path.peer_id, query.generation, query.page, rows, query.last,
                                       ctx.liveness.now())
    except IndexConflict as exc:
        if exc.duplicate is not None:
            at = next(i for i, row in enumerate(rows) if row["name"] == exc.duplicate)
            raise ValidationError(f"files[{at}].name", "duplicate name in this generation "
                                                        "(an earlier page has it)") from None
        raise Conflict(str(exc), expected_page=exc.expected_page) from None
    return jsonify(indexed=state["indexed"], staged=state["staged"], committed=state["committed"])


@operation(bp, "POST", "/peers/<peer_id>/files", operation_id="addFiles", answers={201: Indexed},
           auth_mode=auth.OWNER)
def add_files(path: PeerPath, body: FileList):
    """Add or update (by name) entries of the caller's index."""
    return jsonify(indexed=_ctx().store.upsert_files(path.peer_id, bounded_rows(body.files))), 201


@operation(bp, "DELETE", "/peers/<peer_id>/files/<sha256>", operation_id="deleteFile", answers={204: None},
           auth_mode=auth.OWNER)
def delete_file(path: PeerFilePath, query: DeleteQuery):
    """Remove every name of this sha256 from the caller's index; 404 if it had none.

    Copies already on other peers stay as those peers' own files and are kept at R like any
    file, though never by copying it back to the caller. With ?withdraw=true the caller also
    withdraws the file from replication: pending copies are cancelled and none are planned
    again (see replication.py).
    """
    ctx = _ctx()
    if not ctx.store.delete_file(path.peer_id, path.sha256, ctx.liveness.now(), withdraw=query.withdraw):
        raise NotFound(f"peer {path.peer_id} has no file {path.sha256}")
    return "", 204


@operation(bp, "POST", "/peers/<peer_id>/unreachable", operation_id="reportUnreachable",
           answers={202: UnreachableAnswer}, auth_mode=auth.CLIENT)
def report_unreachable(path: PeerPath):
    """Probe a reported peer's gRPC health; drop it only if the probe fails (any session may report)."""
    ctx = _ctx()
    status = ctx.liveness.report_unreachable(ctx.store, path.peer_id)
    if status is None:
        raise NotFound(f"no peer {path.peer_id}")
    return jsonify(status=status), 202
