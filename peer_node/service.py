"""What a peer does for the RPCs, as plain Python (no grpc here): list, serve ranges, receive uploads."""
import contextlib
import errno
import logging
import os
import threading
from dataclasses import dataclass

from peer_node import metrics
from peer_node.errors import (AlreadyExists, Busy, InvalidRequest, NotFound, OutOfRange,
                              QuotaExceeded, UploadRejected)
from peer_node.folder import FileEntry, check_name
from peer_node.hashing import read_range
from peer_node.throttle import TokenBucket
from peer_node.watchdog import Watchdog
from protos.rules import SHA256_RULE, is_sha256
from protos.tickets import DOWNLOAD, UPLOAD

log = logging.getLogger(__name__)


@dataclass
class ServiceLimits:
    """The transfer settings the service enforces."""

    chunk_size: int = 1024 * 1024
    upload_rate_limit: int = 0  # bytes/s for all uploads of this peer together (0 = no limit)
    max_upload_bytes: int = 4 * 1024**3  # 0: no limit but the disk's
    accept_uploads: bool = True
    max_transfers: int = 8
    header_timeout: float = 5.0   # seconds an Upload may take to send its header
    stall_timeout: float = 10.0   # seconds a transfer's other side may stay still
    min_free_bytes: int = 1024**3  # disk space uploads must leave free


