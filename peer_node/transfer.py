"""Moving whole files: verified, resumable download from a list of holders, and pushes to a peer.

The download overlaps receiving with writing and hashing: the caller's thread pulls chunks
off the gRPC stream while a writer thread appends them to the partial file and feeds
sha256 (hashlib and file writes release the GIL on large buffers). The queue between them
is bounded, so memory stays flat whatever the file size.
"""
import hashlib
import logging
import os
import queue
import threading
from dataclasses import dataclass, field

from peer_node.client import PeerClient
from peer_node.errors import (ChecksumMismatch, InvalidRequest, NoHolders, NotFound, P2PError,
                              PeerUnavailable, RemoteError)
from peer_node.folder import WORK_DIR, check_name, place_atomically
from peer_node.hashing import is_sha256, sha256_file

log = logging.getLogger(__name__)

MIN_SEGMENT = 4 * 1024 * 1024  # below this, one stream beats the cost of another connection
QUEUE_CHUNKS = 4  # at 1 MiB chunks: at most ~4 MiB queued between network and disk
WRITEBACK_WINDOW = 32 * 1024 * 1024


@dataclass
class Holder:
    """A peer that holds the file."""

    peer_id: str
    address: str


@dataclass
class FileRecord:
    """What the directory says about one file."""

    sha256: str
    size: int
    name: str
    holders: list = field(default_factory=list)


@dataclass
class DownloadResult:
    """Where a download went and how it went."""

    path: str
    name: str
    size: int
    sha256: str
    resumed_from: int = 0
    sources: list = field(default_factory=list)
    failed: list = field(default_factory=list)
    created: bool = True
    received: int = 0


def _holders(raw):
    return [Holder(h.get("peer_id", "?"), h["grpc_address"]) for h in raw or [] if h.get("grpc_address")]


def find_file(directory, ref):
    """The FileRecord for ref (a sha256, or an exact shared name) according to the directory."""
    if is_sha256(ref):
        rec = directory.file(ref)
        names = rec.get("names") or [rec.get("name") or ref]
        return FileRecord(ref, int(rec["size"]), names[0], _holders(rec.get("holders")))
    check_name(ref)
    matches = [r for r in directory.search(ref) if r.get("name") == ref]
    digests = sorted({r["sha256"] for r in matches})
    if not digests:
        raise NotFound(f"no live peer shares a file named {ref!r} (try `p2p search`)")
    if len(digests) > 1:
        raise InvalidRequest(f"{len(digests)} different files are named {ref!r}; "
                             f"ask for one by sha256: {', '.join(digests)}")
    try:
        rec = directory.file(digests[0])
        holders = _holders(rec.get("holders")) or _holders(matches[0].get("holders"))
        size = int(rec.get("size", matches[0]["size"]))
    except NotFound:
        holders, size = _holders(matches[0].get("holders")), int(matches[0]["size"])
    return FileRecord(digests[0], size, ref, holders)


def destination(out, name, default_dir):
    """The final path: out as given, out/name when out is a directory, else default_dir/name."""
    check_name(name)
    if out is None:
        return os.path.abspath(os.path.join(default_dir, *name.split("/")))
    if os.path.isdir(out):
        return os.path.abspath(os.path.join(out, os.path.basename(name)))
    return os.path.abspath(out)


def partial_path(dest, sha256):
    """Where the partial download of sha256 for dest lives: the work area beside dest."""
    return os.path.join(os.path.dirname(dest), WORK_DIR, "partial", f"{sha256}.part")


