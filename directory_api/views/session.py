"""Blueprint for the session resource: login, logout, heartbeat."""
from __future__ import annotations

import logging

from flask import Blueprint, current_app, g, jsonify, request

from .. import auth, validation
from ..errors import Unauthorized
from ..store.removals import LOGOUT

log = logging.getLogger(__name__)
bp = Blueprint("session", __name__)


def _ctx():
    return current_app.extensions["p2p"]


@bp.post("/login")
def login():
    """Register a new peer_id or log a known one in; answers a fresh token."""
    ctx = _ctx()
    body = validation.json_body(request)
    for key in ("peer_id", "secret", "grpc_address"):
        if key not in body:
            raise validation.ValidationError(key, "is required")
    peer_id = validation.peer_id(body["peer_id"])
    secret = validation.secret(body["secret"])
    address = validation.grpc_address(body["grpc_address"])
    accept = validation.boolean(body["accept_uploads"], "accept_uploads") if "accept_uploads" in body else True
    free = body.get("free_bytes")
    free = validation.int64(free, "free_bytes") if free is not None else None
    entries = None
    if body.get("files") is not None:
        entries = validation.file_list(body["files"], "files", ctx.config.max_files_per_call)

    now = ctx.liveness.now()
    registered = False
    stored = ctx.store.secret_hash(peer_id)
    if stored is None:
        # Hash before the insert; a concurrent registration of the same id makes the insert a no-op.
        registered = ctx.store.register_peer(peer_id, auth.hash_secret(secret, ctx.config.secret_hash_method), now)
        if not registered:
            stored = ctx.store.secret_hash(peer_id)
    if not registered and (stored is None or not auth.secret_matches(stored, secret)):
        raise Unauthorized(f"wrong secret for peer {peer_id}")
    token = auth.new_token()
    ctx.store.start_session(
        peer_id, auth.token_hash(token), address, now, accept_uploads=accept, free_bytes=free, files_=entries
    )
    log.info("peer %s logged in (registered=%s) at %s", peer_id, registered, address)
    return jsonify(token=token, peer_id=peer_id, lease_s=ctx.config.lease_s, registered=registered)


@bp.post("/logout")
@auth.require_peer
def logout():
    """End the caller's session: it vanishes from search at once."""
    ctx = _ctx()
    with ctx.store.write() as conn:
        ctx.store.end_session(g.peer_id, ctx.liveness.dead_mark(), conn=conn)
        ctx.store.record_removal(g.peer_id, LOGOUT, ctx.liveness.now(), conn=conn)
    return "", 204


@bp.post("/heartbeat")
def heartbeat():
    """Renew the caller's lease (written within lease_flush_s) and hand out replication work."""
    ctx = _ctx()
    token = auth.bearer_token()
    body = validation.json_body(request, allow_empty=True)
    accept = validation.boolean(body["accept_uploads"], "accept_uploads") if "accept_uploads" in body else None
    has_free = "free_bytes" in body
    free = body.get("free_bytes")
    free = validation.int64(free, "free_bytes") if free is not None else None
    now = ctx.liveness.now()
    # The renewal is written in a batch (see LeaseRenewals); planning, when due, takes a
    # transaction of its own.
    session = ctx.leases.heartbeat(auth.token_hash(token), now, free_bytes=free, accept_uploads=accept,
                                   set_free_bytes=has_free)
    if session is None:
        raise Unauthorized("unknown or expired token: log in again")
    replicate = ctx.planner.on_heartbeat(session, now)
    return jsonify(lease_s=ctx.config.lease_s, replicate=replicate)