class PeerService:
    """The peer's side of ListFiles, Download and Upload over one SharedFolder."""

    def __init__(self, folder, limits=None, on_stored=None, admission=None):
        self.folder = folder
        self.limits = limits or ServiceLimits()
        # called with the FileEntry of every completed upload, so it is published at once
        self.on_stored = on_stored
        # checks the ticket of every transfer (peer_node/admission.py); None: no tickets asked
        self.admission = admission
        self._slots = threading.BoundedSemaphore(self.limits.max_transfers)
        # Uploads waiting for their header hold a server thread but no slot: as many again
        self._starting = threading.BoundedSemaphore(self.limits.max_transfers)
        self.watchdog = Watchdog()  # cancels calls whose other side stopped moving
        # the upload rate limit is the peer's: every Download stream and every push it makes share it
        rate = self.limits.upload_rate_limit
        self.upload_bucket = TokenBucket(rate, burst=self.limits.chunk_size) if rate else None
        self._room_lock = threading.Lock()
        self._incoming_bytes = 0  # announced sizes of the uploads being received: not on disk yet

    @contextlib.contextmanager
    def awaiting_header(self):
        """Room for one Upload to send its header, or Busy at once when too many are starting."""
        if not self._starting.acquire(blocking=False):
            raise Busy(f"too many uploads are starting ({self.limits.max_transfers}); try again later")
        try:
            yield
        finally:
            self._starting.release()

    def list_files(self, prefix=""):
        """Indexed files whose name starts with prefix."""
        return self.folder.entries(prefix)

    def find(self, sha256="", name=""):
        """The FileEntry named by sha256 (preferred) or name."""
        if sha256:
            if not is_sha256(sha256):
                raise InvalidRequest(f"sha256 must be {SHA256_RULE}, got {sha256!r}")
            entry = self.folder.by_sha256(sha256)
            if name and entry.name != name:
                check_name(name)
                entry = self.folder.by_name(name)
                if entry.sha256 != sha256:
                    raise NotFound(f"{name!r} with sha256 {sha256}")
            return entry
        if name:
            return self.folder.by_name(name)
        raise InvalidRequest("name the file by sha256 or by name")

    def check_accepts_uploads(self):
        """UploadRejected when this peer takes no uploads at all (said before any ticket is looked at)."""
        if not self.limits.accept_uploads:
            raise UploadRejected("this peer does not accept uploads (accept_uploads = false)")

    def admit(self, authorization, purpose=DOWNLOAD):
        """The Claims of the transfer's ticket (None when this peer asks for none); raises when refused."""
        if self.admission is None:
            return None
        return self.admission.admit(authorization, purpose)

    def download(self, sha256="", name="", offset=0, length=0, authorization=None):
        """Check the ticket and the request now, then return (entry, start, length, iterator of (offset, bytes))."""
        claims = self.admit(authorization, DOWNLOAD)  # first: a stranger learns nothing of the folder
        entry = self.find(sha256, name)
        if claims is not None:
            self.admission.match(claims, entry.sha256)
        if offset < 0 or length < 0:
            raise InvalidRequest(f"offset ({offset}) and length ({length}) must not be negative")
        if offset > entry.size:
            raise OutOfRange(f"offset {offset} is past the end of {entry.name!r} ({entry.size} bytes)")
        if length == 0:
            length = entry.size - offset
        elif offset + length > entry.size:
            raise OutOfRange(
                f"range {offset}+{length} is past the end of {entry.name!r} ({entry.size} bytes)")
        path = self.folder.resolve(entry.name)
        if not self._slots.acquire(blocking=False):
            raise Busy(f"too many transfers in progress ({self.limits.max_transfers}); try again later")
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            self._slots.release()
            raise NotFound(f"{entry.name!r} was removed; it disappears from the index at the next rescan") from None
        except OSError as exc:
            self._slots.release()
            raise NotFound(f"{entry.name!r} cannot be read here: {exc.strerror}") from None
        except BaseException:
            self._slots.release()
            raise
        st = os.fstat(fd)
        if st.st_size != entry.size or st.st_mtime_ns != entry.mtime_ns:
            os.close(fd)
            self._slots.release()
            raise NotFound(f"{entry.name!r} changed since it was indexed; retry after the next rescan")
        log.info("sending %s bytes %d..%d", entry.name, offset, offset + length)
        return entry, offset, length, self._stream(fd, offset, length)

    def _stream(self, fd, offset, length):
        metrics.transfer_started(metrics.SENDING)
        try:
            for pos, data in read_range(fd, offset, length, self.limits.chunk_size):
                if self.upload_bucket is not None:
                    self.upload_bucket.take(len(data))
                yield pos, data
                metrics.bytes_sent(len(data))  # the stream took it
        finally:
            metrics.transfer_ended(metrics.SENDING)
            os.close(fd)
            self._slots.release()

    def receive(self, name, size, sha256, chunks, claims=None):
        """Store an uploaded file from an iterator of bytes; return its FileEntry.

        claims: what admit(authorization, "upload") answered before the header was read.
        Same name with the same content succeeds without reading the data (idempotent); same
        name with other content is AlreadyExists; nothing is left behind on any failure.
        """
        if self.admission is not None:
            if claims is None:
                claims = self.admit(None, UPLOAD)  # raises TicketRequired
            self.admission.match(claims, sha256, size)
        self.check_accepts_uploads()
        check_name(name)
        if not is_sha256(sha256):
            raise InvalidRequest(f"header sha256 must be {SHA256_RULE}, got {sha256!r}")
        if size < 0:
            raise InvalidRequest(f"header size must not be negative, got {size}")
        limit = self.limits.max_upload_bytes
        if limit and size > limit:
            raise QuotaExceeded(f"{name!r} is {size} bytes; this peer accepts uploads up to {limit} bytes")
        existing = self._existing(name)
        if existing is not None and existing.sha256 == sha256 and existing.size == size:
            log.info("upload of %s: already have the same content", name)
            return existing
        # an unindexed file of the same size is compared byte-wise when the upload commits
        if existing is not None and (existing.sha256 or existing.size != size):
            raise AlreadyExists(name, f"{name!r} already exists here with different content; "
                                      "upload it under another name")
        if not self._slots.acquire(blocking=False):
            raise Busy(f"too many transfers in progress ({self.limits.max_transfers}); try again later")
        try:
            self._book_room(name, size)
        except BaseException:
            self._slots.release()
            raise
        booked = size  # what of it is not on the disk yet (the free space already shows the rest)
        try:
            with metrics.transfer(metrics.RECEIVING), self.folder.incoming(name, size, sha256) as incoming:
                for data in chunks:
                    metrics.bytes_received(len(data))
                    incoming.write(data)
                    written = min(len(data), booked)
                    with self._room_lock:
                        self._incoming_bytes -= written
                    booked -= written
                entry = incoming.commit()
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise QuotaExceeded(f"no room for {name!r} here: {exc.strerror}") from None
            raise InvalidRequest(f"cannot store {name!r} here: {exc.strerror}") from None
        finally:
            with self._room_lock:
                self._incoming_bytes -= booked
            self._slots.release()
        if self.on_stored is not None:
            self.on_stored(entry)
        return entry

    def _book_room(self, name, size):
        """Count size against the free disk space, less the reserve and the uploads under way; QuotaExceeded if it does not fit."""
        reserve = self.limits.min_free_bytes
        with self._room_lock:
            free = self.folder.free_bytes() - self._incoming_bytes
            if size > free - reserve:
                kept = f", and {reserve} bytes must stay free (min_free_bytes)" if reserve else ""
                busy = f" (uploads under way take {self._incoming_bytes} more)" if self._incoming_bytes else ""
                raise QuotaExceeded(f"{name!r} is {size} bytes but only {max(free, 0)} bytes are free "
                                    f"here{busy}{kept}")
            self._incoming_bytes += size

    def _existing(self, name):
        try:
            return self.folder.by_name(name)
        except NotFound:
            pass
        path = self.folder.resolve(name)
        if os.path.lexists(path):
            if not os.path.isfile(path):
                raise AlreadyExists(name, f"{name!r} exists here and is not a regular file")
            # on disk but not indexed yet: only a size check now; the commit compares bytes
            st = os.stat(path)
            return FileEntry(name, st.st_size, "", st.st_mtime_ns)
        return None
