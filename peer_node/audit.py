"""Audits of other holders' claims: fetch a byte range of a file from the audited peer and
compare it with our own copy, then tell the directory (POST /api/v1/audits/{audit_id}).

The directory hands audits to a proven holder in its heartbeat answer (`audit: [...]`): at
most one piece each, so an audit costs the auditor at most a piece of traffic. They run one
at a time in a background thread, every call under a deadline. Our own copy of the range is
checked against its piece hashes first: a rotted auditor must not refute a good target (its
copy goes to the verifier instead). Only a target that answered with other bytes, a short or
malformed stream, or "no such file / range" fails the audit; a busy, unreachable or
ticket-refusing target is inconclusive and not answered (the directory audits it again
later), and an unreachable one is reported as such so the directory probes it.
"""
import collections
import hashlib
import logging
import os
import queue
import threading
from dataclasses import dataclass

from peer_node.client import PeerClient
from peer_node.errors import (Busy, ChecksumMismatch, DirectoryError, InvalidRequest, NotFound, OutOfRange,
                              P2PError, PeerUnavailable, RemoteError)
from protos.rules import is_peer_id, is_sha256

log = logging.getLogger(__name__)

MAX_PENDING = 16  # audits waiting; more in one go are dropped (the directory hands them out again)
REMEMBER = 256  # audit ids already taken, so a repeated order is not run twice
# The deadline of the Download call: a base plus the range at a slow but honest rate, so a
# holder with a tight upload limit is not failed for being slow (it would be inconclusive).
DEADLINE_BASE = 10.0
DEADLINE_RATE = 128 * 1024
MAX_DETAIL = 300


@dataclass(frozen=True)
class AuditOrder:
    """One audit from a heartbeat answer."""

    audit_id: object
    sha256: str
    target_peer_id: str
    target_address: str
    offset: int
    length: int
    ticket: str = None

    @classmethod
    def parse(cls, raw):
        """The AuditOrder of one `audit` item; ValueError saying what is wrong with it."""
        if not isinstance(raw, dict):
            raise ValueError("not an object")
        missing = [k for k in ("audit_id", "sha256", "target_peer_id", "target_address", "offset", "length")
                   if raw.get(k) is None]
        if missing:
            raise ValueError(f"missing {', '.join(missing)}")
        if not is_sha256(raw["sha256"]) or not is_peer_id(raw["target_peer_id"]):
            raise ValueError("bad sha256 or target_peer_id")
        offset, length = raw["offset"], raw["length"]
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (offset, length)) \
                or offset < 0 or length <= 0:
            raise ValueError(f"bad range {offset!r}+{length!r}")
        if not isinstance(raw["target_address"], str) or not raw["target_address"]:
            raise ValueError("bad target_address")
        return cls(raw["audit_id"], raw["sha256"], raw["target_peer_id"], raw["target_address"],
                   offset, length, raw.get("ticket") or None)


@dataclass(frozen=True)
class Verdict:
    """ok True (same bytes), False (the target failed), None (inconclusive: nothing is reported)."""

    ok: object
    detail: str
    unreachable: bool = False  # the target did not answer: worth an unreachable report
    own_copy_bad: bool = False  # our own range failed its piece hashes


