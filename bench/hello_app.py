"""A bare Flask app with only the trivial JSON endpoint: the framework's own ceiling, and the harness's self-test."""
from __future__ import annotations

import logging

from flask import Flask, jsonify

log = logging.getLogger(__name__)


def create_app() -> Flask:
    """A Flask app answering GET /api/v1/health with {"status": "ok"}, nothing else."""
    app = Flask(__name__)

    @app.get("/api/v1/health")
    def health():
        """The trivial JSON answer."""
        return jsonify(status="ok")

    return app
