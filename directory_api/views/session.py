"""Blueprint for the session resource: login, logout, heartbeat."""
from __future__ import annotations

import logging

from flask import current_app, g, jsonify

from .. import auth
from ..errors import Unauthorized
from ..schemas import HeartbeatAnswer, HeartbeatRequest, LoginAnswer, LoginRequest
from .api import blueprint, operation
from .peers import bounded_rows
from ..store.removals import LOGOUT

log = logging.getLogger(__name__)
bp = blueprint("session", __name__, "log in, keep the lease, log out")

# The token a login answers authenticates the calls that follow it (schemathesis follows these).
_AFTER_LOGIN = {
    "heartbeat": {"operationId": "heartbeat",
                  "parameters": {"header.Authorization": "Bearer {$response.body#/token}"}},
    "replaceIndex": {"operationId": "replaceIndex",
                     "parameters": {"path.peer_id": "$response.body#/peer_id",
                                    "header.Authorization": "Bearer {$response.body#/token}"}},
    "addFiles": {"operationId": "addFiles",
                 "parameters": {"path.peer_id": "$response.body#/peer_id",
                                "header.Authorization": "Bearer {$response.body#/token}"}},
    "browsePeer": {"operationId": "browsePeer", "parameters": {"path.peer_id": "$response.body#/peer_id"}},
    "logout": {"operationId": "logout", "parameters": {"header.Authorization": "Bearer {$response.body#/token}"}},
}


def _ctx():
    return current_app.extensions["p2p"]


@operation(bp, "POST", "/login", operation_id="login", answers={200: LoginAnswer}, errors=(401,),
           links=_AFTER_LOGIN)
def login(body: LoginRequest):
    """Register a new peer_id or log a known one in; answers a fresh token."""
    ctx = _ctx()
    entries = None
    if body.files is not None:
        entries = bounded_rows(body.files)
    now = ctx.liveness.now()
    registered = False
    stored = ctx.store.secret_hash(body.peer_id)
    if stored is None:
        # Hash before the insert; a concurrent registration of the same id makes the insert a no-op.
        registered = ctx.store.register_peer(body.peer_id, auth.hash_secret(body.secret, ctx.config.secret_hash_method),
                                             now)
        if not registered:
            stored = ctx.store.secret_hash(body.peer_id)
    if not registered and (stored is None or not auth.secret_matches(stored, body.secret)):
        raise Unauthorized(f"wrong secret for peer {body.peer_id}")
    token = auth.new_token()
    ctx.store.start_session(body.peer_id, auth.token_hash(token), body.grpc_address, now,
                            accept_uploads=body.accept_uploads, free_bytes=body.free_bytes, files_=entries)
    log.info("peer %s logged in (registered=%s) at %s", body.peer_id, registered, body.grpc_address)
    return jsonify(token=token, peer_id=body.peer_id, lease_s=ctx.config.lease_s, registered=registered)


@operation(bp, "POST", "/logout", operation_id="logout", answers={204: None}, auth_mode=auth.PEER)
def logout():
    """End the caller's session: it vanishes from search at once."""
    ctx = _ctx()
    with ctx.store.write() as conn:
        ctx.store.end_session(g.peer_id, ctx.liveness.dead_mark(), conn=conn)
        ctx.store.record_removal(g.peer_id, LOGOUT, ctx.liveness.now(), conn=conn)
    return "", 204


@operation(bp, "POST", "/heartbeat", operation_id="heartbeat", answers={200: HeartbeatAnswer},
           auth_mode=auth.BEARER)
def heartbeat(body: HeartbeatRequest):
    """Renew the caller's lease (written within lease_flush_s) and hand out replication work, verify
    orders (files to re-hash) and audits (a piece of another holder's copy to compare)."""
    ctx = _ctx()
    token = auth.bearer_token()
    now = ctx.liveness.now()
    # The renewal is written in a batch (see LeaseRenewals); planning, when due, takes a
    # transaction of its own.
    session = ctx.leases.heartbeat(auth.token_hash(token), now, free_bytes=body.free_bytes,
                                   accept_uploads=body.accept_uploads,
                                   set_free_bytes="free_bytes" in body.model_fields_set)
    if session is None:
        raise Unauthorized("unknown or expired token: log in again")
    replicate = ctx.planner.on_heartbeat(session, now)
    verify, audit = ctx.auditing.on_heartbeat(session, now)  # issue 11: re-hash orders, audits
    return jsonify(lease_s=ctx.config.lease_s, replicate=replicate, verify=verify, audit=audit)