def own_range(folder, entry, offset, length):
    """Our bytes [offset, offset+length) of entry, after checking the pieces they lie in.

    Returns (bytes, None, False), or (None, why, rotted) when our copy cannot vouch for the
    range; rotted is True when the reason is our own bytes failing their piece hash.
    """
    if offset + length > entry.size:
        return None, f"the range {offset}+{length} is past the end of our copy ({entry.size} bytes)", False
    ps = entry.piece_size
    first, last = offset // ps, (offset + length - 1) // ps
    if length > ps or not entry.pieces or last >= len(entry.pieces):
        return None, f"the range {offset}+{length} is more than a piece ({ps} bytes) or has no piece hash", False
    path = folder.resolve(entry.name)
    fd = os.open(path, os.O_RDONLY)
    try:
        st = os.fstat(fd)
        if st.st_size != entry.size or (entry.mtime_ns and st.st_mtime_ns != entry.mtime_ns):
            return None, "our copy changed since it was indexed", False
        start = first * ps
        data = os.pread(fd, min(entry.size, (last + 1) * ps) - start, start)
    finally:
        os.close(fd)
    for i in range(first, last + 1):
        piece = data[(i - first) * ps:(i - first + 1) * ps]
        if hashlib.sha256(piece).hexdigest() != entry.pieces[i]:
            return None, f"piece {i} of our own copy fails its hash", True
    return data[offset - start:offset - start + length], None, False


def audit(folder, order, connect=PeerClient):
    """Run one audit now; returns its Verdict. NotFound when we do not share the file ourselves."""
    entry = folder.by_sha256(order.sha256)
    try:
        mine, why, rotted = own_range(folder, entry, order.offset, order.length)
    except OSError as exc:
        return Verdict(None, f"cannot read our copy: {exc.strerror or exc}")
    if mine is None:
        return Verdict(None, why, own_copy_bad=rotted)
    timeout = DEADLINE_BASE + order.length / DEADLINE_RATE
    theirs = bytearray()
    expected, end = order.offset, order.offset + order.length
    with connect(order.target_address, ticket=order.ticket) as peer:
        stream = peer.open_download(sha256=order.sha256, offset=order.offset, length=order.length)
        # the deadline of the whole call: a target that trickles or freezes is cut off
        deadline = threading.Timer(timeout, stream.cancel)
        deadline.daemon = True
        deadline.start()
        try:
            for pos, data in stream:
                if not len(data):
                    continue  # an empty chunk says nothing (the swarm skips them too)
                if pos != expected:
                    return Verdict(False, f"sent bytes at offset {pos} where {expected} was due")
                if pos + len(data) > end:
                    return Verdict(False, f"sent more bytes than asked (up to byte {pos + len(data)}, asked up to {end})")
                theirs += data
                expected += len(data)
        except (NotFound, OutOfRange, InvalidRequest) as exc:
            return Verdict(False, f"refused a range of a file it lists: {_detail(exc)}")
        except ChecksumMismatch as exc:
            return Verdict(False, f"reported data loss: {_detail(exc)}")
        except Busy as exc:
            return Verdict(None, f"busy: {_detail(exc)}")
        except PeerUnavailable as exc:
            if stream.cancelled:
                return Verdict(None, f"sent {len(theirs)} of {order.length} bytes within the {timeout:.0f} s "
                                     "deadline", unreachable=True)
            return Verdict(None, f"did not answer: {exc.detail or exc}", unreachable=True)
        except RemoteError as exc:
            if exc.code == "PROTOCOL":
                return Verdict(False, f"broke the protocol: {exc.detail}")
            return Verdict(None, f"answered {exc.code}: {exc.detail}")
        except P2PError as exc:  # a refused ticket (PERMISSION_DENIED) and the like: not the bytes' fault
            return Verdict(None, _detail(exc))
        finally:
            deadline.cancel()
    if len(theirs) < order.length:
        return Verdict(False, f"sent {len(theirs)} of {order.length} bytes")
    if theirs != mine:
        first = next(i for i in range(order.length) if theirs[i] != mine[i])
        return Verdict(False, f"bytes differ from ours from byte {order.offset + first} "
                              f"(range {order.offset}+{order.length})")
    return Verdict(True, f"{order.length} bytes at offset {order.offset} match")


def _detail(exc):
    return str(exc)[:MAX_DETAIL]


