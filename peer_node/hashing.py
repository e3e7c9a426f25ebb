"""Hashing files on disk (whole and by piece, one streaming pass) and range reads."""
import hashlib
import os

# The piece rules and the digest format are the contract's (protos/rules.py); they are
# re-exported here because callers import them from this module.
from protos.rules import DEFAULT_PIECE_SIZE, Digest, PieceHasher, is_sha256

__all__ = ["DEFAULT_PIECE_SIZE", "Digest", "PieceHasher", "is_sha256", "READ_SIZE", "hash_file",
           "sha256_file", "read_blocks", "read_range"]

READ_SIZE = 1024 * 1024  # big enough that hashlib releases the GIL, small enough to stay cheap


def read_blocks(f, limit=None, read_size=READ_SIZE, before=None):
    """Yield the next blocks of the open file f (up to limit bytes, all when None), one reused buffer.

    Each block is a memoryview valid until the next one is asked for; before(n), when given, is
    called ahead of each read of n bytes (a rate limit pays for what is read, not the buffer).
    """
    buf = bytearray(read_size)
    view = memoryview(buf)
    remaining = limit
    while remaining is None or remaining > 0:
        want = read_size if remaining is None else min(read_size, remaining)
        if before is not None:
            before(want)
        n = f.readinto(view[:want])
        if not n:
            return
        yield view[:n]
        if remaining is not None:
            remaining -= n


def hash_file(path, piece_size=DEFAULT_PIECE_SIZE, read_size=READ_SIZE):
    """Digest of the file at path, read in read_size blocks into one reused buffer."""
    hasher = PieceHasher(piece_size)
    with open(path, "rb", buffering=0) as f:
        for block in read_blocks(f, read_size=read_size):
            hasher.update(block)
    return hasher.finish()


def sha256_file(path, limit=None, read_size=READ_SIZE):
    """A hashlib sha256 object fed with the first `limit` bytes (all when None) of path."""
    h = hashlib.sha256()
    with open(path, "rb", buffering=0) as f:
        for block in read_blocks(f, limit, read_size):
            h.update(block)
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
