"""The only module that speaks SQL: peers, their indexed files and pending copies (SQLAlchemy Core).

Runs unchanged on SQLite (WAL, foreign keys, busy timeout, FTS5 trigram index on names) and on
PostgreSQL (pg_trgm GIN index). Every method takes an optional ``conn``: without it the method
runs in its own short transaction; with it, inside the caller's (see ``Store.write``).
Liveness is decided elsewhere: queries take ``live_since`` (a peer is live while
``last_seen >= live_since``) and ``now`` as plain numbers.
"""
from __future__ import annotations

import base64
import contextlib
import functools
import json
import logging
import time
from dataclasses import dataclass
from typing import Iterable, Iterator

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    bindparam,
    case,
    create_engine,
    delete,
    event,
    exists,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from .writelock import WriteLock

log = logging.getLogger(__name__)

metadata = MetaData()

# SQLite only aliases the rowid for a column declared exactly INTEGER PRIMARY KEY.
_ID = BigInteger().with_variant(Integer(), "sqlite")

peers = Table(
    "p2p_peers",
    metadata,
    Column("peer_id", String(64), primary_key=True),
    Column("secret_hash", String(255), nullable=False),
    Column("token_hash", String(64), nullable=True),
    Column("grpc_address", String(300), nullable=False),
    Column("last_seen", Float, nullable=False, default=0.0),
    Column("accept_uploads", Boolean, nullable=False, default=True),
    Column("free_bytes", BigInteger, nullable=True),
    Column("registered_at", Float, nullable=False, default=0.0),
    Column("planned_at", Float, nullable=False, default=0.0),
    Index("p2p_peers_token", "token_hash", unique=True),
    Index("p2p_peers_last_seen", "last_seen"),
)

