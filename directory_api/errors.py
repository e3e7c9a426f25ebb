"""Every error the directory answers with, and the handlers that render them as problem+json."""
from __future__ import annotations

import logging

from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "urn:p2p:problem:"


class DirectoryError(Exception):
    """Root of every error the API reports; carries status, title and structured extras."""

    status = 500
    title = "Internal Server Error"
    slug = "internal"

    def __init__(self, detail: str = "", **extra):
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.extra = extra

    def to_problem(self) -> dict:
        """The RFC 9457 problem document for this error."""
        body = {"type": TYPE_BASE + self.slug, "title": self.title, "status": self.status, "detail": self.detail}
        body.update(self.extra)
        return body


class BadRequest(DirectoryError):
    """The request cannot be read (e.g. malformed JSON)."""

    status, title, slug = 400, "Bad Request", "bad-request"


class ValidationError(BadRequest):
    """One input field is invalid; `field` names it (a JSON path like files[3].name)."""

    title, slug = "Validation Failed", "validation"

    def __init__(self, field: str, detail: str):
        super().__init__(f"{field}: {detail}", field=field)
        self.field = field


class Unauthorized(DirectoryError):
    """Missing, unknown or expired credentials."""

    status, title, slug = 401, "Unauthorized", "unauthorized"


class Forbidden(DirectoryError):
    """The caller may not change another peer's records."""

    status, title, slug = 403, "Forbidden", "forbidden"


class NotFound(DirectoryError):
    """No such peer, file or route."""

    status, title, slug = 404, "Not Found", "not-found"


class Conflict(DirectoryError):
    """The request conflicts with the current state."""

    status, title, slug = 409, "Conflict", "conflict"


class PayloadTooLarge(DirectoryError):
    """The body or the file list is larger than allowed."""

    status, title, slug = 413, "Payload Too Large", "payload-too-large"


class ServiceUnavailable(DirectoryError):
    """The store cannot be reached."""

    status, title, slug = 503, "Service Unavailable", "unavailable"


class WriteLockTimeout(ServiceUnavailable):
    """Another writer kept the database locked for longer than timeout_s."""

    def __init__(self, timeout_s: float):
        super().__init__(f"the database stayed locked by another writer for {timeout_s:g} s; try again",
                         timeout_s=timeout_s)
        self.timeout_s = timeout_s


def problem_response(problem: dict, headers: dict | None = None):
    """A Flask response carrying a problem document with its media type."""
    response = jsonify(problem)
    response.status_code = problem["status"]
    response.mimetype = PROBLEM_JSON
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


def register_error_handlers(app: Flask) -> None:
    """Render every error, ours or werkzeug's or unexpected, as application/problem+json."""

    @app.errorhandler(DirectoryError)
    def _ours(error: DirectoryError):
        headers = {"WWW-Authenticate": 'Bearer realm="p2p-directory"'} if error.status == 401 else None
        return problem_response(error.to_problem(), headers)

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
        return problem_response(DirectoryError("the directory failed to handle this request").to_problem())
