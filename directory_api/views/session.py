"""Blueprint for the session resource: login, logout, heartbeat."""
from __future__ import annotations

import logging

from flask import current_app, g, jsonify, request

from .. import auth
from ..errors import Conflict, Unauthorized, Unprocessable
from ..logins import LoginLimiter
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


@operation(bp, "POST", "/login", operation_id="login", answers={200: LoginAnswer}, errors=(401, 409, 422, 429),
           links=_AFTER_LOGIN)
def login(body: LoginRequest):
    """Register a new peer_id or log a known one in; answers a fresh token (a client session without grpc_address)."""
    ctx = _ctx()
    client = body.grpc_address is None
    if client:
        _no_peer_fields(body)
    entries = None
    if body.files is not None:
        entries = bounded_rows(body.files)
    now = ctx.liveness.now()
    limiter = LoginLimiter(ctx.config, ctx.store)
    # Before any hashing: a refused guess costs the directory one read, no scrypt.
    had_failures = limiter.check(body.peer_id, request.remote_addr, now)
    registered = False
    stored = ctx.store.secret_hash(body.peer_id)
    if stored is None:
        # Hash before the insert; a concurrent registration of the same id makes the insert a no-op.
        registered = ctx.store.register_peer(body.peer_id, auth.hash_secret(body.secret, ctx.config.secret_hash_method),
                                             now)
        if not registered:
            stored = ctx.store.secret_hash(body.peer_id)
    if not registered and (stored is None or not auth.secret_matches(stored, body.secret)):
        limiter.failed(body.peer_id, request.remote_addr, now)
        raise Unauthorized(f"wrong secret for peer {body.peer_id}")
    if had_failures:
        limiter.succeeded(body.peer_id)
    token = auth.new_token()
    if client:
        # A row of its own: the peer's live session, if it runs one, is left exactly as it was.
        ctx.store.start_client_session(body.peer_id, auth.token_hash(token), now, now + ctx.config.client_session_s)
        log.info("peer %s opened a client session (registered=%s)", body.peer_id, registered)
    else:
        with ctx.store.write() as conn:
            # In the session's own transaction: two peer_ids logging in at one address cannot both win.
            holder = ctx.store.address_holder(body.grpc_address, ctx.liveness.live_since(now), body.peer_id, conn=conn)
            if holder is not None:
                raise Conflict(f"{body.grpc_address} is the address of live peer {holder}: a peer_id cannot "
                               "claim another live peer's address", field="grpc_address")
            ctx.store.start_session(body.peer_id, auth.token_hash(token), body.grpc_address, now,
                                    accept_uploads=body.accept_uploads, free_bytes=body.free_bytes, files_=entries,
                                    conn=conn)
        log.info("peer %s logged in (registered=%s) at %s", body.peer_id, registered, body.grpc_address)
    return jsonify(token=token, peer_id=body.peer_id, lease_s=ctx.config.lease_s, registered=registered,
                   directory_key=ctx.signer.public(), client=client)


def _no_peer_fields(body: LoginRequest) -> None:
    """422 if a client login carries what only a running peer has (an index, upload capacity)."""
    for name in ("files", "accept_uploads", "free_bytes"):
        if name in body.model_fields_set and getattr(body, name) is not None:
            raise Unprocessable(name, "only a peer logging in with grpc_address has it; a client session "
                                      "(no grpc_address) holds no files and takes no uploads")


@operation(bp, "POST", "/logout", operation_id="logout", answers={204: None}, auth_mode=auth.CLIENT)
def logout():
    """End the caller's session: a peer vanishes from search at once; a client session just ends."""
    ctx = _ctx()
    if g.client:
        ctx.store.end_client_session(auth.token_hash(auth.bearer_token()))
        return "", 204
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
        if ctx.store.authenticate_client(auth.token_hash(token), now) is not None:
            raise Unauthorized("client sessions do not heartbeat: a peer logs in with grpc_address")
        raise Unauthorized("unknown or expired token: log in again")
    replicate = ctx.planner.on_heartbeat(session, now)
    verify, audit = ctx.auditing.on_heartbeat(session.peer_id, now)  # issue 11: re-hash orders, audits
    return jsonify(lease_s=ctx.config.lease_s, replicate=replicate, verify=verify, audit=audit)
