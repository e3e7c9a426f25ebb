"""The rules both sides of the contract apply: peer ids, digests, safe file names, pieces.

The directory and the peer import these and restate none of them. Pure Python (no grpc,
Flask or SQLAlchemy), so either side can import it without the other's dependencies.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

# --- peer ids and digests -------------------------------------------------------------------

# Anchored, so the same string serves as an OpenAPI `pattern` (which is unanchored by default).
PEER_ID_PATTERN = r"^[A-Za-z0-9._-]{1,64}$"
PEER_ID_RULE = "1-64 ASCII letters, digits, '.', '_' or '-'"
SHA256_PATTERN = r"^[0-9a-f]{64}$"
SHA256_RULE = "64 lowercase hex digits"

_PEER_ID_RE = re.compile(PEER_ID_PATTERN)
_SHA256_RE = re.compile(SHA256_PATTERN)


def is_peer_id(value: Any) -> bool:
    """True when value is a peer id: 1-64 of A-Z a-z 0-9 . _ -."""
    # fullmatch: `$` alone would also match before a trailing newline
    return isinstance(value, str) and _PEER_ID_RE.fullmatch(value) is not None


def is_sha256(value: Any) -> bool:
    """True when value is a sha256 hex digest: 64 lowercase hex digits."""
    return isinstance(value, str) and _SHA256_RE.fullmatch(value) is not None


# --- file names -----------------------------------------------------------------------------

# Every peer's private work area (temporary files, partial downloads, hash cache). A partial
# download lives beside its destination, so a work area can appear at any depth of a folder.
WORK_DIR = ".p2p"
MAX_NAME_BYTES = 4096
MAX_COMPONENT_BYTES = 255
NAME_RULE = (f"a relative path: no leading /, no empty, '.', '..' or {WORK_DIR} component (at any "
             f"depth), no NUL or backslash, valid UTF-8, at most {MAX_NAME_BYTES} bytes and "
             f"{MAX_COMPONENT_BYTES} bytes a component")


# The rule above as a JSON Schema / ECMA-262 pattern, for documents (no lookaround, so every
# regex engine and generator takes it): components of anything but /, backslash and NUL that are
# not '', '.', '..' or .p2p in any case. The byte lengths it cannot say; name_problem checks all.
_C = r"[^/\\\x00]"  # a character of a component
_COMPONENT = "(?:" + "|".join((
    r"[^/\\\x00.]" + _C + "*",          # not starting with a dot
    r"\.\." + _C + "+",                  # ..x
    r"\.[^/\\\x00.pP]" + _C + "*",     # .x
    r"\.[pP]", r"\.[pP][^/\\\x002]" + _C + "*",            # .p, .px
    r"\.[pP]2", r"\.[pP]2[^/\\\x00pP]" + _C + "*",         # .p2, .p2x
    r"\.[pP]2[pP]" + _C + "+",            # .p2px
)) + ")"
NAME_PATTERN = f"^{_COMPONENT}(?:/{_COMPONENT})*$"


def is_reserved_component(component: str) -> bool:
    """True when one path component names the work area (any case: some filesystems fold it)."""
    return component.casefold() == WORK_DIR


def name_problem(name: Any) -> str | None:
    """Why name is not a safe relative file name, or None when it is one.

    The reason reads after the name ("'a//b' has an empty path component") and says what to
    change; the directory and the peer wrap it in their own error.
    """
    if not isinstance(name, str):
        return "is not a string"
    if name == "":
        return "is empty"
    if "\x00" in name:
        return "contains a NUL byte"
    # A backslash is a separator on Windows, so it could smuggle '..' past the checks below.
    if "\\" in name:
        return "contains a backslash (separate folders with /)"
    if name.startswith("/"):
        return "is an absolute path (names are relative to the shared folder)"
    try:
        encoded = name.encode("utf-8")
    except UnicodeEncodeError:
        # a lone surrogate: what Python makes of a file name on disk that is not UTF-8
        return "is not valid UTF-8 (rename the file)"
    if len(encoded) > MAX_NAME_BYTES:
        return f"is longer than {MAX_NAME_BYTES} bytes in UTF-8"
    for component in name.split("/"):
        if component == "":
            return "has an empty path component (a doubled or trailing /)"
        if component in (".", ".."):
            return f"has a {component!r} component"
        if len(component.encode("utf-8")) > MAX_COMPONENT_BYTES:
            return f"has a component longer than {MAX_COMPONENT_BYTES} bytes in UTF-8"
        if is_reserved_component(component):
            return f"has a {WORK_DIR} component: {WORK_DIR} is a peer's private work area at every depth"
    return None


# --- pieces ---------------------------------------------------------------------------------

DEFAULT_PIECE_SIZE = 4 * 1024 * 1024
# Smaller pieces mean more digests to publish and more requests per download for no gain.
MIN_PIECE_SIZE = 64 * 1024
PIECES_RULE = ("the sha256 of each piece_size piece in order, only the last one short; "
               "an empty file has no pieces")


def piece_count(size: int, piece_size: int) -> int:
    """How many pieces a file of size bytes has; an empty file has none (its sha256 says all)."""
    if piece_size <= 0:
        raise ValueError(f"piece_size must be positive, got {piece_size}")
    if size < 0:
        raise ValueError(f"size must not be negative, got {size}")
    return -(-size // piece_size)


def piece_range(index: int, size: int, piece_size: int) -> tuple[int, int]:
    """(offset, length) of piece index of a file of size bytes; only the last piece is short."""
    count = piece_count(size, piece_size)
    if not 0 <= index < count:
        raise ValueError(f"piece {index} does not exist: a file of {size} bytes has {count} "
                         f"pieces of {piece_size} bytes")
    offset = index * piece_size
    return offset, min(piece_size, size - offset)


def piece_hash(data: bytes) -> str:
    """The digest of one piece: the sha256 hex digest of its bytes."""
    return hashlib.sha256(data).hexdigest()


@dataclass
class Digest:
    """What hashing a whole stream yields: its size, sha256 and piece digests."""

    size: int
    sha256: str
    piece_size: int
    pieces: list = field(default_factory=list)


class PieceHasher:
    """Incremental sha256 of a stream plus the piece_hash of each piece_size piece."""

    def __init__(self, piece_size: int = DEFAULT_PIECE_SIZE):
        if piece_size <= 0:
            raise ValueError(f"piece_size must be positive, got {piece_size}")
        self.piece_size = piece_size
        self.size = 0
        self._whole = hashlib.sha256()
        self._piece = hashlib.sha256()
        self._piece_filled = 0
        self.pieces: list[str] = []

    def update(self, data) -> None:
        """Feed the next bytes of the stream."""
        view = memoryview(data)
        self._whole.update(view)
        self.size += len(view)
        while len(view):
            take = min(len(view), self.piece_size - self._piece_filled)
            self._piece.update(view[:take])
            self._piece_filled += take
            view = view[take:]
            if self._piece_filled == self.piece_size:
                self.pieces.append(self._piece.hexdigest())
                self._piece = hashlib.sha256()
                self._piece_filled = 0

    def finish(self) -> Digest:
        """The final Digest (call once, after the last update); an empty stream has no pieces."""
        if self._piece_filled:
            self.pieces.append(self._piece.hexdigest())
            self._piece_filled = 0
        return Digest(self.size, self._whole.hexdigest(), self.piece_size, list(self.pieces))
