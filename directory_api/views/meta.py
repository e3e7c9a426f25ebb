"""Blueprint for the service itself: health and the OpenAPI document."""
from __future__ import annotations

from flask import Blueprint, current_app, jsonify

from ..errors import ServiceUnavailable
from ..openapi import build_document

bp = Blueprint("meta", __name__)


@bp.get("/health")
def health():
    """{status: ok} when the store answers; 503 otherwise."""
    try:
        current_app.extensions["p2p"].store.ping()
    except Exception as exc:  # any database failure means "not healthy", never a 500 page
        raise ServiceUnavailable(f"the store does not answer: {type(exc).__name__}") from None
    return jsonify(status="ok")


@bp.get("/openapi.json")
def openapi():
    """The OpenAPI 3 document describing every endpoint."""
    return jsonify(build_document())
