"""The shared folder: safe names, the index with its hash cache, and atomic writes.

Everything private to the peer lives in the hidden work area `<folder>/.p2p/` (temporary
files, the hash cache); a partial download lives in the `.p2p/` beside its destination, so
work areas appear at any depth. Nothing under a `.p2p` component is ever listed, indexed,
served or written by name.
"""
import errno
import json
import logging
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass, field

from peer_node.errors import AlreadyExists, ChecksumMismatch, NotFound, SizeMismatch, UnsafeName
from peer_node.hashing import hash_file, sha256_file
from protos.rules import DEFAULT_PIECE_SIZE, WORK_DIR, PieceHasher, is_reserved_component, name_problem

log = logging.getLogger(__name__)

_CACHE_VERSION = 1


def check_name(name):
    """Return name if protos.rules finds it a safe relative path, else raise UnsafeName."""
    reason = name_problem(name)
    if reason is not None:
        raise UnsafeName(name, reason)
    return name


def is_inside(path, root):
    """True when the already-resolved path is root or below it."""
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def fsync_dir(path):
    """fsync a directory so a rename inside it survives a crash (best effort)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def place_atomically(tmp_path, dest, sha256):
    """Move the finished, fsynced tmp_path to dest without ever overwriting different content.

    Returns True when dest was created, False when an identical file was already there.
    Raises AlreadyExists when dest holds other bytes. tmp_path is gone afterwards either way.
    """
    try:
        # link() fails when dest exists, which rename() would silently replace
        os.link(tmp_path, dest)
    except FileExistsError:
        return _keep_existing(tmp_path, dest, sha256)
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
            raise
        # a filesystem without hard links: check, then rename (a tiny race we accept there)
        if os.path.lexists(dest):
            return _keep_existing(tmp_path, dest, sha256)
        os.rename(tmp_path, dest)
        fsync_dir(os.path.dirname(dest))
        return True
    os.unlink(tmp_path)
    fsync_dir(os.path.dirname(dest))
    return True


def _keep_existing(tmp_path, dest, sha256):
    os.unlink(tmp_path)
    if os.path.isfile(dest) and sha256_file(dest).hexdigest() == sha256:
        return False
    raise AlreadyExists(os.path.basename(dest), f"{dest} already exists with different content")


@dataclass
class FileEntry:
    """One shared file as the index knows it."""

    name: str
    size: int
    sha256: str
    mtime_ns: int = 0
    piece_size: int = DEFAULT_PIECE_SIZE
    pieces: list = field(default_factory=list)

    def to_wire(self):
        """The FileEntry JSON the directory expects."""
        return {
            "name": self.name,
            "size": self.size,
            "sha256": self.sha256,
            "piece_size": self.piece_size,
            "pieces": list(self.pieces),
        }


@dataclass
class Changes:
    """What a rescan found."""

    added: list = field(default_factory=list)
    changed: list = field(default_factory=list)
    removed: list = field(default_factory=list)

    def __bool__(self):
        return bool(self.added or self.changed or self.removed)


class SharedFolder:
    """One shared folder: its index (name -> FileEntry), hash cache and work area."""

    def __init__(self, root, piece_size=DEFAULT_PIECE_SIZE):
        os.makedirs(root, exist_ok=True)
        self.root = os.path.realpath(root)
        self.piece_size = piece_size
        self.work_dir = os.path.join(self.root, WORK_DIR)
        self.tmp_dir = os.path.join(self.work_dir, "tmp")
        self.partial_dir = os.path.join(self.work_dir, "partial")
        for d in (self.work_dir, self.tmp_dir, self.partial_dir):
            os.makedirs(d, exist_ok=True)
        self._cache_path = os.path.join(self.work_dir, "hashcache.json")
        self._lock = threading.Lock()
        self._index = {}
        self._clean_tmp()

    # -- names ---------------------------------------------------------------------------

    def resolve(self, name):
        """The real absolute path for a shared name; UnsafeName if it leaves the folder."""
        check_name(name)
        real = os.path.realpath(os.path.join(self.root, *name.split("/")))
        if not is_inside(real, self.root) or real == self.root:
            raise UnsafeName(name, "resolves outside the shared folder")
        if self._in_work_area(real):
            raise UnsafeName(name, f"resolves into a private work area {WORK_DIR}/")
        return real

    # -- index ---------------------------------------------------------------------------

    def entries(self, prefix=""):
        """Every indexed FileEntry (optionally only names starting with prefix), sorted by name."""
        with self._lock:
            found = [e for n, e in self._index.items() if n.startswith(prefix or "")]
        return sorted(found, key=lambda e: e.name)

    def by_name(self, name):
        """The FileEntry for name; UnsafeName if it leaves the folder, NotFound if not shared."""
        self.resolve(name)
        with self._lock:
            entry = self._index.get(name)
        if entry is None:
            raise NotFound(f"no shared file named {name!r}")
        return entry

    def by_sha256(self, sha256):
        """A FileEntry whose content has this sha256; NotFound if none."""
        with self._lock:
            for entry in self._index.values():
                if entry.sha256 == sha256:
                    return entry
        raise NotFound(f"no shared file with sha256 {sha256}")

    def free_bytes(self):
        """Free space on the folder's filesystem."""
        return shutil.disk_usage(self.root).free

    def scan(self):
        """Walk the folder, hash what is new or changed (using the cache), and return Changes."""
        cache = self._load_cache()
        with self._lock:
            known = dict(self._index)
        seen = {}
        cache_dirty = False
        for name, path, st in self._walk():
            old = known.get(name) or cache.get(name)
            if old and old.size == st.st_size and old.mtime_ns == st.st_mtime_ns:
                seen[name] = old
                continue
            try:
                digest = hash_file(path, self.piece_size)
                st_after = os.stat(path)
            except OSError as exc:
                log.warning("cannot read %s: %s", path, exc)
                continue
            if st_after.st_size != digest.size or st_after.st_mtime_ns != st.st_mtime_ns:
                log.debug("%s changed while being hashed; next scan picks it up", name)
                continue
            seen[name] = FileEntry(name, digest.size, digest.sha256, st.st_mtime_ns,
                                   digest.piece_size, digest.pieces)
            cache_dirty = True
        changes = Changes()
        with self._lock:
            current = self._index
            for name, entry in list(seen.items()):
                before = current.get(name)
                if before is None and name in known and not os.path.isfile(os.path.join(self.root, name)):
                    del seen[name]  # unindexed and moved away while we walked (a quarantine)
                elif before is None:
                    changes.added.append(entry)
                elif before.sha256 != entry.sha256 or before.size != entry.size:
                    changes.changed.append(entry)
            for name, entry in current.items():
                # an upload committed while we walked is on disk but was not seen: keep it
                if name not in seen and not os.path.isfile(os.path.join(self.root, name)):
                    changes.removed.append(entry)
                elif name not in seen:
                    seen[name] = entry
            self._index = seen
        if cache_dirty or changes.removed or len(cache) != len(seen):
            self._save_cache(seen)
        return changes

    def add_entry(self, entry):
        """Put a freshly written file into the index at once."""
        with self._lock:
            self._index[entry.name] = entry

    def remove_entry(self, name, sha256):
        """Drop name from the index if it is still indexed with sha256 (a quarantined copy)."""
        with self._lock:
            entry = self._index.get(name)
            if entry is not None and entry.sha256 == sha256:
                del self._index[name]

    def incoming(self, name, size, sha256):
        """An IncomingFile that writes name atomically; use it as a context manager."""
        return IncomingFile(self, name, size, sha256)

    # -- internals -----------------------------------------------------------------------

    def _walk(self):
        """Yield (name, path, stat) for every regular file below root, skipping the work area."""
        stack = [("", self.root)]
        while stack:
            prefix, directory = stack.pop()
            try:
                it = os.scandir(directory)
            except OSError as exc:
                log.warning("cannot list %s: %s", directory, exc)
                continue
            with it:
                for item in it:
                    name = prefix + item.name
                    if is_reserved_component(item.name):
                        continue  # a work area, at whatever depth: partials are never shared
                    try:
                        check_name(name)
                    except UnsafeName as exc:
                        log.debug("not sharing %s", exc)
                        continue
                    try:
                        if item.is_symlink():
                            real = os.path.realpath(item.path)
                            if not is_inside(real, self.root) or self._in_work_area(real):
                                log.debug("not sharing %s: symlink leaves the folder", name)
                                continue
                            if os.path.isdir(real):
                                continue  # never follow directory links: no loops, no duplicates
                        if item.is_dir(follow_symlinks=False):
                            stack.append((name + "/", item.path))
                        elif item.is_file():
                            yield name, item.path, item.stat()
                    except OSError as exc:
                        log.debug("skipping %s: %s", name, exc)

    def _in_work_area(self, real):
        """True when the resolved path real (inside root) lies in a work area at any depth."""
        rel = os.path.relpath(real, self.root)
        return any(is_reserved_component(part) for part in rel.split(os.sep))

    def _load_cache(self):
        try:
            with open(self._cache_path, encoding="utf-8") as f:
                raw = json.load(f)
            if raw.get("version") != _CACHE_VERSION or raw.get("piece_size") != self.piece_size:
                return {}
            return {n: FileEntry(n, e["size"], e["sha256"], e["mtime_ns"], self.piece_size, e["pieces"])
                    for n, e in raw["files"].items()}
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            log.warning("ignoring unreadable hash cache %s: %s", self._cache_path, exc)
            return {}

    def _save_cache(self, index):
        data = {
            "version": _CACHE_VERSION,
            "piece_size": self.piece_size,
            "files": {n: {"size": e.size, "sha256": e.sha256, "mtime_ns": e.mtime_ns,
                          "pieces": e.pieces} for n, e in index.items()},
        }
        fd, tmp = tempfile.mkstemp(dir=self.tmp_dir, prefix="cache-")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                # dumps, not dump: json.dump streams through the pure-Python encoder, 10x slower
                # (5 s of a 100,000-file scan)
                f.write(json.dumps(data))
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self._cache_path)  # our own cache: replacing it is the point
        except OSError as exc:
            log.warning("cannot write hash cache: %s", exc)
            try:
                os.unlink(tmp)
            except OSError:
                pass

    def _clean_tmp(self):
        # leftovers of uploads interrupted by a crash can never complete
        for item in os.scandir(self.tmp_dir):
            try:
                os.unlink(item.path)
            except OSError:
                pass