class _Writer:
    """A thread that appends chunks to a file and hashes them, fed through a bounded queue."""

    def __init__(self, f, hasher):
        self._f, self._hasher = f, hasher
        self._written = self._flushed = f.tell()
        self._queue = queue.Queue(QUEUE_CHUNKS)
        self._error = None
        self._thread = threading.Thread(target=self._run, name="download-writer", daemon=True)
        self._thread.start()

    def _run(self):
        while True:
            data = self._queue.get()
            if data is None:
                return
            if self._error is not None:
                continue  # keep draining so the producer never blocks forever
            try:
                self._f.write(data)
                self._hasher.update(data)
                self._written += len(data)
                if self._written - self._flushed >= WRITEBACK_WINDOW:
                    self._start_writeback()
            except BaseException as exc:  # surfaced in the caller's thread by put()/finish()
                self._error = exc

    def _start_writeback(self):
        # Ask the kernel to write this window out now, while the network keeps going, instead
        # of leaving a whole file of dirty pages to the final fsync (which then blocks for it).
        # It also keeps a big download from flooding the page cache.
        try:
            os.posix_fadvise(self._f.fileno(), self._flushed, self._written - self._flushed,
                             os.POSIX_FADV_DONTNEED)
        except (AttributeError, OSError):
            pass
        self._flushed = self._written

    def put(self, data):
        """Queue data for writing; re-raise an earlier write error."""
        if self._error is not None:
            raise self._error
        self._queue.put(data)

    def finish(self):
        """Wait until everything queued is written; fsync; re-raise a write error."""
        self._queue.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error
        self._f.flush()
        os.fsync(self._f.fileno())


def download(record, dest, on_progress=None, on_unreachable=None, parallel=1):
    """Fetch record into dest: resume from a partial, try holders in turn, verify, place atomically.

    on_progress(received, size) is called after each chunk; on_unreachable(holder, error) when
    a holder fails with UNAVAILABLE/DEADLINE_EXCEEDED or its stream breaks. parallel > 1 splits
    what is missing into segments fetched from up to that many holders at once.
    """
    part = partial_path(dest, record.sha256)
    os.makedirs(os.path.dirname(part), exist_ok=True)
    if os.path.exists(dest) and os.path.isfile(dest):
        if sha256_file(dest).hexdigest() == record.sha256:
            return DownloadResult(dest, record.name, record.size, record.sha256, created=False)
    received = os.path.getsize(part) if os.path.exists(part) else 0
    if received > record.size:
        log.info("discarding partial %s: longer than the file", part)
        os.unlink(part)
        received = 0
    result = DownloadResult(dest, record.name, record.size, record.sha256, resumed_from=received,
                            received=received)
    if received:
        log.info("resuming %s from byte %d of %d", record.name, received, record.size)
    if parallel > 1 and len(record.holders) > 1 and record.size - received >= 2 * MIN_SEGMENT:
        return _download_parallel(record, dest, part, result, parallel, on_progress, on_unreachable)
    hasher = sha256_file(part) if received else hashlib.sha256()
    f = open(part, "ab", buffering=0)
    writer = _Writer(f, hasher)
    try:
        for holder in record.holders:
            if result.received >= record.size:
                break
            start = result.received
            try:
                _fetch_from(holder, record, result, writer, on_progress)
                result.sources.append(holder.peer_id)
            except PeerUnavailable as exc:
                log.warning("holder %s (%s) failed at byte %d: %s; trying the next one",
                            holder.peer_id, holder.address, result.received, exc.detail or exc)
                result.failed.append(holder.peer_id)
                if result.received > start:
                    result.sources.append(holder.peer_id)
                if on_unreachable is not None:
                    on_unreachable(holder, exc)
            except P2PError as exc:
                log.warning("holder %s (%s) refused: %s; trying the next one",
                            holder.peer_id, holder.address, exc)
                result.failed.append(holder.peer_id)
        writer.finish()
    finally:
        f.close()
    return _finish(record, dest, part, result, hasher.hexdigest())


def _finish(record, dest, part, result, actual):
    """Check the outcome, verify the digest, and move the partial into place."""
    received = result.received
    if received < record.size:
        tried = len(record.holders)
        raise NoHolders(record.name, f"{tried} holder(s) tried, {received} of {record.size} bytes "
                        f"kept in {part}; run the same command again to resume"
                        if tried else "no live holder; try again later")
    if actual != record.sha256:
        os.unlink(part)
        raise ChecksumMismatch(dest, record.sha256, actual)
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    result.created = place_atomically(part, dest, record.sha256)
    return result


