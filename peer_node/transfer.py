"""Moving whole files: where a download goes, the checks around the engine, and pushes to a peer.

download() checks the destination first, resumes from the partial and its piece record
(peer_node.pieces), runs the swarm engine (peer_node.swarm) over the live holders, checks the
whole file's sha256 and only then puts the file in place. push() uploads a shared file.
"""
import contextlib
import fcntl
import logging
import os
from dataclasses import asdict, dataclass, field

from peer_node.client import PeerClient
from peer_node.errors import AlreadyExists, ChecksumMismatch, Interrupted, InvalidRequest, NoHolders, NotFound, P2PError
from peer_node.folder import WORK_DIR, check_name, fsync_dir, place_atomically
from peer_node.hashing import is_sha256, sha256_file
from peer_node.pieces import PieceRecord, geometry_for, resume
from peer_node.swarm import Swarm
from peer_node.swarm_state import CancelToken

log = logging.getLogger(__name__)


@dataclass
class Holder:
    """A peer that holds the file."""

    peer_id: str
    address: str


@dataclass
class FileRecord:
    """What the directory says about one file (piece_size and pieces may be unknown: None)."""

    sha256: str
    size: int
    name: str
    holders: list = field(default_factory=list)
    piece_size: int = None
    pieces: list = None


@dataclass
class DownloadResult:
    """Where a download went and how it went."""

    path: str
    name: str
    size: int
    sha256: str
    created: bool = True
    replaced: bool = False
    verified: str = "pieces"  # "pieces", or "whole file" when the directory had no piece hashes
    resumed_bytes: int = 0  # verified bytes a previous run had left in the partial
    fetched: int = 0  # bytes received in this run, including any that were thrown away
    holders: dict = field(default_factory=dict)  # peer_id -> {state, received, verified, reason}
    banned: dict = field(default_factory=dict)  # peer_id -> why
    stalled: int = 0
    busy: int = 0
    refetched: dict = field(default_factory=lambda: {"failed_verification": 0, "stale_record": 0})
    sources: list = field(default_factory=list)  # holders whose pieces made it into the file
    failed: list = field(default_factory=list)  # holders that dropped out (banned, stalled, failed)

    def to_json(self):
        """The result as plain JSON data."""
        return asdict(self)

    def take(self, stats):
        """Copy what the engine counted (a SwarmStats)."""
        self.fetched, self.holders, self.banned = stats.fetched, stats.holders, stats.banned
        self.stalled, self.busy = stats.stalled, stats.busy
        self.refetched["failed_verification"] = stats.failed_verification
        self.sources, self.failed = stats.sources, stats.failed


def _holders(raw):
    return [Holder(h.get("peer_id", "?"), h["grpc_address"]) for h in raw or [] if h.get("grpc_address")]


def find_file(directory, ref):
    """The FileRecord for ref (a sha256, or an exact shared name) according to the directory."""
    if is_sha256(ref):
        rec = directory.file(ref)
        names = rec.get("names") or [rec.get("name") or ref]
        return FileRecord(ref, int(rec["size"]), names[0], _holders(rec.get("holders")),
                          rec.get("piece_size"), rec.get("pieces"))
    check_name(ref)
    matches = [r for r in directory.search(ref) if r.get("name") == ref]
    digests = sorted({r["sha256"] for r in matches})
    if not digests:
        raise NotFound(f"no live peer shares a file named {ref!r} (try `p2p search`)")
    if len(digests) > 1:
        raise InvalidRequest(f"{len(digests)} different files are named {ref!r}; "
                             f"ask for one by sha256: {', '.join(digests)}")
    rec = {}
    try:
        rec = directory.file(digests[0])
        holders = _holders(rec.get("holders")) or _holders(matches[0].get("holders"))
        size = int(rec.get("size", matches[0]["size"]))
    except NotFound:
        holders, size = _holders(matches[0].get("holders")), int(matches[0]["size"])
    return FileRecord(digests[0], size, ref, holders, rec.get("piece_size"), rec.get("pieces"))


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


def record_path(part):
    """The piece record that goes with a partial file."""
    return part[:-len(".part")] + ".pieces" if part.endswith(".part") else part + ".pieces"