class IncomingFile:
    """A file being received: bytes go to a temp file in the work area, verified before rename."""

    def __init__(self, folder, name, size, sha256):
        self.folder, self.name, self.size, self.sha256 = folder, name, size, sha256
        self.dest = folder.resolve(name)
        self.received = 0
        self._hasher = PieceHasher(folder.piece_size)
        fd, self.tmp_path = tempfile.mkstemp(dir=folder.tmp_dir, prefix="upload-")
        os.fchmod(fd, 0o644)  # mkstemp's 0600 would make shared files private to this user
        self._file = os.fdopen(fd, "wb", buffering=0)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            self.abort()
        return False

    def write(self, data):
        """Append data; SizeMismatch as soon as more than the announced size arrives."""
        self.received += len(data)
        if self.received > self.size:
            raise SizeMismatch(self.name, self.size, self.received)
        self._hasher.update(data)
        self._file.write(data)

    def commit(self):
        """Verify size and sha256, fsync, place atomically, index; return the FileEntry."""
        if self.received != self.size:
            raise SizeMismatch(self.name, self.size, self.received)
        digest = self._hasher.finish()
        if digest.sha256 != self.sha256:
            raise ChecksumMismatch(self.name, self.sha256, digest.sha256)
        os.fsync(self._file.fileno())
        self._file.close()
        os.makedirs(os.path.dirname(self.dest), exist_ok=True)
        # re-check after creating parents: a parent could be a symlink planted meanwhile
        self.dest = self.folder.resolve(self.name)
        created = place_atomically(self.tmp_path, self.dest, self.sha256)
        st = os.stat(self.dest)
        entry = FileEntry(self.name, digest.size, digest.sha256, st.st_mtime_ns,
                          digest.piece_size, digest.pieces)
        self.folder.add_entry(entry)
        log.info("%s %s (%d bytes)", "stored" if created else "already had", self.name, self.size)
        return entry

    def abort(self):
        """Drop the temporary file; nothing is left behind."""
        if not self._file.closed:
            self._file.close()
        try:
            os.unlink(self.tmp_path)
        except FileNotFoundError:
            pass
