"""Pieces of a file being downloaded: their geometry, the record of verified ones, and disk I/O.

A download verifies each piece against the hash the directory publishes before writing it in
place in the partial file. The record (`<sha256>.pieces` beside the partial) remembers which
pieces were verified, so a rerun fetches only what is missing. It is written in batches and
is only a hint: a resumed run re-verifies every piece it trusts, so a stale or torn record
costs a re-fetch of those pieces, never a wrong file.
"""
import errno
import hashlib
import logging
import os
from dataclasses import dataclass

from peer_node.hashing import DEFAULT_PIECE_SIZE, is_sha256

log = logging.getLogger(__name__)

RECORD_MAGIC = "p2p-pieces"
RECORD_VERSION = 1
READ_SIZE = 1024 * 1024
# Each worker holds one piece in memory until it is verified: a directory (or a lying holder)
# that announces bigger pieces gets whole-file verification instead of unbounded buffers.
MAX_BUFFERED_PIECE = 64 * 1024 * 1024
IOV_MAX = getattr(os, "IOV_MAX", None) or 1024


@dataclass(frozen=True)
class Geometry:
    """How a file of size bytes splits into pieces, and the sha256 of each (None: not known)."""

    size: int
    piece_size: int
    hashes: tuple = None

    @property
    def count(self):
        """Number of pieces (0 for an empty file)."""
        return -(-self.size // self.piece_size)

    @property
    def verified(self):
        """True when each piece can be checked on arrival."""
        return self.hashes is not None

    def start(self, index):
        """Offset of the first byte of piece index."""
        return index * self.piece_size

    def end(self, index):
        """Offset just past the last byte of piece index."""
        return min(self.size, (index + 1) * self.piece_size)

    def length(self, index):
        """Bytes in piece index (the last one may be short)."""
        return self.end(index) - self.start(index)

    def span(self, first, stop):
        """(offset, length) covering pieces first..stop-1."""
        return self.start(first), self.end(stop - 1) - self.start(first)


def geometry_for(size, piece_size, pieces):
    """The Geometry for what the directory says; without usable piece hashes, hashes is None.

    Returns (geometry, why): why names the reason the piece hashes cannot be used, or "".
    """
    size = int(size)
    if piece_size is None or pieces is None:
        return Geometry(size, DEFAULT_PIECE_SIZE), "the directory has no piece hashes for it"
    try:
        piece_size = int(piece_size)
    except (TypeError, ValueError):
        return Geometry(size, DEFAULT_PIECE_SIZE), f"its piece size {piece_size!r} is not a number"
    if piece_size <= 0 or piece_size > MAX_BUFFERED_PIECE:
        return (Geometry(size, DEFAULT_PIECE_SIZE),
                f"its piece size {piece_size} is outside 1..{MAX_BUFFERED_PIECE}")
    geometry = Geometry(size, piece_size)
    if not isinstance(pieces, (list, tuple)) or len(pieces) != geometry.count:
        count = len(pieces) if isinstance(pieces, (list, tuple)) else "no list of"
        return geometry, f"{count} piece hashes do not fit {size} bytes in pieces of {piece_size}"
    if not all(is_sha256(p) for p in pieces):
        return geometry, "its piece hashes are not all sha256 digests"
    return Geometry(size, piece_size, tuple(pieces)), ""


class PieceRecord:
    """The on-disk list of verified pieces: a one-line header naming the file, then a bitfield.

    Header: `p2p-pieces 1 <sha256> <size> <piece_size> <count>`; bit i (most significant bit
    first) is set when piece i was verified and written. Saved by write-and-rename, fsynced.
    """

    def __init__(self, path, sha256, geometry):
        self.path, self.sha256, self.geometry = path, sha256, geometry

    def _header(self):
        g = self.geometry
        return f"{RECORD_MAGIC} {RECORD_VERSION} {self.sha256} {g.size} {g.piece_size} {g.count}\n".encode()

    def load(self):
        """The recorded pieces as a set of indices; None when there is no usable record."""
        try:
            with open(self.path, "rb") as f:
                raw = f.read(len(self._header()) + self.geometry.count // 8 + 2)
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning("ignoring unreadable piece record %s: %s", self.path, exc)
            return None
        header = self._header()
        if not raw.startswith(header):
            log.info("ignoring piece record %s: it describes other pieces", self.path)
            return None
        bits = raw[len(header):]
        if len(bits) != (self.geometry.count + 7) // 8:
            log.info("ignoring piece record %s: truncated", self.path)
            return None
        return {i for i in range(self.geometry.count) if bits[i >> 3] & (0x80 >> (i & 7))}

    def save(self, done, durable=True):
        """Record the pieces whose flag in done (a bytearray, one per piece) is set.

        durable=False skips the fsync: for the last save of a cancelled run, which must end
        within a second (the page cache survives the process; a crash costs only re-checks).
        """
        bits = bytearray((self.geometry.count + 7) // 8)
        for i, flag in enumerate(done):
            if flag:
                bits[i >> 3] |= 0x80 >> (i & 7)
        tmp = self.path + ".tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, self._header() + bytes(bits))
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)

    def remove(self):
        """Delete the record (the download is finished or its partial is gone)."""
        for path in (self.path, self.path + ".tmp"):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass


@dataclass
class Resumed:
    """What a partial file already holds, as far as verification can tell."""

    done: bytearray
    stale: int = 0  # recorded pieces that no longer match their hash
    whole: object = None  # sha256 of the verified prefix, to continue from
    prefix: int = 0  # pieces 0..prefix-1 are fed to whole

    @property
    def pieces(self):
        """How many pieces are verified."""
        return sum(self.done)


def data_pieces(fd, geometry, length):
    """Pieces lying wholly in written (non-hole) parts of the first length bytes of fd.

    Verified pieces are the only bytes ever written to a partial, so this finds the ones a
    crash left unrecorded. Where the filesystem cannot tell holes, every piece within length.
    """
    found = set()
    pos = 0
    try:
        while pos < length:
            try:
                start = os.lseek(fd, pos, os.SEEK_DATA)
            except OSError as exc:
                if exc.errno == errno.ENXIO:  # no data past pos
                    break
                raise
            stop = min(os.lseek(fd, start, os.SEEK_HOLE), length)
            first = -(-start // geometry.piece_size)
            for i in range(first, geometry.count):
                if geometry.end(i) > stop:
                    break
                found.add(i)
            pos = stop
    except (OSError, AttributeError):
        return {i for i in range(geometry.count) if geometry.end(i) <= length}
    return found


def resume(path, record, geometry):
    """Check a partial against the piece hashes: keep what verifies, count recorded pieces that fail.

    Candidates are the recorded pieces plus any piece in a written region of the partial. The
    whole-file sha256 of the verified prefix is computed in the same pass. A partial longer
    than the file is cut to size. Without piece hashes the candidates are trusted as they are
    (the whole-file check at the end decides).
    """
    done = bytearray(geometry.count)
    recorded = record.load() or set()
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return Resumed(done, whole=hashlib.sha256())
    try:
        length = os.fstat(fd).st_size
        if length > geometry.size:
            log.info("cutting partial %s to the file's %d bytes", path, geometry.size)
            os.ftruncate(fd, geometry.size)
            length = geometry.size
        candidates = sorted(recorded | data_pieces(fd, geometry, length))
        if not geometry.verified:
            for i in candidates:
                if geometry.end(i) <= length:
                    done[i] = 1
            return Resumed(done, whole=hashlib.sha256())
        return _verify(fd, geometry, candidates, recorded, done)
    finally:
        os.close(fd)


def _verify(fd, geometry, candidates, recorded, done):
    whole = hashlib.sha256()
    prefix = 0
    stale = 0
    buf = bytearray(min(READ_SIZE, geometry.piece_size))
    for i in candidates:
        in_prefix = i == prefix
        tentative = whole.copy() if in_prefix else None
        piece = hashlib.sha256()
        pos, end = geometry.start(i), geometry.end(i)
        while pos < end:
            view = memoryview(buf)[:min(len(buf), end - pos)]
            n = os.preadv(fd, [view], pos)
            if n <= 0:
                break
            piece.update(view[:n])
            if tentative is not None:
                tentative.update(view[:n])
            pos += n
        if pos == end and piece.hexdigest() == geometry.hashes[i]:
            done[i] = 1
            if in_prefix:
                whole, prefix = tentative, prefix + 1
        elif i in recorded:
            stale += 1
            log.info("recorded piece %d no longer matches its hash; fetching it again", i)
    return Resumed(done, stale, whole, prefix)


def write_at(fd, offset, views):
    """Write the buffers back to back at offset (pwritev, in IOV_MAX batches, retrying short writes)."""
    views = [v for v in views if len(v)]
    while views:
        batch = views[:IOV_MAX]
        written = os.pwritev(fd, batch, offset)
        if written <= 0:
            raise OSError(errno.EIO, "pwritev wrote nothing")
        offset += written
        while written and views:
            if written >= len(views[0]):
                written -= len(views.pop(0))
            else:
                views[0] = views[0][written:]
                written = 0


class PieceBuffer:
    """The bytes of one piece as they arrive: hashed on the way in, kept until it is verified."""

    def __init__(self, geometry, index):
        self.index = index
        self.start = geometry.start(index)
        self.end = geometry.end(index)
        self.filled = 0
        self._hasher = hashlib.sha256()
        self.views = []

    @property
    def pos(self):
        """Offset of the next byte this piece expects."""
        return self.start + self.filled

    @property
    def full(self):
        """True when every byte of the piece is here."""
        return self.start + self.filled >= self.end

    def add(self, view):
        """Take the next bytes (at most what the piece still lacks); keep a reference, no copy."""
        self._hasher.update(view)
        self.views.append(view)
        self.filled += len(view)

    def hexdigest(self):
        """sha256 of the bytes taken so far."""
        return self._hasher.hexdigest()
