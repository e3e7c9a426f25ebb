"""Blueprint for the replication resource: the network-wide summary."""
from __future__ import annotations

from flask import current_app, jsonify

from ..schemas import ReplicationSummary
from .api import blueprint, operation

bp = blueprint("replication", __name__, "files against their replication target")


@operation(bp, "GET", "/replication", operation_id="replicationSummary", answers={200: ReplicationSummary})
def summary():
    """How many files are at, below and above target, pending copies and unplaceable files."""
    return jsonify(current_app.extensions["p2p"].planner.summary())
