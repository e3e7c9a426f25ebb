"""Every answer that is an error, ours or werkzeug's or the store's or unexpected, as problem+json."""
from __future__ import annotations

import logging

from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException

from ..errors import TYPE_BASE, ApiError, ServiceUnavailable, StoreError

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"


def problem_response(problem: dict, headers: dict | None = None):
    """A Flask response carrying a problem document with its media type."""
    response = jsonify(problem)
    response.status_code = problem["status"]
    response.mimetype = PROBLEM_JSON
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


def register_error_handlers(app: Flask) -> None:
    """Render every error as application/problem+json."""

    @app.errorhandler(ApiError)
    def _ours(error: ApiError):
        headers = {"WWW-Authenticate": 'Bearer realm="p2p-directory"'} if error.status == 401 else {}
        if getattr(error, "retry_after", None) is not None:
            headers["Retry-After"] = str(error.retry_after)
        return problem_response(error.to_problem(), headers)

    @app.errorhandler(StoreError)
    def _store(error: StoreError):
        # The store knows nothing of HTTP: a database that cannot do it now means "try again".
        return problem_response(ServiceUnavailable(str(error), **error.data).to_problem())

    @app.errorhandler(HTTPException)
    def _http(error: HTTPException):
        status = error.code or 500
        slug = (error.name or "error").lower().replace(" ", "-")
        problem = {
            "type": TYPE_BASE + slug,
            "title": error.name or "Error",
            "status": status,
            "detail": error.description or error.name or "",
        }
        headers = {}
        # 405 must keep its Allow header so clients learn the valid methods.
        for key, value in error.get_headers():
            if key.lower() == "allow":
                headers[key] = value
        return problem_response(problem, headers)

    @app.errorhandler(Exception)
    def _unexpected(error: Exception):
        # Never leak a traceback to the client; keep it in the log for the operator.
        log.exception("unhandled error: %s", error)
        return problem_response(ApiError("the directory failed to handle this request").to_problem())