def _fetch_from(holder, record, result, writer, on_progress):
    """Stream the rest of the file from one holder into writer, counting in result.received."""
    with PeerClient(holder.address) as peer:
        for pos, data in peer.download(sha256=record.sha256, offset=result.received):
            if pos != result.received or pos + len(data) > record.size:
                raise RemoteError(holder.address, "PROTOCOL",
                                  f"chunk at {pos}+{len(data)} does not continue at {result.received}")
            writer.put(data)
            result.received += len(data)
            if on_progress is not None:
                on_progress(result.received, record.size)
    if result.received < record.size:
        raise PeerUnavailable(holder.address,
                              f"stream ended at byte {result.received} of {record.size}")


@dataclass
class _Segment:
    pos: int
    end: int
    busy: bool = False


def _download_parallel(record, dest, part, result, parallel, on_progress, on_unreachable):
    """Multi-source: workers take segments of the missing range, each from its own holder.

    A holder that fails gives its segment back (from the byte it reached) and retires; a spare
    holder takes its place. On overall failure the partial is cut back to its contiguous
    prefix, so a later run can still resume by range.
    """
    start = result.received
    workers = min(parallel, len(record.holders))
    size_each = max(MIN_SEGMENT, -(-(record.size - start) // (workers * 4)))
    segments = [_Segment(lo, min(lo + size_each, record.size))
                for lo in range(start, record.size, size_each)]
    holders = list(record.holders)
    lock = threading.Lock()
    fd = os.open(part, os.O_WRONLY | os.O_CREAT, 0o644)
    log.info("fetching %s from up to %d holders in %d segments", record.name, workers, len(segments))

    def take_segment():
        with lock:
            for seg in segments:
                if not seg.busy and seg.pos < seg.end:
                    seg.busy = True
                    return seg
        return None

    def work():
        while True:
            with lock:
                if not holders or all(seg.pos >= seg.end for seg in segments):
                    return
                holder = holders.pop(0)
            used = False
            try:
                with PeerClient(holder.address) as peer:
                    while (seg := take_segment()) is not None:
                        try:
                            for pos, data in peer.download(sha256=record.sha256, offset=seg.pos,
                                                           length=seg.end - seg.pos):
                                if pos != seg.pos or pos + len(data) > seg.end:
                                    raise RemoteError(holder.address, "PROTOCOL",
                                                      f"chunk at {pos} does not continue at {seg.pos}")
                                os.pwrite(fd, data, pos)
                                used = True
                                with lock:
                                    seg.pos += len(data)
                                    result.received += len(data)
                                    done = result.received
                                if on_progress is not None:
                                    on_progress(done, record.size)
                            if seg.pos < seg.end:
                                raise PeerUnavailable(holder.address, f"stream ended at byte {seg.pos}")
                        finally:
                            seg.busy = False
                with lock:
                    result.sources.append(holder.peer_id)
                    holders.append(holder)  # still good: it may finish a segment another dropped
                return
            except PeerUnavailable as exc:
                log.warning("holder %s (%s) failed: %s; its segment goes to another holder",
                            holder.peer_id, holder.address, exc.detail or exc)
                if on_unreachable is not None:
                    on_unreachable(holder, exc)
            except P2PError as exc:
                log.warning("holder %s (%s) refused: %s", holder.peer_id, holder.address, exc)
            with lock:
                result.failed.append(holder.peer_id)
                if used:
                    result.sources.append(holder.peer_id)

    threads = [threading.Thread(target=work, name=f"source-{i}", daemon=True) for i in range(workers)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if all(seg.pos >= seg.end for seg in segments):
            os.fsync(fd)
        else:
            prefix = start
            for seg in segments:  # in file order: the prefix ends at the first gap
                prefix = seg.pos
                if seg.pos < seg.end:
                    break
            os.ftruncate(fd, prefix)
            result.received = prefix
    finally:
        os.close(fd)
    actual = sha256_file(part).hexdigest() if result.received >= record.size else ""
    return _finish(record, dest, part, result, actual)


def push(folder, entry, to_address, name=None, chunk_size=1024 * 1024, rate_limiter=None):
    """Upload a shared file (a FileEntry of folder) to the peer at to_address; return its RemoteFile."""
    path = folder.resolve(entry.name)
    with PeerClient(to_address) as peer:
        return peer.upload(path, name or entry.name, entry.size, entry.sha256, chunk_size, rate_limiter)
