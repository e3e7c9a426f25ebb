"""Blueprint for trust (issue 12): the directory's public keys and the transfer tickets it signs.

A peer serves bytes only with a ticket (protos/tickets.py) and checks it offline with the key
published here, so every rule about who may move which file is applied once, here, when the
ticket is asked for:

- download: the file must have a live holder (the one named by ``holder``, when given: the
  ticket then names it as ``aud``). With ``open_downloads`` anyone may ask, as ``anonymous``.
- upload: ``holder`` is the target, live and accepting uploads; the ticket names it as ``aud``
  and fixes the size (the indexed one when the directory knows the file), so the target takes
  exactly that file from exactly that sender.
"""
from __future__ import annotations

from flask import current_app, g, jsonify

from protos import tickets

from .. import auth
from ..errors import Conflict, NotFound, Unauthorized, Unprocessable
from ..schemas.trust import KeySet, TicketAnswer, TicketRequest
from .api import blueprint, operation

bp = blueprint("trust", __name__, "the directory's ticket key and transfer tickets")

ANONYMOUS = "anonymous"  # sub of a download ticket asked for without a session (open_downloads)


def _ctx():
    return current_app.extensions["p2p"]


@operation(bp, "GET", "/keys", operation_id="keys", answers={200: KeySet})
def keys():
    """The public key peers verify transfer tickets with (the login answer carries it too)."""
    return jsonify(keys=[_ctx().signer.public()])


@operation(bp, "POST", "/tickets", operation_id="issueTicket", answers={200: TicketAnswer}, errors=(409, 422),
           auth_mode=auth.CLIENT)
@auth.anonymous_when("open_downloads")
def issue_ticket(body: TicketRequest):
    """A signed ticket for one download (from any live holder, or the one named) or one upload (to holder).

    Any session of the caller (a running peer's or a client session) may ask; on an open network
    (the directory started with --open-downloads) a download ticket needs no token.
    """
    ctx = _ctx()
    now = ctx.liveness.now()
    live_since = ctx.liveness.live_since(now)
    if body.purpose == tickets.DOWNLOAD:
        if ctx.store.live_holder(body.sha256, live_since, body.holder) is None:
            where = f"peer {body.holder} does not hold" if body.holder else "no live peer holds"
            raise NotFound(f"{where} {body.sha256}")
        ticket, expires = ctx.signer.issue(g.peer_id or ANONYMOUS, body.sha256, tickets.DOWNLOAD, now,
                                           aud=body.holder)
        return jsonify(ticket=ticket, expires_at=expires)
    if g.peer_id is None:
        raise Unauthorized("upload tickets need a session: send Authorization: Bearer <token> from POST /api/v1/login")
    if body.holder is None:
        raise Unprocessable("holder", "an upload ticket names the peer that receives the file")
    target = ctx.store.peer(body.holder)
    if target is None or not ctx.liveness.is_live(target["last_seen"], now):
        raise Conflict(f"peer {body.holder} is not live: it cannot receive an upload now")
    if not target["accept_uploads"]:
        raise Conflict(f"peer {body.holder} does not accept uploads")
    size = ctx.store.indexed_size(body.sha256)
    if size is None and body.size is None:
        raise Unprocessable("size", "the directory does not index this file yet: give its size")
    ticket, expires = ctx.signer.issue(g.peer_id, body.sha256, tickets.UPLOAD, now, aud=body.holder,
                                       size=size if size is not None else body.size)
    return jsonify(ticket=ticket, expires_at=expires)
