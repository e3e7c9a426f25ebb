"""Tokens and secrets: how a request proves which peer sent it."""
from __future__ import annotations

import functools
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


def require_peer(view):
    """Decorator: authenticate the caller (g.peer_id); with a peer_id path argument, it must match."""

    @functools.wraps(view)
    def _wrapped(*args, **kwargs):
        ctx = current_app.extensions["p2p"]
        peer_id = ctx.store.authenticate(token_hash(bearer_token()), ctx.liveness.live_since())
        if peer_id is None:
            raise Unauthorized("unknown or expired token: log in again")
        g.peer_id = peer_id
        return view(*args, **kwargs)

    return _wrapped


def require_owner(path_peer_id: str) -> None:
    """Forbidden unless the authenticated caller is path_peer_id."""
    if g.peer_id != path_peer_id:
        raise Forbidden(f"peer {g.peer_id} may not change the records of {path_peer_id}")
