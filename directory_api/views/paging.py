"""Page cursors of GET /files: opaque to clients, a plain row id to the store."""
from __future__ import annotations

import base64
import json

from ..errors import ValidationError


def encode_cursor(after_id: int) -> str:
    """An opaque page cursor for the next page after file row after_id."""
    return base64.urlsafe_b64encode(json.dumps({"a": after_id}).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, field: str = "cursor") -> int:
    """The row id a cursor from encode_cursor points after; ValidationError(field) if it is not ours."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))["a"]
    except (ValueError, KeyError, TypeError, UnicodeEncodeError):
        raise ValidationError(field, "not a cursor issued by this directory") from None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValidationError(field, "not a cursor issued by this directory")
    return value
