"""Hashing files on disk (whole and by piece, one streaming pass) and range reads."""
import hashlib
import os

# The piece rules and the digest format are the contract's (protos/rules.py); they are
# re-exported here because callers import them from this module.
from protos.rules import DEFAULT_PIECE_SIZE, Digest, PieceHasher, is_sha256

__all__ = ["DEFAULT_PIECE_SIZE", "Digest", "PieceHasher", "is_sha256", "READ_SIZE", "hash_file",
           "sha256_file", "read_range"]

READ_SIZE = 1024 * 1024  # big enough that hashlib releases the GIL, small enough to stay cheap


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
