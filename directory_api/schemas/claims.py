"""Requests of the claims resource (issue 11): audit answers (reports about holders take PeerFilePath)."""
from __future__ import annotations

from pydantic import Field

from . import NO_NUL_PATTERN, Body, Params

__all__ = ["AUDIT_ID_PATTERN", "AuditPath", "AuditResult"]

AUDIT_ID_PATTERN = r"^[0-9a-f]{32}$"


class AuditPath(Params):
    """An audit named in the path."""

    audit_id: str = Field(pattern=AUDIT_ID_PATTERN, description="audit_id from a heartbeat answer's audit list")


class AuditResult(Body):
    """What the auditor found: the target's bytes matched its own copy (ok) or not."""

    ok: bool
    detail: str = Field("", max_length=1000, pattern=NO_NUL_PATTERN,
                        description="what was wrong, for the operator's log (bytes differ, not found, ...)")