class Auditor:
    """Runs audit orders one at a time in a background thread and reports their verdicts."""

    def __init__(self, folder, directory, peer_id, on_own_copy_bad, connect=PeerClient):
        self.folder, self.directory, self.peer_id = folder, directory, peer_id
        self.on_own_copy_bad = on_own_copy_bad  # (sha256): our copy failed its own hashes
        self.connect = connect
        self._orders = queue.Queue(MAX_PENDING)
        self._seen = collections.deque(maxlen=REMEMBER)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = None
        self._current = None  # the PeerClient of the audit in flight, closed by stop()

    def start(self):
        """Start the worker thread."""
        self._thread = threading.Thread(target=self._run, name="audit", daemon=True)
        self._thread.start()

    def stop(self, timeout=2.0):
        """Stop now: the audit in flight is cancelled (and not answered)."""
        self._stop.set()
        current = self._current
        if current is not None:
            current.close()
        try:
            self._orders.put_nowait(None)
        except queue.Full:
            pass
        if self._thread is not None:
            self._thread.join(timeout)

    def order(self, items):
        """Queue the audits of a heartbeat answer; malformed, repeated and excess ones are skipped."""
        for raw in items or ():
            try:
                order = AuditOrder.parse(raw)
            except ValueError as exc:
                log.warning("ignoring an audit order from the directory: %s", exc)
                continue
            with self._lock:
                if order.audit_id in self._seen:
                    continue
                self._seen.append(order.audit_id)
            try:
                self._orders.put_nowait(order)
            except queue.Full:
                log.info("%d audits are waiting already; audit %s is left for later", MAX_PENDING, order.audit_id)

    def _run(self):
        while not self._stop.is_set():
            order = self._orders.get()
            if order is None:
                return
            try:
                self.run(order)
            except Exception:  # one audit must not end the worker
                log.exception("audit %s crashed", order.audit_id)

    def run(self, order):
        """Audit one order and report its verdict; returns the Verdict (None when skipped)."""
        if order.target_peer_id == self.peer_id:
            log.info("audit %s names this peer as its target; skipped", order.audit_id)
            return None
        try:
            verdict = audit(self.folder, order, self._connect)
        except NotFound:
            log.info("audit %s of %s: we do not share that file (any more); skipped", order.audit_id, order.sha256[:12])
            return None
        who = f"{order.target_peer_id} ({order.target_address})"
        if verdict.own_copy_bad:
            log.warning("audit %s of %s skipped: %s; verifying our copy", order.audit_id, who, verdict.detail)
            self.on_own_copy_bad(order.sha256)
            return verdict
        if self._stop.is_set():
            return None  # cancelled by stop(): whatever it saw is not a verdict
        if verdict.ok is None:
            log.info("audit %s of %s for %s inconclusive: %s", order.audit_id, who, order.sha256[:12], verdict.detail)
            if verdict.unreachable:
                self._report_unreachable(order)
            return verdict
        if verdict.ok:
            log.info("audit %s: %s holds %s (%s)", order.audit_id, who, order.sha256[:12], verdict.detail)
        else:
            log.warning("audit %s: %s failed for %s: %s", order.audit_id, who, order.sha256[:12], verdict.detail)
        try:
            self.directory.audit_result(order.audit_id, verdict.ok, verdict.detail[:MAX_DETAIL])
        except DirectoryError as exc:
            if exc.status in (404, 409):
                log.info("the directory no longer wants audit %s: %s", order.audit_id, exc.detail or exc.title)
            else:
                log.warning("reporting audit %s failed: %s", order.audit_id, exc)
        except P2PError as exc:
            log.warning("reporting audit %s failed: %s", order.audit_id, exc)
        return verdict

    def _connect(self, address, **kwargs):
        self._current = self.connect(address, **kwargs)
        if self._stop.is_set():
            self._current.close()
        return self._current

    def _report_unreachable(self, order):
        try:
            status = self.directory.report_unreachable(order.target_peer_id)
            log.info("reported %s unreachable; directory says %s", order.target_peer_id, status)
        except P2PError as exc:
            log.info("could not report %s unreachable: %s", order.target_peer_id, exc)
