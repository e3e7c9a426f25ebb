"""Tokens and secrets: how a request proves which peer sent it."""
from __future__ import annotations

import hashlib
import secrets

from flask import current_app, g, request
from werkzeug.security import check_password_hash, generate_password_hash

from .errors import Forbidden, Unauthorized


def new_token() -> str:
    """A fresh random bearer token (256 bits)."""
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """What the store keeps of a token: a fast hash is enough for 256 random bits."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def hash_secret(secret: str, method: str = "scrypt") -> str:
    """A salted slow hash of a peer's secret."""
    return generate_password_hash(secret, method=method)


def secret_matches(stored_hash: str, secret: str) -> bool:
    """True if secret is the one stored_hash was made from."""
    return check_password_hash(stored_hash, secret)


def bearer_token() -> str:
    """The token from the Authorization header; Unauthorized if absent or malformed."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("send Authorization: Bearer <token> from POST /api/v1/login")
    return token.strip()


# How an endpoint authenticates (views/api.py: operation(auth_mode=...)); enforce() checks it
# before flask-openapi3 validates anything, so a foreign token learns nothing from a bad body.
BEARER = "bearer"  # a bearer token must be sent; the view checks it itself (the heartbeat's one statement)
PEER = "peer"  # a live peer's token: g.peer_id
OWNER = "owner"  # PEER, and the path's peer_id must be the caller (403 otherwise)
# any session of the caller's peer_id, a live peer's or a client session (tickets, reports): g.peer_id,
# and g.client says which
CLIENT = "client"
_MODE_ATTR = "p2p_auth"
CLIENT_SESSION_REFUSED = ("a client session (a login without grpc_address) may not do this: "
                          "log in with grpc_address as a running peer")


def mark(view, mode: str) -> None:
    """Record on a view function how it authenticates (functools.wraps carries it to the URL rule's view)."""
    if mode not in (BEARER, PEER, OWNER, CLIENT):
        raise ValueError(f"unknown auth mode {mode!r}")
    setattr(view, _MODE_ATTR, mode)


_ANONYMOUS_ATTR = "p2p_anonymous_when"


def anonymous_when(setting: str):
    """Decorator (below operation): with the boolean config field `setting` on, a request without an
    Authorization header passes as anonymous (g.peer_id None); the view decides what it may have."""

    def decorate(view):
        setattr(view, _ANONYMOUS_ATTR, setting)
        return view

    return decorate


def enforce() -> None:
    """before_request: authenticate the request as its endpoint's auth mode says (nothing if unmarked)."""
    view = current_app.view_functions.get(request.endpoint) if request.endpoint else None
    mode = getattr(view, _MODE_ATTR, None)
    if mode is None:
        return
    open_when = getattr(view, _ANONYMOUS_ATTR, None)
    if open_when and "Authorization" not in request.headers \
            and getattr(current_app.extensions["p2p"].config, open_when, False):
        g.peer_id, g.client = None, True
        return
    token = bearer_token()
    if mode == BEARER:
        return
    ctx = current_app.extensions["p2p"]
    hashed = token_hash(token)
    now = ctx.liveness.now()
    peer_id = ctx.store.authenticate(hashed, ctx.liveness.live_since(now))
    g.client = False
    if peer_id is None:
        # Asked only when the peer sessions do not know the token: a peer's calls pay nothing for it.
        client_of = ctx.store.authenticate_client(hashed, now)
        if client_of is None:
            raise Unauthorized("unknown or expired token: log in again")
        if mode != CLIENT:
            raise Unauthorized(CLIENT_SESSION_REFUSED)
        peer_id, g.client = client_of, True
    g.peer_id = peer_id
    if mode == OWNER:
        require_owner((request.view_args or {}).get("peer_id", ""))


def require_owner(path_peer_id: str) -> None:
    """Forbidden unless the authenticated caller is path_peer_id."""
    if g.peer_id != path_peer_id:
        raise Forbidden(f"peer {g.peer_id} may not change the records of {path_peer_id}")
