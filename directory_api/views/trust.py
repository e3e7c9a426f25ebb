"""Blueprint for trust (issue 12): the directory's public keys and the transfer tickets it signs."""
from __future__ import annotations

from flask import current_app, jsonify

from ..schemas import KeySet
from .api import blueprint, operation

bp = blueprint("trust", __name__, "the directory's ticket key and transfer tickets")


def _ctx():
    return current_app.extensions["p2p"]


@operation(bp, "GET", "/keys", operation_id="keys", answers={200: KeySet})
def keys():
    """The public key peers verify transfer tickets with (the login answer carries it too)."""
    return jsonify(keys=[_ctx().signer.public()])