def download(record, dest, on_progress=None, on_unreachable=None, on_corrupt=None, parallel=4,
             stall_timeout=10.0, force=False, cancel=None, give_up_after=None, ticket=None):
    """Fetch record into dest from its holders: verified pieces, resumable, placed atomically.

    A dest that already holds the file ends at once (created False); one with other content
    raises AlreadyExists before anything is fetched, unless force (then it is replaced once
    the download is verified). on_progress(SwarmProgress) is called about ten times a second;
    on_unreachable(holder, error) for a holder that fails or stalls; on_corrupt(holder, sha256)
    for one banned for bad data. cancel: a CancelToken; when it is cancelled, Interrupted is
    raised within about a second with the partial and its record kept for the next run.
    ticket: the download ticket every holder is shown (a string, or a function answering a current one).
    """
    token = cancel or CancelToken()
    try:
        existing = _check_destination(record, dest, force)
    except OSError as exc:
        raise P2PError(f"cannot read {dest}: {exc.strerror or exc}") from None
    if existing is not None:
        return existing
    if not record.holders and record.size:
        raise NoHolders(record.name, "no live holder right now; try again later")
    if callable(ticket) and record.holders:
        ticket()  # the first ticket now: a refusal is one error, before any holder is tried
    geometry, why = geometry_for(record.size, record.piece_size, record.pieces)
    if why:
        log.warning("%s: %s (an older peer shared it); fetching from one holder at a time and "
                    "verifying only the whole file", record.name, why)
    part = partial_path(dest, record.sha256)
    pieces = PieceRecord(record_path(part), record.sha256, geometry)
    with _only_download_of(part, record.name, dest):
        try:
            resumed = resume(part, pieces, geometry)
        except OSError as exc:
            raise P2PError(f"cannot read the partial download {part}: {exc.strerror or exc}") from None
        result = DownloadResult(dest, record.name, record.size, record.sha256,
                                verified="pieces" if geometry.verified else "whole file")
        result.resumed_bytes = sum(geometry.length(i) for i, d in enumerate(resumed.done) if d)
        result.refetched["stale_record"] = resumed.stale
        if resumed.pieces:
            log.info("resuming %s: %d of %d bytes already verified in %s", record.name,
                     result.resumed_bytes, record.size, part)
        swarm = Swarm(record.sha256, geometry, record.holders, part, resumed, pieces, parallel=parallel,
                      stall_timeout=stall_timeout, give_up_after=give_up_after, on_progress=on_progress,
                      on_unreachable=on_unreachable, on_corrupt=on_corrupt, cancel=token, ticket=ticket)
        try:
            outcome = swarm.run()
        except OSError as exc:
            raise P2PError(f"cannot write {part}: {exc.strerror or exc}; the verified pieces are kept") from None
        result.take(swarm.stats())
        _check_outcome(outcome, swarm, record, part, token, result)
        actual = swarm.whole_hexdigest()
        if actual != record.sha256:
            _discard(part, pieces)
            if not geometry.verified:
                _blame_single_source(record, result, on_corrupt)
            what = ("every piece matched the directory's piece hashes, so the piece hashes are wrong; "
                    "the partial was discarded" if geometry.verified else "the partial was discarded")
            raise ChecksumMismatch(dest, record.sha256, f"{actual} ({what})")
        try:
            _place(part, dest, record.sha256, force, result)
        except OSError as exc:
            raise P2PError(f"cannot put the verified file at {dest}: {exc.strerror or exc}; "
                           f"it is kept in {part}") from None
        pieces.remove()
    return result


@contextlib.contextmanager
def _only_download_of(part, name, dest):
    """Hold an exclusive lock on the partial: two gets of one file into one folder would trip
    over each other's resume and discard."""
    try:
        os.makedirs(os.path.dirname(part), exist_ok=True)
        fd = os.open(part, os.O_WRONLY | os.O_CREAT, 0o644)
    except OSError as exc:
        raise P2PError(f"cannot write the partial download {part}: {exc.strerror or exc}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise P2PError(f"another p2p get is already downloading {name} into "
                           f"{os.path.dirname(dest)} ({part})") from None
        yield
    finally:
        os.close(fd)  # releases the lock


def _check_outcome(outcome, swarm, record, part, token, result):
    """Raise the error for a run that did not complete."""
    kept = f"{_verified_bytes(swarm, swarm.geometry)} of {record.size} bytes kept in {part}"
    if outcome == "cancelled":
        raise Interrupted(record.name, f"{kept}; run the same command again to resume",
                          signum=token.signum, result=result)
    if outcome == "gave up":
        raise NoHolders(record.name, f"no holder sent anything for {swarm.give_up_after:g} s "
                        f"({swarm.outcome_detail()}); {kept}; run the same command again to resume")
    if outcome != "complete":
        tried = len(record.holders)
        raise NoHolders(record.name, f"{tried} holder(s) tried ({swarm.outcome_detail()}); {kept}; "
                        "run the same command again to resume" if tried else "no live holder; try again later")


def _verified_bytes(swarm, geometry):
    return sum(geometry.length(i) for i, d in enumerate(swarm.board.done) if d)


def _check_destination(record, dest, force):
    """None to go ahead; a result when dest already holds the file; AlreadyExists otherwise."""
    if not os.path.lexists(dest):
        return None
    if os.path.isdir(dest):
        raise AlreadyExists(record.name, f"{dest} is a directory; give --out another path")
    if (os.path.isfile(dest) and os.path.getsize(dest) == record.size
            and sha256_file(dest).hexdigest() == record.sha256):
        return DownloadResult(dest, record.name, record.size, record.sha256, created=False)
    if not force:
        raise AlreadyExists(record.name, f"{dest} already exists with other content; nothing was "
                            "downloaded (--force replaces it once the download is verified)")
    return None


def _place(part, dest, sha256, force, result):
    fd = os.open(part, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    if force and os.path.lexists(dest):
        os.replace(part, dest)  # --force: the verified file takes the old one's place atomically
        fsync_dir(os.path.dirname(dest))
        result.created, result.replaced = True, True
    else:
        result.created = place_atomically(part, dest, sha256)


def _discard(part, pieces):
    pieces.remove()
    try:
        os.unlink(part)
    except FileNotFoundError:
        pass


def _blame_single_source(record, result, on_corrupt):
    """Without piece hashes a bad file can be pinned on a holder only when it sent all of it."""
    if on_corrupt is None or result.resumed_bytes or len(result.sources) != 1:
        return
    for holder in record.holders:
        if holder.peer_id == result.sources[0]:
            log.warning("holder %s (%s) sent a file that does not match its sha256",
                        holder.peer_id, holder.address)
            on_corrupt(holder, record.sha256)


def push(folder, entry, to_address, name=None, chunk_size=1024 * 1024, rate_limiter=None, ticket=None):
    """Upload a shared file (a FileEntry of folder) to the peer at to_address with an upload ticket; return its RemoteFile."""
    path = folder.resolve(entry.name)
    with PeerClient(to_address, ticket=ticket) as peer:
        return peer.upload(path, name or entry.name, entry.size, entry.sha256, chunk_size, rate_limiter)
