"""SHA-256 of whole files and of fixed-size pieces, computed in one streaming pass; range reads."""
import hashlib
import os
import re
from dataclasses import dataclass, field

DEFAULT_PIECE_SIZE = 4 * 1024 * 1024
READ_SIZE = 1024 * 1024  # big enough that hashlib releases the GIL, small enough to stay cheap

_SHA256_RE = re.compile(r"[0-9a-f]{64}")


def is_sha256(text):
    """True when text is 64 lowercase hex digits."""
    return isinstance(text, str) and _SHA256_RE.fullmatch(text) is not None


@dataclass
class Digest:
    """What hashing a whole stream yields."""

    size: int
    sha256: str
    piece_size: int
    pieces: list = field(default_factory=list)


class PieceHasher:
    """Incremental sha256 of a stream plus the sha256 of each piece_size piece."""

    def __init__(self, piece_size=DEFAULT_PIECE_SIZE):
        if piece_size <= 0:
            raise ValueError("piece_size must be positive")
        self.piece_size = piece_size
        self.size = 0
        self._whole = hashlib.sha256()
        self._piece = hashlib.sha256()
        self._piece_filled = 0
        self.pieces = []

    def update(self, data):
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

    def finish(self):
        """The final Digest (call once, after the last update)."""
        if self._piece_filled:
            self.pieces.append(self._piece.hexdigest())
            self._piece_filled = 0
        return Digest(self.size, self._whole.hexdigest(), self.piece_size, list(self.pieces))


def hash_file(path, piece_size=DEFAULT_PIECE_SIZE, read_size=READ_SIZE):
    """Digest of the file at path, read in read_size blocks into one reused buffer."""
    hasher = PieceHasher(piece_size)
    buf = bytearray(read_size)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as f:
        while True:
            n = f.readinto(buf)
            if not n:
                break
            hasher.update(view[:n])
    return hasher.finish()


def sha256_file(path, limit=None, read_size=READ_SIZE):
    """A hashlib sha256 object fed with the first `limit` bytes (all when None) of path."""
    h = hashlib.sha256()
    buf = bytearray(read_size)
    view = memoryview(buf)
    remaining = limit
    with open(path, "rb", buffering=0) as f:
        while remaining is None or remaining > 0:
            want = read_size if remaining is None else min(read_size, remaining)
            n = f.readinto(view[:want])
            if not n:
                break
            h.update(view[:n])
            if remaining is not None:
                remaining -= n
    return h


def read_range(fd, offset, length, chunk_size):
    """Yield (offset, bytes) blocks of at most chunk_size covering [offset, offset+length) of fd.

    Uses os.pread so several readers can share one descriptor and nothing seeks; stops early
    if the file is shorter than expected (the reader verifies the digest anyway).
    """
    end = offset + length
    pos = offset
    while pos < end:
        data = os.pread(fd, min(chunk_size, end - pos), pos)
        if not data:
            return
        yield pos, data
        pos += len(data)
