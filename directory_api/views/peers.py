"""Blueprint for the peers resource: listing, browsing, indexing, unreachable reports."""
from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request

from .. import auth, validation
from ..errors import NotFound

bp = Blueprint("peers", __name__)


def _ctx():
    return current_app.extensions["p2p"]


@bp.get("/peers")
def list_peers():
    """Every live peer with its address, last_seen, file count, accept_uploads and free_bytes."""
    ctx = _ctx()
    return jsonify(ctx.store.live_peers(ctx.liveness.live_since()))


@bp.get("/peers/<peer_id>/files")
def browse(peer_id):
    """What one live peer shares."""
    ctx = _ctx()
    validation.peer_id(peer_id)
    peer = ctx.store.peer(peer_id)
    if peer is None or not ctx.liveness.is_live(peer["last_seen"]):
        raise NotFound(f"no live peer {peer_id}")
    return jsonify(peer_id=peer_id, files=ctx.store.peer_files(peer_id))


def _entries():
    body = validation.json_body(request)
    if "files" not in body:
        raise validation.ValidationError("files", "is required")
    return validation.file_list(body["files"], "files", _ctx().config.max_files_per_call)


@bp.put("/peers/<peer_id>/files")
@auth.require_peer
def replace_index(peer_id):
    """Replace the caller's whole index; what it leaves out is never copied back to the caller."""
    auth.require_owner(peer_id)
    ctx = _ctx()
    return jsonify(indexed=ctx.store.replace_files(peer_id, _entries(), ctx.liveness.now()))


@bp.post("/peers/<peer_id>/files")
@auth.require_peer
def add_files(peer_id):
    """Add or update (by name) entries of the caller's index."""
    auth.require_owner(peer_id)
    return jsonify(indexed=_ctx().store.upsert_files(peer_id, _entries())), 201


@bp.delete("/peers/<peer_id>/files/<sha256>")
@auth.require_peer
def delete_file(peer_id, sha256):
    """Remove a file (every name with that sha256) from the caller's index; 404 if it had none.

    Copies already on other peers stay as those peers' own files and are kept at R like any
    file, though never by copying it back to the caller. With ?withdraw=true the caller also
    withdraws the file from replication: pending copies are cancelled and none are planned
    again (see replication.py).
    """
    ctx = _ctx()
    auth.require_owner(peer_id)
    validation.sha256(sha256)
    withdraw = validation.flag(request.args.get("withdraw"), "withdraw")
    if not ctx.store.delete_file(peer_id, sha256, ctx.liveness.now(), withdraw=withdraw):
        raise NotFound(f"peer {peer_id} has no file {sha256}")
    return "", 204


@bp.post("/peers/<peer_id>/unreachable")
@auth.require_peer
def report_unreachable(peer_id):
    """Probe a reported peer's gRPC health; drop it only if the probe fails."""
    ctx = _ctx()
    validation.peer_id(peer_id)
    status = ctx.liveness.report_unreachable(ctx.store, peer_id)
    if status is None:
        raise NotFound(f"no peer {peer_id}")
    return jsonify(status=status), 202
