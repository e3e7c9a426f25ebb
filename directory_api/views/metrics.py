"""Blueprint for the metrics resource: GET /metrics in the Prometheus text format (at the root)."""
from __future__ import annotations

from flask import Blueprint, Response, current_app
from prometheus_client import CONTENT_TYPE_LATEST

bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
def metrics():
    """Every counter of every server process, and the store's figures of now (cached a few seconds)."""
    return Response(current_app.extensions["p2p_metrics"].render(), content_type=CONTENT_TYPE_LATEST)
