"""Blueprint for the replication resource: the network-wide summary."""
from __future__ import annotations

from flask import Blueprint, current_app, jsonify

bp = Blueprint("replication", __name__)


@bp.get("/replication")
def summary():
    """How many files are at, below and above target, pending copies and unplaceable files."""
    return jsonify(current_app.extensions["p2p"].planner.summary())
