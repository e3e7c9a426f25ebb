"""Input checks for every body, path and query parameter; each failure names its field."""
from __future__ import annotations

import json
import re
from typing import Any

from flask import Request

from protos.rules import (MIN_PIECE_SIZE, PEER_ID_RULE, SHA256_RULE, is_peer_id, is_sha256, name_problem,
                          piece_count)

from .errors import BadRequest, PayloadTooLarge, ValidationError

MAX_INT64 = 2**63 - 1
HOST_RE = re.compile(r"\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252})")
MAX_SECRET_CHARS = 1024
MAX_QUERY_CHARS = 1024
MAX_PIECES = 1_000_000


def json_body(request: Request, *, allow_empty: bool = False) -> dict:
    """The request body as a JSON object; an empty body is {} when allow_empty."""
    raw = request.get_data(cache=True)  # raises 413 past MAX_CONTENT_LENGTH
    if not raw.strip():
        if allow_empty:
            return {}
        raise ValidationError("body", "a JSON object is required")
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"malformed JSON body: {exc}") from None
    if not isinstance(data, dict):
        raise ValidationError("body", "must be a JSON object")
    return data


def peer_id(value: Any, field: str = "peer_id") -> str:
    """A peer id as the contract defines it (protos/rules.py)."""
    if not is_peer_id(value):
        raise ValidationError(field, f"must be {PEER_ID_RULE}")
    return value


def sha256(value: Any, field: str = "sha256") -> str:
    """A content digest as the contract defines it (protos/rules.py)."""
    if not is_sha256(value):
        raise ValidationError(field, f"must be {SHA256_RULE}")
    return value


def secret(value: Any, field: str = "secret") -> str:
    """A login secret: a non-empty string of at most 1024 characters."""
    if not isinstance(value, str) or not value or len(value) > MAX_SECRET_CHARS or "\x00" in value:
        raise ValidationError(field, f"must be a non-empty string of at most {MAX_SECRET_CHARS} characters")
    return value


def grpc_address(value: Any, field: str = "grpc_address") -> str:
    """A gRPC address host:port (IPv6 hosts in brackets), port 1-65535."""
    if not isinstance(value, str) or ":" not in value:
        raise ValidationError(field, "must be host:port")
    host, _, port = value.rpartition(":")
    if not HOST_RE.fullmatch(host) or not port.isascii() or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValidationError(field, "must be host:port with a port between 1 and 65535")
    return value


def boolean(value: Any, field: str) -> bool:
    """A JSON boolean (not 0/1, not a string)."""
    if not isinstance(value, bool):
        raise ValidationError(field, "must be true or false")
    return value


def int64(value: Any, field: str, minimum: int = 0) -> int:
    """A JSON integer between minimum and 2^63-1."""
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= MAX_INT64:
        raise ValidationError(field, f"must be an integer between {minimum} and {MAX_INT64}")
    return value


def file_name(value: Any, field: str) -> str:
    """A safe relative file name as the contract defines it (protos/rules.py)."""
    if not isinstance(value, str):
        raise ValidationError(field, "must be a non-empty string")
    reason = name_problem(value)
    if reason is not None:
        raise ValidationError(field, f"the name {reason}")
    return value


def file_entry(value: Any, field: str) -> dict:
    """A FileEntry {name, size, sha256, piece_size?, pieces?}, normalised to a dict."""
    if not isinstance(value, dict):
        raise ValidationError(field, "must be an object")
    for key in ("name", "size", "sha256"):
        if key not in value:
            raise ValidationError(f"{field}.{key}", "is required")
    entry = {
        "name": file_name(value["name"], f"{field}.name"),
        "size": int64(value["size"], f"{field}.size"),
        "sha256": sha256(value["sha256"], f"{field}.sha256"),
        "piece_size": None,
        "pieces": None,
    }
    has_size, has_pieces = value.get("piece_size") is not None, value.get("pieces") is not None
    if has_size != has_pieces:
        missing = "pieces" if has_size else "piece_size"
        raise ValidationError(f"{field}.{missing}", "piece_size and pieces go together")
    if has_size:
        piece_size = int64(value["piece_size"], f"{field}.piece_size", minimum=MIN_PIECE_SIZE)
        pieces = value["pieces"]
        if not isinstance(pieces, list) or len(pieces) > MAX_PIECES:
            raise ValidationError(f"{field}.pieces", "must be a list of sha256 digests")
        for i, digest in enumerate(pieces):
            sha256(digest, f"{field}.pieces[{i}]")
        expected = piece_count(entry["size"], piece_size)
        if len(pieces) != expected:
            raise ValidationError(f"{field}.pieces", f"must hold {expected} digests for this size and piece_size")
        entry["piece_size"], entry["pieces"] = piece_size, list(pieces)
    return entry


def file_list(value: Any, field: str, max_files: int) -> list[dict]:
    """A list of FileEntry with unique names, at most max_files long."""
    if not isinstance(value, list):
        raise ValidationError(field, "must be a list of file entries")
    if len(value) > max_files:
        raise PayloadTooLarge(f"at most {max_files} files in one call, got {len(value)}", field=field)
    entries, seen = [], set()
    for i, item in enumerate(value):
        entry = file_entry(item, f"{field}[{i}]")
        if entry["name"] in seen:
            raise ValidationError(f"{field}[{i}].name", "duplicate name in this list")
        seen.add(entry["name"])
        entries.append(entry)
    return entries


def limit(raw: str | None, default: int = 20, cap: int = 200) -> int:
    """The page size from a query string: a positive integer, capped."""
    # 20, not 50: most of a search's cost is per result (the earlier-holder check, the holders
    # and their JSON), and at a million files a page of 50 cost 1.7x a page of 20.
    if raw is None or raw == "":
        return default
    if not raw.isascii() or not raw.isdigit() or int(raw) < 1:
        raise ValidationError("limit", "must be a positive integer")
    return min(int(raw), cap)


def flag(raw: str | None, field: str) -> bool:
    """A boolean query parameter: true/false/1/0, absent = false."""
    if raw is None or raw == "":
        return False
    if raw.lower() in ("true", "1"):
        return True
    if raw.lower() in ("false", "0"):
        return False
    raise ValidationError(field, "must be true or false")


def query_text(raw: str | None) -> str:
    """The search text: at most 1024 characters, no NUL."""
    text = raw or ""
    if len(text) > MAX_QUERY_CHARS or "\x00" in text:
        raise ValidationError("q", f"must be at most {MAX_QUERY_CHARS} characters without NUL")
    return text
