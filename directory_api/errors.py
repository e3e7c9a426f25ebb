"""Every error the directory raises, under one root.

DirectoryError
├── ConfigError            a setting is missing or malformed (the entry points print it)
├── StoreError             the database cannot do it now; not an HTTP error (the views answer 503)
│   └── WriteLockTimeout
├── IndexConflict          a paged publication does not fit what the store holds (the views answer 400/409)
└── ApiError               what a request gets back: status, title, slug, problem+json extras
    ├── BadRequest
    │   └── ValidationError
    ├── Unauthorized, Forbidden, NotFound, Conflict, PayloadTooLarge
    ├── Unprocessable      a rule across fields (422), TooManyAttempts (429, Retry-After)
    └── ServiceUnavailable

The handlers that render them live with the views (views/problems.py).
"""
from __future__ import annotations

TYPE_BASE = "urn:p2p:problem:"


class DirectoryError(Exception):
    """Root of every error of the directory."""


class ConfigError(DirectoryError):
    """A setting is missing or malformed; the message names the flag or variable and what is wrong."""


class StoreError(DirectoryError):
    """The database could not do what was asked, for now; data names the values behind it."""

    def __init__(self, message: str, **data):
        super().__init__(message)
        self.data = data


class WriteLockTimeout(StoreError):
    """Another writer kept the database locked for longer than timeout_s."""

    def __init__(self, timeout_s: float):
        super().__init__(f"the database stayed locked by another writer for {timeout_s:g} s; try again",
                         timeout_s=timeout_s)
        self.timeout_s = timeout_s


class IndexConflict(DirectoryError):
    """A page of a paged publication does not fit: out of order, of an unknown generation, or a name twice."""

    def __init__(self, message: str, *, expected_page: int | None = None, duplicate: str | None = None):
        super().__init__(message)
        self.expected_page, self.duplicate = expected_page, duplicate


class ApiError(DirectoryError):
    """An error a request is answered with; carries status, title and structured extras."""

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


class BadRequest(ApiError):
    """The request cannot be read (e.g. malformed JSON)."""

    status, title, slug = 400, "Bad Request", "bad-request"


class ValidationError(BadRequest):
    """One input field is invalid; `field` names it (a JSON path like files[3].name)."""

    title, slug = "Validation Failed", "validation"

    def __init__(self, field: str, detail: str):
        super().__init__(f"{field}: {detail}", field=field)
        self.field = field


class Unauthorized(ApiError):
    """Missing, unknown or expired credentials."""

    status, title, slug = 401, "Unauthorized", "unauthorized"


class Forbidden(ApiError):
    """The caller may not change another peer's records."""

    status, title, slug = 403, "Forbidden", "forbidden"


class NotFound(ApiError):
    """No such peer, file or route."""

    status, title, slug = 404, "Not Found", "not-found"


class Conflict(ApiError):
    """The request conflicts with the current state."""

    status, title, slug = 409, "Conflict", "conflict"


class PayloadTooLarge(ApiError):
    """The body or the file list is larger than allowed."""

    status, title, slug = 413, "Payload Too Large", "payload-too-large"


class ServiceUnavailable(ApiError):
    """The store cannot be reached or cannot do it now."""

    status, title, slug = 503, "Service Unavailable", "unavailable"


class Unprocessable(ApiError):
    """Every field is valid alone, but together they break a rule; `field` names the one at fault."""

    status, title, slug = 422, "Unprocessable Content", "unprocessable"

    def __init__(self, field: str, detail: str):
        super().__init__(f"{field}: {detail}", field=field)
        self.field = field


class TooManyAttempts(ApiError):
    """Too many failed attempts of this kind lately; `retry_after` is the seconds to wait."""

    status, title, slug = 429, "Too Many Requests", "too-many-attempts"

    def __init__(self, detail: str, retry_after: int):
        super().__init__(detail, retry_after=retry_after)
        self.retry_after = retry_after
