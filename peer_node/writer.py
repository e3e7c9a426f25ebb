"""The writer of a download: verified pieces go in place, and the whole-file sha256 follows them.

Workers hand over each piece once it has verified; one thread writes it into its byte range
of the partial file and feeds the whole-file sha256 in file order: from memory when the
piece continues the hashed prefix, else by reading it back once the prefix reaches it (one
such piece per piece written, and whenever nothing waits to be written). So the whole file
is checked moments after its last piece lands, with no second pass over it. The queue is
short: it bounds the memory a download uses.
"""
import logging
import os
import queue
import threading
import time

from peer_node.pieces import READ_SIZE, write_at

log = logging.getLogger(__name__)

QUEUED_PIECES = 1  # verified pieces waiting for the writer (each worker also holds one)
WRITEBACK_WINDOW = 32 * 1024 * 1024
POLL = 0.05
RECORD_EVERY = 1.0  # the piece record is saved at most this often (a resume re-verifies)


class PieceWriter:
    """A thread owning the partial's writes and the whole-file hash of one download.

    done: the board's bytearray of written pieces (read to know what the prefix may take);
    whole, prefix: the sha256 of pieces 0..prefix-1 already hashed (from a resume);
    on_written(index): called (in the writer thread) once a piece is on disk;
    record: the PieceRecord, saved (fsynced) from this thread at most every RECORD_EVERY s.
    """

    def __init__(self, path, geometry, done, whole, prefix, on_written, record):
        self.path, self.geometry, self._done, self.record = path, geometry, done, record
        self._saved_at = time.monotonic()
        self._saved = sum(done)
        self._save_lock = threading.Lock()  # the engine saves once more after this thread
        self._whole, self.hashed = whole, prefix
        self._on_written = on_written
        self._queue = queue.Queue(QUEUED_PIECES)
        self._buf = bytearray(min(READ_SIZE, max(geometry.piece_size, 1)))
        self._advised = 0
        self._hash_stop = False
        self.error = None
        self._thread = threading.Thread(target=self._run, name="swarm-write", daemon=True)

    def start(self):
        """Start the thread."""
        self._thread.start()

    def put(self, index, views, timeout):
        """Queue a verified piece; False when the queue stayed full for timeout seconds."""
        try:
            self._queue.put((index, views), timeout=timeout)
            return True
        except queue.Full:
            return False

    def close(self, hash_rest=True):
        """Write what is queued, then (with hash_rest) finish hashing the written prefix, and stop."""
        if not hash_rest:
            self._hash_stop = True
        try:
            self._queue.put(None, timeout=1.0)
        except queue.Full:
            pass  # the thread died: its error is in self.error

    def stop_hashing(self):
        """Leave the rest of the whole-file hash undone (the download is being cancelled)."""
        self._hash_stop = True

    def join(self, timeout=None):
        """Wait for the thread; True when it has ended."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def complete(self):
        """True when every piece is in the whole-file hash."""
        return self.hashed == self.geometry.count

    def hexdigest(self):
        """The whole-file sha256 (meaningful once complete)."""
        return self._whole.hexdigest()

    def _run(self):
        g = self.geometry
        fd = None
        draining = wrote = False
        try:
            fd = os.open(self.path, os.O_RDWR)
            while True:
                behind = not self._hash_stop and self.hashed < g.count and self._done[self.hashed]
                if behind and wrote:  # one piece read back per piece written: no backlog for the end
                    self._hash_from_disk(fd, self.hashed)
                    wrote = False
                    continue
                try:
                    item = self._queue.get_nowait() if behind or draining else self._queue.get(timeout=POLL)
                except queue.Empty:
                    if behind:
                        self._hash_from_disk(fd, self.hashed)
                    elif draining:
                        return
                    continue
                if item is None:
                    draining = True
                    continue
                wrote = True
                index, views = item
                write_at(fd, g.start(index), views)
                self._on_written(index)
                self._maybe_save()
                if index == self.hashed and not self._hash_stop:
                    for view in views:
                        self._whole.update(view)
                    self.hashed += 1
                    self._advise(fd)
                del views, item
        except Exception as exc:  # the engine sees it and stops the download
            self.error = exc
        finally:
            if fd is not None:
                os.close(fd)

    def save_record(self, durable=True):
        """Save the piece record now if pieces were written since the last save."""
        with self._save_lock:
            done = bytes(self._done)
            count = sum(done)
            if count == self._saved:
                return
            try:
                self.record.save(done, durable)
                self._saved = count
            except OSError as exc:
                log.warning("cannot save the piece record %s: %s", self.record.path, exc)

    def _maybe_save(self):
        # the disk thread fsyncs the record, so a slow disk never delays the supervisor
        if time.monotonic() - self._saved_at >= RECORD_EVERY:
            self.save_record()
            self._saved_at = time.monotonic()

    def _hash_from_disk(self, fd, index):
        pos, end = self.geometry.start(index), self.geometry.end(index)
        view = memoryview(self._buf)
        while pos < end:
            n = os.preadv(fd, [view[:min(len(view), end - pos)]], pos)
            if n <= 0:
                raise OSError(f"{self.path} is shorter than its verified pieces")
            self._whole.update(view[:n])
            pos += n
        self.hashed += 1
        self._advise(fd)

    def _advise(self, fd):
        # Ask the kernel to write the hashed prefix out now, while the network keeps going,
        # instead of leaving a whole file of dirty pages to the final fsync; it also keeps a
        # big download from flooding the page cache. Nothing reads those bytes again.
        upto = self.geometry.end(self.hashed - 1) if self.hashed else 0
        if upto - self._advised >= WRITEBACK_WINDOW or upto == self.geometry.size:
            try:
                os.posix_fadvise(fd, self._advised, upto - self._advised, os.POSIX_FADV_DONTNEED)
            except (AttributeError, OSError):
                pass
            self._advised = upto