files = Table(
    "p2p_files",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("peer_id", String(64), ForeignKey("p2p_peers.peer_id", ondelete="CASCADE"), nullable=False),
    Column("name", Text, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("piece_size", BigInteger, nullable=True),
    Column("pieces", Text, nullable=True),  # JSON list of piece digests
    UniqueConstraint("peer_id", "name", name="p2p_files_peer_name"),
    Index("p2p_files_sha256", "sha256", "peer_id"),
    Index("p2p_files_peer_sha256", "peer_id", "sha256"),
)

pending = Table(
    "p2p_pending_copies",
    metadata,
    Column("sha256", String(64), nullable=False),
    Column("to_peer_id", String(64), ForeignKey("p2p_peers.peer_id", ondelete="CASCADE"), nullable=False),
    Column("from_peer_id", String(64), ForeignKey("p2p_peers.peer_id", ondelete="CASCADE"), nullable=False),
    Column("name", Text, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("deadline", Float, nullable=False),
    Column("handed_at", Float, nullable=True),
    # The constraint is what stops two directory processes from planning the same copy twice.
    PrimaryKeyConstraint("sha256", "to_peer_id", name="p2p_pending_copies_pk"),
    Index("p2p_pending_from", "from_peer_id", "handed_at"),
    Index("p2p_pending_to", "to_peer_id"),
    Index("p2p_pending_deadline", "deadline"),
)

withdrawn = Table(
    "p2p_withdrawn",
    metadata,
    # A sha256 its holder withdrew from replication: no new copies are planned for it.
    Column("sha256", String(64), primary_key=True),
    Column("peer_id", String(64), nullable=False),
    Column("at", Float, nullable=False),
)

dropped = Table(
    "p2p_dropped",
    metadata,
    # A sha256 this peer removed from its index while running: it is never chosen as a backup
    # for it, or the network would put back a file its user has just deleted.
    Column("sha256", String(64), nullable=False),
    Column("peer_id", String(64), ForeignKey("p2p_peers.peer_id", ondelete="CASCADE"), nullable=False),
    Column("at", Float, nullable=False),
    PrimaryKeyConstraint("sha256", "peer_id", name="p2p_dropped_pk"),
)

_SQLITE_DDL = [
    "CREATE VIRTUAL TABLE IF NOT EXISTS p2p_files_fts USING fts5("
    "name, content='p2p_files', content_rowid='id', tokenize='trigram')",
    "CREATE TRIGGER IF NOT EXISTS p2p_files_ai AFTER INSERT ON p2p_files BEGIN "
    "INSERT INTO p2p_files_fts(rowid, name) VALUES (new.id, new.name); END",
    "CREATE TRIGGER IF NOT EXISTS p2p_files_ad AFTER DELETE ON p2p_files BEGIN "
    "INSERT INTO p2p_files_fts(p2p_files_fts, rowid, name) VALUES ('delete', old.id, old.name); END",
    "CREATE TRIGGER IF NOT EXISTS p2p_files_au AFTER UPDATE OF name ON p2p_files BEGIN "
    "INSERT INTO p2p_files_fts(p2p_files_fts, rowid, name) VALUES ('delete', old.id, old.name); "
    "INSERT INTO p2p_files_fts(rowid, name) VALUES (new.id, new.name); END",
]
_SQLITE_TRIGGERS = ("p2p_files_ai", "p2p_files_ad", "p2p_files_au")

_POSTGRES_DDL = [
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    "CREATE INDEX IF NOT EXISTS p2p_files_name_trgm ON p2p_files USING gin (name gin_trgm_ops)",
    # 1-2 character queries are prefix searches on lower(name).
    "CREATE INDEX IF NOT EXISTS p2p_files_name_prefix ON p2p_files (lower(name) text_pattern_ops)",
]
_PG_SCHEMA_LOCK = 7_202_611  # arbitrary advisory lock id: serialises schema creation across workers


class CursorError(ValueError):
    """A search cursor that this store did not issue."""


@dataclass(frozen=True)
class PeerSession:
    """What a successful heartbeat learns about the peer in one round trip."""

    peer_id: str
    planned_at: float
    has_handouts: bool = False  # copies planned for this peer to push wait to be handed out


def _transactional(write: bool, single: bool = False):
    """Run the method in its own transaction unless the caller passed conn.

    single: the method runs one statement, which is atomic and consistent on its own
    (see Store.read_one and Store.write_one).
    """
    opener = {(True, False): "write", (True, True): "write_one",
              (False, False): "read", (False, True): "read_one"}[(write, single)]

    def _wrap(method):
        @functools.wraps(method)
        def _run(self, *args, conn: Connection | None = None, **kwargs):
            if conn is not None:
                return method(self, conn, *args, **kwargs)
            with getattr(self, opener)() as own:
                return method(self, own, *args, **kwargs)

        return _run

    return _wrap


def encode_cursor(after_id: int) -> str:
    """An opaque page cursor for the next page after file row after_id."""
    return base64.urlsafe_b64encode(json.dumps({"a": after_id}).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """The row id a cursor from encode_cursor points after; CursorError if it is not ours."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))["a"]
    except (ValueError, KeyError, TypeError, UnicodeEncodeError):
        raise CursorError("not a cursor issued by this directory") from None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise CursorError("not a cursor issued by this directory")
    return value


def _fts_match(query: str) -> tuple[str, int]:
    """The FTS5 MATCH text for a substring query of 3+ characters, and 1 if it is exact.

    A quoted phrase is an exact case-insensitive substring match, but FTS5 checks it by walking
    the posting and position lists of every one of its trigrams: 12 of them for "midnight
    train", most of them frequent. For an ASCII query every third trigram (and the last) is
    enough to find the candidates, without positions; the search then keeps the names that
    contain the query (SQLite's lower() folds ASCII exactly as the index does). Other queries
    keep the phrase, whose Unicode case folding lower() could not repeat.
    """
    if not query.isascii():
        return '"' + query.replace('"', '""') + '"', 1
    folded = query.lower()
    starts = list(range(0, len(folded) - 2, 3))
    if starts[-1] != len(folded) - 3:
        starts.append(len(folded) - 3)
    terms = dict.fromkeys(folded[i:i + 3] for i in starts)
    return " AND ".join('"' + term.replace('"', '""') + '"' for term in terms), 0


def _like_escape(text_: str) -> str:
    return text_.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _entry_row(peer_id: str, entry: dict) -> dict:
    pieces = entry.get("pieces")
    return {
        "peer_id": peer_id,
        "name": entry["name"],
        "sha256": entry["sha256"],
        "size": entry["size"],
        "piece_size": entry.get("piece_size"),
        "pieces": json.dumps(pieces) if pieces is not None else None,
    }


class Store:
    """The directory's persistent state behind one SQLAlchemy engine."""

    def __init__(self, url: str, *, pool_size: int = 10):
        """Open (lazily) the database at url; SQLite gets WAL, foreign keys and a busy timeout."""
        self.url = url
        # Keep a connection per server thread (gunicorn runs 8): an overflow connection is
        # closed after each use, and a new one pays the connect, the pragmas and a cold cache.
        kwargs: dict = {"pool_size": pool_size, "max_overflow": pool_size}
        if url.startswith("sqlite"):
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
            if ":memory:" in url or url.rstrip("/") in ("sqlite:", "sqlite+pysqlite:"):
                kwargs = {"connect_args": kwargs["connect_args"]}  # one connection per thread: no pool sizes
        else:
            kwargs["pool_pre_ping"] = True
        self.engine: Engine = create_engine(url, **kwargs)
        self.dialect = self.engine.dialect.name
        self._write_lock: contextlib.AbstractContextManager = contextlib.nullcontext()
        if self.dialect == "sqlite":
            _configure_sqlite(self.engine)
            database = self.engine.url.database
            in_memory = not database or database == ":memory:" or database.startswith("file::memory:")
            self._write_lock = WriteLock(None if in_memory else database + "-writelock")
        elif self.dialect == "postgresql":
            _configure_postgresql(self.engine)
        else:
            raise ValueError(f"unsupported database {self.dialect!r}: use sqlite or postgresql")

    # -- transactions -------------------------------------------------------------------

    @contextlib.contextmanager
    def write(self) -> Iterator[Connection]:
        """A read-write transaction (SQLite: queued on the write lock, then BEGIN IMMEDIATE)."""
        with self.engine.connect() as conn:
            conn.execution_options(p2p_begin="IMMEDIATE")
            with self._write_lock, conn.begin():
                yield conn

    @contextlib.contextmanager
    def write_one(self) -> Iterator[Connection]:
        """A connection for one writing statement, atomic on its own (SQLite: no BEGIN/COMMIT)."""
        with self.engine.connect() as conn:
            # SQLite holds its write lock only while the statement runs, not across the
            # Python work and GIL switches between BEGIN and COMMIT.
            conn.execution_options(p2p_begin="")
            with self._write_lock, conn.begin():
                yield conn

    @contextlib.contextmanager
    def read(self) -> Iterator[Connection]:
        """A read-only transaction."""
        with self.engine.connect() as conn:
            with conn.begin():
                yield conn

    @contextlib.contextmanager
    def read_one(self) -> Iterator[Connection]:
        """A connection for one read-only statement: on SQLite no BEGIN/COMMIT round trips."""
        with self.engine.connect() as conn:
            # One statement sees one snapshot anyway; an explicit transaction would only add
            # two more statements to the hottest read paths.
            conn.execution_options(p2p_begin="")
            with conn.begin():
                yield conn

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()
        if isinstance(self._write_lock, WriteLock):
            self._write_lock.close()

    # -- schema ---------------------------------------------------------------------------

    def create_schema(self) -> None:
        """Create tables and name-search indexes if missing (safe to run concurrently)."""
        with self.write() as conn:
            if self.dialect == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_SCHEMA_LOCK})
            metadata.create_all(conn, checkfirst=True)
            for ddl in _SQLITE_DDL if self.dialect == "sqlite" else _POSTGRES_DDL:
                conn.exec_driver_sql(ddl)

    def drop_schema(self) -> None:
        """Drop every table of the directory (tests and benchmarks)."""
        with self.write() as conn:
            if self.dialect == "sqlite":
                conn.exec_driver_sql("DROP TABLE IF EXISTS p2p_files_fts")
            metadata.drop_all(conn, checkfirst=True)

    @_transactional(write=True)
    def truncate(self, conn: Connection) -> None:
        """Delete every row, keeping the schema (tests and benchmarks)."""
        for table in (dropped, withdrawn, pending, files, peers):
            conn.execute(delete(table))
        if self.dialect == "sqlite":
            conn.exec_driver_sql("INSERT INTO p2p_files_fts(p2p_files_fts) VALUES ('delete-all')")

    @_transactional(write=False)
    def ping(self, conn: Connection) -> bool:
        """True when the database answers."""
        return conn.execute(select(1)).scalar() == 1

    # -- peers and sessions -------------------------------------------------------------

    @_transactional(write=False)
    def secret_hash(self, conn: Connection, peer_id: str) -> str | None:
        """The stored secret hash of peer_id, or None if it never registered."""
        return conn.execute(select(peers.c.secret_hash).where(peers.c.peer_id == peer_id)).scalar()

    @_transactional(write=True)
    def register_peer(self, conn: Connection, peer_id: str, secret_hash: str, now: float) -> bool:
        """Insert a new peer; False (and nothing changes) if peer_id is already taken."""
        stmt = self._insert(peers).values(
            peer_id=peer_id, secret_hash=secret_hash, grpc_address="", last_seen=0.0, registered_at=now
        )
        # RETURNING, not rowcount: psycopg reports no rowcount for INSERT ... ON CONFLICT.
        stmt = stmt.on_conflict_do_nothing(index_elements=["peer_id"]).returning(peers.c.peer_id)
        return conn.execute(stmt).first() is not None

    @_transactional(write=True)
    def start_session(
        self,
        conn: Connection,
        peer_id: str,
        token_hash: str,
        grpc_address: str,
        now: float,
        accept_uploads: bool = True,
        free_bytes: int | None = None,
        files_: list[dict] | None = None,
    ) -> None:
        """Make peer_id live with a new token (the old one dies); replace its index if files_ given.

        Copies it was to send or receive are cancelled: a new session is a new process, so
        any transfer of the old one is gone, and the copy may be planned again at once.
        """
        conn.execute(
            update(peers)
            .where(peers.c.peer_id == peer_id)
            .values(
                token_hash=token_hash,
                grpc_address=grpc_address,
                last_seen=now,
                accept_uploads=accept_uploads,
                free_bytes=free_bytes,
                planned_at=0.0,
            )
        )
        conn.execute(
            delete(pending).where((pending.c.from_peer_id == peer_id) | (pending.c.to_peer_id == peer_id))
        )
        if files_ is not None:
            self.replace_files(peer_id, files_, conn=conn)

    @_transactional(write=False, single=True)
    def authenticate(self, conn: Connection, token_hash: str, live_since: float) -> str | None:
        """The live peer owning this token hash, or None."""
        return conn.execute(_AUTHENTICATE, {"th": token_hash, "ls": live_since}).scalar()

    @_transactional(write=True, single=True)
    def renew_lease(
        self,
        conn: Connection,
        token_hash: str,
        live_since: float,
        now: float,
        free_bytes: int | None = None,
        accept_uploads: bool | None = None,
        set_free_bytes: bool = False,
    ) -> PeerSession | None:
        """Heartbeat: one UPDATE that renews a live token's lease and tells whether copies wait
        to be handed out; None if the token is dead."""
        params = {"th": token_hash, "ls": live_since, "now": now, "free": free_bytes, "acc": accept_uploads}
        row = conn.execute(_renew_statement(set_free_bytes, accept_uploads is not None), params).first()
        return PeerSession(row.peer_id, row.planned_at, bool(row.has_handouts)) if row else None

    @_transactional(write=False, single=True)
    def lease_session(self, conn: Connection, token_hash: str, live_since: float, now: float) -> PeerSession | None:
        """The session of a live token, as renew_lease answers it, without writing; None if dead."""
        row = conn.execute(_LEASE_SESSION, {"th": token_hash, "ls": live_since, "now": now}).first()
        return PeerSession(row.peer_id, row.planned_at, bool(row.has_handouts)) if row else None

    @_transactional(write=True)
    def renew_leases(self, conn: Connection, renewals: list[dict]) -> None:
        """Write many heartbeats in one transaction: {pid, th, now, free, set_free, acc} each.

        A renewal applies only while the peer still has that token (a logout, a death or a new
        login in between wins) and never moves last_seen back.
        """
        if renewals:
            conn.execute(_RENEW_BATCHED, renewals)

    @_transactional(write=True)
    def mark_planned(self, conn: Connection, peer_id: str, now: float) -> None:
        """Remember when this holder's files were last checked for replication."""
        conn.execute(update(peers).where(peers.c.peer_id == peer_id).values(planned_at=now))

    @_transactional(write=True)
    def end_session(self, conn: Connection, peer_id: str, dead_at: float) -> None:
        """Log a peer out or mark it dead: its token dies, last_seen moves to dead_at,
        and the copies it was to send or receive are cancelled."""
        conn.execute(update(peers).where(peers.c.peer_id == peer_id).values(token_hash=None, last_seen=dead_at))
        conn.execute(
            delete(pending).where((pending.c.from_peer_id == peer_id) | (pending.c.to_peer_id == peer_id))
        )

    @_transactional(write=False)
    def peer(self, conn: Connection, peer_id: str) -> dict | None:
        """One peer's public row (peer_id, grpc_address, last_seen, accept_uploads, free_bytes)."""
        row = conn.execute(
            select(
                peers.c.peer_id, peers.c.grpc_address, peers.c.last_seen, peers.c.accept_uploads, peers.c.free_bytes
            ).where(peers.c.peer_id == peer_id)
        ).first()
        return dict(row._mapping) if row else None

    @_transactional(write=False)
    def live_peers(self, conn: Connection, live_since: float) -> list[dict]:
        """Every live peer with the number of files it indexed, ordered by peer_id."""
        # Correlated count: only live peers' files are counted, each through the peer_id index.
        n_files = select(func.count()).select_from(files).where(files.c.peer_id == peers.c.peer_id)
        rows = conn.execute(
            select(
                peers.c.peer_id,
                peers.c.grpc_address,
                peers.c.last_seen,
                peers.c.accept_uploads,
                peers.c.free_bytes,
                n_files.scalar_subquery().label("files"),
            )
            .where(peers.c.last_seen >= live_since)
            .order_by(peers.c.peer_id)
        )
        return [dict(r._mapping) for r in rows]

    # -- the index ----------------------------------------------------------------------

    @_transactional(write=True)
    def replace_files(self, conn: Connection, peer_id: str, entries: list[dict], now: float | None = None) -> int:
        """Replace peer_id's whole index with entries; completes copies it was waiting for.

        With now (a running peer's index update, not a login), every sha256 the new index
        leaves out is recorded as dropped by peer_id, so no copy of it is planned back to it.
        """
        if now is not None:
            old = set(conn.execute(select(files.c.sha256).where(files.c.peer_id == peer_id).distinct()).scalars())
            self._record_dropped(conn, peer_id, old - {e["sha256"] for e in entries}, now)
        conn.execute(delete(files).where(files.c.peer_id == peer_id))
        if entries:
            conn.execute(insert(files), [_entry_row(peer_id, e) for e in entries])
        self._complete_copies(conn, peer_id)
        return len(entries)

    @_transactional(write=True)
    def upsert_files(self, conn: Connection, peer_id: str, entries: list[dict]) -> int:
        """Add or update (by name) entries in peer_id's index; completes copies it was waiting for."""
        if entries:
            stmt = self._insert(files)
            stmt = stmt.on_conflict_do_update(
                index_elements=["peer_id", "name"],
                set_={c: stmt.excluded[c] for c in ("sha256", "size", "piece_size", "pieces")},
            )
            conn.execute(stmt, [_entry_row(peer_id, e) for e in entries])
        self._complete_copies(conn, peer_id)
        return len(entries)

    @_transactional(write=True)
    def delete_file(self, conn: Connection, peer_id: str, sha256: str, now: float = 0.0,
                    withdraw: bool = False) -> int:
        """Remove every name under which peer_id indexed sha256 and cancel its copies of it.

        With withdraw, also cancel every pending copy of sha256 and record the withdrawal,
        so no new copy is planned (other peers' entries stay: they are their own records).
        Returns the number of entries removed; 0 means nothing happened at all.
        """
        removed = conn.execute(delete(files).where(files.c.peer_id == peer_id, files.c.sha256 == sha256)).rowcount
        if not removed:
            return 0
        self._record_dropped(conn, peer_id, {sha256}, now)
        cancel = pending.c.sha256 == sha256
        if not withdraw:
            cancel = cancel & ((pending.c.from_peer_id == peer_id) | (pending.c.to_peer_id == peer_id))
        conn.execute(delete(pending).where(cancel))
        if withdraw:
            conn.execute(self._insert(withdrawn).values(sha256=sha256, peer_id=peer_id, at=now)
                         .on_conflict_do_nothing(index_elements=["sha256"]))
        return removed

    @_transactional(write=False)
    def is_withdrawn(self, conn: Connection, sha256: str) -> bool:
        """True if sha256 was withdrawn from replication."""
        return conn.execute(select(withdrawn.c.sha256).where(withdrawn.c.sha256 == sha256)).first() is not None

    def _record_dropped(self, conn: Connection, peer_id: str, sha256s: set, now: float) -> None:
        if not sha256s:
            return
        stmt = self._insert(dropped).on_conflict_do_nothing(index_elements=["sha256", "peer_id"])
        rows = [{"sha256": d, "peer_id": peer_id, "at": now} for d in sorted(sha256s)]
        conn.execute(stmt, rows)
        # It cannot send what it no longer has: another holder may be planned at once.
        conn.execute(delete(pending).where(pending.c.from_peer_id == peer_id,
                                           exists().where(dropped.c.peer_id == peer_id,
                                                          dropped.c.sha256 == pending.c.sha256)))

    def _complete_copies(self, conn: Connection, peer_id: str) -> None:
        # Indexing a sha256 it dropped earlier means it shares it again (e.g. fetched it itself).
        conn.execute(
            delete(dropped).where(
                dropped.c.peer_id == peer_id,
                exists().where(files.c.peer_id == peer_id, files.c.sha256 == dropped.c.sha256),
            )
        )
        # Indexing a sha256 it withdrew earlier lifts the withdrawal: it shares it again.
        conn.execute(
            delete(withdrawn).where(
                withdrawn.c.peer_id == peer_id,
                exists().where(files.c.peer_id == peer_id, files.c.sha256 == withdrawn.c.sha256),
            )
        )
        # A pending copy is done once its backup has indexed that sha256 under any name.
        conn.execute(
            delete(pending).where(
                pending.c.to_peer_id == peer_id,
                exists().where(files.c.peer_id == peer_id, files.c.sha256 == pending.c.sha256),
            )
        )

    @_transactional(write=False)
    def peer_files(self, conn: Connection, peer_id: str) -> list[dict]:
        """Every FileEntry peer_id indexed, ordered by name."""
        rows = conn.execute(
            select(files.c.name, files.c.size, files.c.sha256, files.c.piece_size, files.c.pieces)
            .where(files.c.peer_id == peer_id)
            .order_by(files.c.name)
        )
        return [_public_entry(r) for r in rows]

    @_transactional(write=False, single=True)
    def search(self, conn: Connection, query: str, live_since: float, limit: int, after_id: int = 0) -> dict:
        """Live files whose name contains query (case-insensitive), one row per sha256.

        Rows come in file-id order; a sha256 is reported at its first live matching row only,
        so pages never repeat a file. Queries of 1-2 characters match name prefixes instead
        (a trigram index cannot serve them). Returns {results, next_after} where next_after
        is the id to resume after, or None on the last page.
        """
        params = {"ls": live_since, "after": after_id, "lim": limit + 1}
        if len(query) >= 3:
            kind = "substring"
            if self.dialect == "sqlite":
                params["m"], params["exact"] = _fts_match(query)
                # SQLite's lower() folds ASCII only, so fold the query the same way.
                params["ql"] = "".join(c.lower() if c.isascii() else c for c in query)
            else:
                params["pat"] = "%" + _like_escape(query) + "%"
        elif query:
            kind = "prefix"
            params["pat"] = _like_escape(query.lower()) + "%"
        else:
            kind = "all"
        # One round trip, one row: the page (limit + 1 file rows, the last only to learn whether
        # another page follows), each with its live holders, as one JSON array built by the
        # database. A row per holder would cross the driver 2-3 times as often, and each row
        # costs a GIL hand-over inside sqlite3 and a Row object here.
        value = conn.execute(_search_statement(self.dialect, kind), params).scalar()
        page = (json.loads(value) if isinstance(value, str) else value) or []
        # JSON aggregates promise no order: restore file-id order here.
        page.sort(key=lambda item: item[0])
        results: list[dict] = []
        seen: set[str] = set()
        next_after = None
        for n, (file_id, sha, name, size, holders) in enumerate(page):
            if n == limit:
                next_after = page[n - 1][0]
                break
            # Where SQLite's ASCII-only folding disagrees with the index's, a sha256 could
            # repeat: report it once, at its first row.
            if sha in seen:
                continue
            seen.add(sha)
            holders = sorted({peer_id: address for peer_id, address in holders or ()}.items())
            results.append({"sha256": sha, "name": name, "size": size,
                            "holders": [{"peer_id": peer_id, "grpc_address": address} for peer_id, address in holders]})
        return {"results": results, "next_after": next_after}

    @_transactional(write=False, single=True)
    def file_detail(self, conn: Connection, sha256: str, live_since: float, now: float) -> dict | None:
        """One file's size, names, live holders, pieces and pending copies; None if no live holder."""
        # One statement answers holders, pending copies and the withdrawal flag (row kinds 0, 1, 2).
        rows = conn.execute(_FILE_DETAIL, {"s": sha256, "ls": live_since, "now": now}).all()
        if not rows or rows[0][0] != 0:
            return None
        holders: dict[str, dict] = {}
        names: set[str] = set()
        pending_: list[dict] = []
        detail = {"sha256": sha256, "size": rows[0][4]}
        is_withdrawn = False
        for kind, peer_id, address, name, size, piece_size, pieces, deadline, handed_at in rows:
            if kind == 0:
                if peer_id not in holders:
                    holders[peer_id] = {"peer_id": peer_id, "grpc_address": address}
                names.add(name)
                if piece_size is not None and "piece_size" not in detail:
                    detail["piece_size"], detail["pieces"] = piece_size, json.loads(pieces)
            elif kind == 1:
                pending_.append({"to_peer_id": peer_id, "to_address": address, "from_peer_id": name,
                                 "deadline": deadline, "handed_at": handed_at})
            else:
                is_withdrawn = True
        detail["names"] = sorted(names)
        detail["holders"] = list(holders.values())
        detail["pending"] = pending_
        detail["withdrawn"] = is_withdrawn
        return detail

    # -- replication ----------------------------------------------------------------------

    @_transactional(write=False)
    def pending_for(self, conn: Connection, sha256: str, now: float) -> list[dict]:
        """Unexpired pending copies of one sha256."""
        to = peers.alias("to")
        rows = conn.execute(
            select(pending.c.to_peer_id, to.c.grpc_address.label("to_address"), pending.c.from_peer_id,
                   pending.c.deadline, pending.c.handed_at)
            .select_from(pending.join(to, to.c.peer_id == pending.c.to_peer_id))
            .where(pending.c.sha256 == sha256, pending.c.deadline >= now)
            .order_by(pending.c.to_peer_id)
        )
        return [dict(r._mapping) for r in rows]

    @_transactional(write=True)
    def drop_expired_copies(self, conn: Connection, now: float, live_since: float | None = None) -> int:
        """Delete pending copies past their deadline, so they can be planned again.

        With live_since, also those whose sender or backup is no longer live: that copy
        cannot complete, and counting it would keep the file below target until its deadline.
        """
        stale = pending.c.deadline < now
        if live_since is not None:
            dead = select(peers.c.peer_id).where(peers.c.last_seen < live_since)
            stale = stale | pending.c.to_peer_id.in_(dead) | pending.c.from_peer_id.in_(dead)
        return conn.execute(delete(pending).where(stale)).rowcount

    @_transactional(write=False)
    def under_replicated_for_holder(
        self, conn: Connection, peer_id: str, target: int, live_since: float, now: float, limit: int,
        start: str = "",
    ) -> list[dict]:
        """Files peer_id holds whose live holders plus unexpired pending copies fall short of target.

        At most limit rows, in sha256 order from start, wrapping around to the lowest.
        Each row: sha256, name, size, live_holders, pending, need (= copies still to plan).
        """
        inner = (
            select(
                files.c.sha256,
                func.min(files.c.name).label("name"),
                func.max(files.c.size).label("size"),
            )
            .where(files.c.peer_id == peer_id, ~exists().where(withdrawn.c.sha256 == files.c.sha256))
            .group_by(files.c.sha256)
            .subquery()
        )
        live2 = self._live_holders_of(inner.c.sha256, live_since)
        planned2 = (
            select(func.count())
            .select_from(pending)
            .where(pending.c.sha256 == inner.c.sha256, pending.c.deadline >= now)
            .scalar_subquery()
        )
        counted = select(
            inner.c.sha256, inner.c.name, inner.c.size, live2.label("live_holders"), planned2.label("pending")
        ).subquery()
        rows = conn.execute(
            select(counted)
            .where(counted.c.live_holders + counted.c.pending < target)
            .order_by(case((counted.c.sha256 >= start, 0), else_=1), counted.c.sha256)
            .limit(limit)
        )
        return [
            dict(r._mapping, need=target - r.live_holders - r.pending) for r in rows
        ]

    @staticmethod
    def _live_holders_of(sha_column, live_since: float):
        f2 = files.alias()
        return (
            select(func.count(func.distinct(f2.c.peer_id)))
            .select_from(f2.join(peers, peers.c.peer_id == f2.c.peer_id))
            .where(f2.c.sha256 == sha_column, peers.c.last_seen >= live_since)
            .scalar_subquery()
        )

    @_transactional(write=False)
    def backup_candidates(self, conn: Connection, sha256: str, live_since: float, now: float) -> list[dict]:
        """Live peers accepting uploads that neither hold, await nor dropped sha256, with their load.

        Each row: peer_id, grpc_address, free_bytes, pending (count of unexpired copies
        it awaits) and reserved (bytes of those copies). Room and load limits are the
        planner's decision.
        """
        load = (
            select(
                pending.c.to_peer_id,
                func.count().label("pending"),
                func.coalesce(func.sum(pending.c.size), 0).label("reserved"),
            )
            .where(pending.c.deadline >= now)
            .group_by(pending.c.to_peer_id)
            .subquery()
        )
        rows = conn.execute(
            select(
                peers.c.peer_id,
                peers.c.grpc_address,
                peers.c.free_bytes,
                func.coalesce(load.c.pending, 0).label("pending"),
                func.coalesce(load.c.reserved, 0).label("reserved"),
            )
            .select_from(peers.outerjoin(load, load.c.to_peer_id == peers.c.peer_id))
            .where(
                peers.c.last_seen >= live_since,
                peers.c.accept_uploads.is_(True),
                ~exists().where(files.c.peer_id == peers.c.peer_id, files.c.sha256 == sha256),
                ~exists().where(pending.c.to_peer_id == peers.c.peer_id, pending.c.sha256 == sha256),
                ~exists().where(dropped.c.peer_id == peers.c.peer_id, dropped.c.sha256 == sha256),
            )
        )
        return [dict(r._mapping) for r in rows]

    @_transactional(write=True)
    def add_pending_copy(
        self, conn: Connection, sha256: str, name: str, size: int, from_peer_id: str, to_peer_id: str,
        now: float, deadline: float,
    ) -> bool:
        """Record a planned copy; False if (sha256, to_peer_id) is already planned (by anyone)."""
        stmt = self._insert(pending).values(
            sha256=sha256, name=name, size=size, from_peer_id=from_peer_id, to_peer_id=to_peer_id,
            created_at=now, deadline=deadline, handed_at=None,
        )
        stmt = stmt.on_conflict_do_nothing(index_elements=["sha256", "to_peer_id"]).returning(pending.c.sha256)
        return conn.execute(stmt).first() is not None

    @_transactional(write=True)
    def take_handouts(self, conn: Connection, from_peer_id: str, now: float) -> list[dict]:
        """Unexpired copies planned for this holder not yet handed out; marks them handed out."""
        params = {"src": from_peer_id, "now": now}
        rows = conn.execute(_HANDOUTS, params).all()
        if rows:
            conn.execute(_MARK_HANDED, params)
        return [dict(r._mapping) for r in rows]

    @_transactional(write=False)
    def replication_counts(
        self, conn: Connection, target: int, live_since: float, now: float, max_pending_per_peer: int
    ) -> dict:
        """Whole-network replication figures: files_total, at/below/above target, pending, unplaceable.

        Scans the whole index: meant for operators, not for hot paths.
        """
        per_file = (
            select(
                files.c.sha256,
                func.max(files.c.size).label("size"),
                func.count(func.distinct(files.c.peer_id)).label("live_holders"),
            )
            .select_from(files.join(peers, peers.c.peer_id == files.c.peer_id))
            .where(peers.c.last_seen >= live_since)
            .group_by(files.c.sha256)
            .subquery()
        )
        totals = conn.execute(
            select(
                func.count(),
                func.coalesce(func.sum((per_file.c.live_holders == target).cast(Integer)), 0),
                func.coalesce(func.sum((per_file.c.live_holders < target).cast(Integer)), 0),
                func.coalesce(func.sum((per_file.c.live_holders > target).cast(Integer)), 0),
            )
        ).one()
        pending_copies = conn.execute(
            select(func.count()).select_from(pending).where(pending.c.deadline >= now)
        ).scalar()
        load = (
            select(func.count())
            .select_from(pending)
            .where(pending.c.to_peer_id == peers.c.peer_id, pending.c.deadline >= now)
            .scalar_subquery()
        )
        eligible = (
            exists()
            .where(
                peers.c.last_seen >= live_since,
                peers.c.accept_uploads.is_(True),
                (peers.c.free_bytes.is_(None)) | (peers.c.free_bytes >= per_file.c.size),
                ~exists().where(files.c.peer_id == peers.c.peer_id, files.c.sha256 == per_file.c.sha256),
                ~exists().where(dropped.c.peer_id == peers.c.peer_id, dropped.c.sha256 == per_file.c.sha256),
                load < max_pending_per_peer,
            )
        )
        has_pending = exists().where(pending.c.sha256 == per_file.c.sha256, pending.c.deadline >= now)
        is_withdrawn = exists().where(withdrawn.c.sha256 == per_file.c.sha256)
        unplaceable = conn.execute(
            select(func.count())
            .select_from(per_file)
            .where(per_file.c.live_holders < target, ~has_pending, ~is_withdrawn, ~eligible)
        ).scalar()
        n_withdrawn = conn.execute(select(func.count()).select_from(withdrawn)).scalar()
        return {
            "target": target,
            "files_total": totals[0],
            "at_target": totals[1],
            "below_target": totals[2],
            "above_target": totals[3],
            "pending_copies": pending_copies,
            "unplaceable": unplaceable,
            "withdrawn": n_withdrawn,
        }

    # -- housekeeping -------------------------------------------------------------------

    @_transactional(write=True)
    def delete_dead_peers(self, conn: Connection, dead_before: float) -> int:
        """Delete peers (and, by cascade, their files and copies) last seen before dead_before."""
        dead = conn.execute(delete(peers).where(peers.c.last_seen < dead_before)).rowcount
        # A withdrawal is forgotten once nobody indexes that sha256 any more.
        conn.execute(delete(withdrawn).where(~exists().where(files.c.sha256 == withdrawn.c.sha256)))
        conn.execute(delete(dropped).where(~exists().where(files.c.sha256 == dropped.c.sha256)))
        return dead

    def bulk_seed(self, peer_rows: Iterable[dict], file_rows: Iterable[dict], batch: int = 50_000) -> tuple[int, int]:
        """Insert many peers and files fast, for benchmarks; returns (peers, files) inserted.

        peer_rows: dicts with peer_id, grpc_address and optionally last_seen (default now),
        secret_hash (default a hash no secret matches), accept_uploads, free_bytes.
        file_rows: dicts with peer_id, name, sha256, size and optionally piece_size, pieces
        (a list). Rows are not validated: feed it well-formed data. Uses executemany in
        batches of `batch`; on SQLite the name index is rebuilt once at the end instead of
        row by row.
        """
        now = time.time()
        n_peers = n_files = 0
        with self.write() as conn:
            buf = []
            for row in peer_rows:
                buf.append({
                    "peer_id": row["peer_id"],
                    "grpc_address": row["grpc_address"],
                    "secret_hash": row.get("secret_hash", "!"),
                    "token_hash": row.get("token_hash"),
                    "last_seen": row.get("last_seen", now),
                    "accept_uploads": row.get("accept_uploads", True),
                    "free_bytes": row.get("free_bytes"),
                    "registered_at": now,
                    "planned_at": 0.0,
                })
                if len(buf) >= batch:
                    n_peers += self._flush(conn, peers, buf)
            n_peers += self._flush(conn, peers, buf)
            if self.dialect == "sqlite":
                for trigger in _SQLITE_TRIGGERS:
                    conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {trigger}")
            for row in file_rows:
                buf.append({
                    "peer_id": row["peer_id"],
                    "name": row["name"],
                    "sha256": row["sha256"],
                    "size": row["size"],
                    "piece_size": row.get("piece_size"),
                    "pieces": json.dumps(row["pieces"]) if row.get("pieces") is not None else None,
                })
                if len(buf) >= batch:
                    n_files += self._flush(conn, files, buf)
            n_files += self._flush(conn, files, buf)
            if self.dialect == "sqlite":
                conn.exec_driver_sql("INSERT INTO p2p_files_fts(p2p_files_fts) VALUES ('rebuild')")
                # Merge the rebuilt index into one b-tree per term: a phrase of many trigrams then
                # reads one doclist per trigram, not one per segment (at 1M files: -40% on such
                # searches, for about 12 s more seeding).
                conn.exec_driver_sql("INSERT INTO p2p_files_fts(p2p_files_fts) VALUES ('optimize')")
                for ddl in _SQLITE_DDL[1:]:
                    conn.exec_driver_sql(ddl)
        if self.dialect == "postgresql":
            with self.engine.connect() as conn:
                # Both tables: without statistics on peers the planner joins them to the matches
                # by scanning all peers for every match.
                conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("ANALYZE p2p_files, p2p_peers")
        return n_peers, n_files

    @staticmethod
    def _flush(conn: Connection, table: Table, buf: list) -> int:
        if not buf:
            return 0
        conn.execute(insert(table), buf)
        count = len(buf)
        buf.clear()
        return count

    def _insert(self, table: Table):
        return (postgresql.insert if self.dialect == "postgresql" else sqlite.insert)(table)


# The heartbeat path runs these thousands of times a second: build them once, not per call.
_AUTHENTICATE = select(peers.c.peer_id).where(
    peers.c.token_hash == bindparam("th"), peers.c.last_seen >= bindparam("ls")
)
_RENEW: dict[tuple[bool, bool], object] = {}
_RENEW_BATCHED = (
    update(peers)
    .where(peers.c.peer_id == bindparam("pid"), peers.c.token_hash == bindparam("th"),
           peers.c.last_seen < bindparam("now"))
    .values(
        last_seen=bindparam("now"),
        free_bytes=case((bindparam("set_free", type_=Boolean), bindparam("free", type_=BigInteger)),
                        else_=peers.c.free_bytes),
        accept_uploads=func.coalesce(bindparam("acc", type_=Boolean), peers.c.accept_uploads),
    )
)
# Asked in the heartbeat's own UPDATE, so a heartbeat with no work is a single statement.
_HAS_HANDOUTS_OF_RENEWED = (
    exists()
    .where(pending.c.from_peer_id == peers.c.peer_id, pending.c.handed_at.is_(None),
           pending.c.deadline >= bindparam("now"))
    .label("has_handouts")
)
_LEASE_SESSION = select(peers.c.peer_id, peers.c.planned_at, _HAS_HANDOUTS_OF_RENEWED).where(
    peers.c.token_hash == bindparam("th"), peers.c.last_seen >= bindparam("ls")
)


def _renew_statement(set_free: bool, set_accept: bool):
    key = (set_free, set_accept)
    if key not in _RENEW:
        values = {"last_seen": bindparam("now")}
        if set_free:
            values["free_bytes"] = bindparam("free")
        if set_accept:
            values["accept_uploads"] = bindparam("acc")
        _RENEW[key] = (
            update(peers)
            .where(peers.c.token_hash == bindparam("th"), peers.c.last_seen >= bindparam("ls"))
            .values(**values)
            .returning(peers.c.peer_id, peers.c.planned_at, _HAS_HANDOUTS_OF_RENEWED)
        )
    return _RENEW[key]


@functools.lru_cache(maxsize=None)
def _search_statement(dialect: str, kind: str):
    """The search SQL for one dialect and query kind (substring, prefix or all), built once."""
    # Every request runs one of six fixed statements: plain SQL with bound parameters costs
    # nothing to build, where composing aliased Core selects per request dominated its CPU time.
    order_key, source, match, match2 = "f.id", "p2p_files f", "", ""
    if kind == "substring" and dialect == "sqlite":
        # FTS5 drives the scan in rowid order, so LIMIT stops it early.
        order_key = "p2p_files_fts.rowid"
        source = "p2p_files_fts JOIN p2p_files f ON f.id = p2p_files_fts.rowid"
        match = "AND p2p_files_fts MATCH :m AND (:exact OR instr(lower(f.name), :ql) > 0)"
        # Only the few rows sharing one sha256 are checked here: a plain case-folded test will do.
        match2 = "AND instr(lower(f2.name), :ql) > 0"
    elif kind == "substring":
        # PostgreSQL: the pg_trgm GIN index serves ILIKE '%q%'.
        match = "AND f.name ILIKE :pat ESCAPE '\\'"
        match2 = "AND f2.name ILIKE :pat ESCAPE '\\'"
    elif kind == "prefix":
        # A trigram index cannot serve 1-2 characters: match name prefixes (SQLite's LIKE is
        # case-insensitive for ASCII; PostgreSQL has an index on lower(name)).
        name, name2 = ("lower(f.name)", "lower(f2.name)") if dialect == "postgresql" else ("f.name", "f2.name")
        match = f"AND {name} LIKE :pat ESCAPE '\\'"
        match2 = f"AND {name2} LIKE :pat ESCAPE '\\'"
    # The page comes back as one JSON array of [id, sha256, name, size, [[peer_id, address], ...]].
    agg, as_json = ("json_group_array(json_array({}))", "json({})") if dialect == "sqlite" else \
        ("json_agg(json_build_array({}))", "{}")
    holders = as_json.format(f"""(
            SELECT {agg.format("h.peer_id, h.grpc_address")} FROM p2p_files hf JOIN p2p_peers h ON h.peer_id = hf.peer_id
            WHERE hf.sha256 = page.sha256 AND h.last_seen >= :ls)""")
    entry = f"page.id, page.sha256, page.name, page.size, {holders}"
    return text(f"""
        WITH page AS (
            SELECT f.id AS id, f.sha256 AS sha256, f.name AS name, f.size AS size
            FROM {source} JOIN p2p_peers p ON p.peer_id = f.peer_id
            WHERE {order_key} > :after AND p.last_seen >= :ls {match}
              AND NOT EXISTS (
                  SELECT 1 FROM p2p_files f2 JOIN p2p_peers p2 ON p2.peer_id = f2.peer_id
                  WHERE f2.sha256 = f.sha256 AND f2.id < f.id AND p2.last_seen >= :ls {match2})
            ORDER BY {order_key}
            LIMIT :lim
        )
        SELECT {agg.format(entry)} FROM page
    """)


# GET /files/{sha256}: live holders with their names (kind 0), unexpired pending copies (kind 1)
# and the withdrawal mark (kind 2) in one round trip; every branch is served by an index on sha256.
_FILE_DETAIL = text("""
    SELECT 0 AS kind, p.peer_id, p.grpc_address, f.name, f.size, f.piece_size, f.pieces,
           NULL AS deadline, NULL AS handed_at
    FROM p2p_files f JOIN p2p_peers p ON p.peer_id = f.peer_id
    WHERE f.sha256 = :s AND p.last_seen >= :ls
    UNION ALL
    SELECT 1, c.to_peer_id, t.grpc_address, c.from_peer_id, NULL, NULL, NULL, c.deadline, c.handed_at
    FROM p2p_pending_copies c JOIN p2p_peers t ON t.peer_id = c.to_peer_id
    WHERE c.sha256 = :s AND c.deadline >= :now
    UNION ALL
    SELECT 2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL FROM p2p_withdrawn w WHERE w.sha256 = :s
    ORDER BY 1, 2, 4
""")

_to = peers.alias("to")
_HANDOUTS = (
    select(pending.c.sha256, pending.c.name, pending.c.to_peer_id, _to.c.grpc_address.label("to_address"))
    .select_from(pending.join(_to, _to.c.peer_id == pending.c.to_peer_id))
    .where(pending.c.from_peer_id == bindparam("src"), pending.c.handed_at.is_(None),
           pending.c.deadline >= bindparam("now"))
    .order_by(pending.c.sha256, pending.c.to_peer_id)
)
_MARK_HANDED = (
    update(pending)
    .where(pending.c.from_peer_id == bindparam("src"), pending.c.handed_at.is_(None),
           pending.c.deadline >= bindparam("now"))
    .values(handed_at=bindparam("now"))
)


def _public_entry(row) -> dict:
    entry = {"name": row.name, "size": row.size, "sha256": row.sha256}
    if row.piece_size is not None:
        entry["piece_size"], entry["pieces"] = row.piece_size, json.loads(row.pieces)
    return entry


def _configure_postgresql(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):
        # psycopg prepares repeated statements; a generic plan for "name ILIKE $1" cannot see
        # how selective the pattern is and scans the table, so always plan for the real value.
        autocommit = dbapi_conn.autocommit
        dbapi_conn.autocommit = True
        with dbapi_conn.cursor() as cur:
            cur.execute("SET plan_cache_mode = force_custom_plan")
        dbapi_conn.autocommit = autocommit


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):
        # Let SQLAlchemy's "begin" event issue BEGIN itself, so writers can ask for IMMEDIATE.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA synchronous=NORMAL")
        # Reads are the hot path: map the file instead of copying pages through read(), keep a
        # bigger page cache per connection (16 MiB), and sort in memory, not in temp files.
        cur.execute("PRAGMA mmap_size=1073741824")
        cur.execute("PRAGMA cache_size=-16384")
        cur.execute("PRAGMA temp_store=MEMORY")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        mode = conn.get_execution_options().get("p2p_begin", "DEFERRED")
        if mode:  # "" (Store.read_one): stay in autocommit, COMMIT is then a no-op
            conn.exec_driver_sql(f"BEGIN {mode}")
