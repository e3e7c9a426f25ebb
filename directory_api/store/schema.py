"""The directory's tables and name-search indexes, and create_schema that makes them."""
from __future__ import annotations

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
    text,
)
from sqlalchemy.engine import Connection

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

removals = Table(
    "p2p_removals",
    metadata,
    # Why peers left the network (lease lapsed, unreachable report, logout), newest kept: the
    # dashboard shows them. No foreign key: the sweep deletes long-dead peers, their removal stays.
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("peer_id", String(64), nullable=False),
    Column("reason", String(32), nullable=False),
    Column("at", Float, nullable=False),
    # A lapse is recorded at last_seen + lease by whichever process sweeps first: the others' insert
    # of the same (peer_id, at) is a no-op.
    UniqueConstraint("peer_id", "at", name="p2p_removals_peer_at"),
    Index("p2p_removals_at", "at"),
)

# The FTS5 index first, then the triggers that keep it in step with p2p_files row by row.
SQLITE_DDL = [
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
SQLITE_TRIGGERS = ("p2p_files_ai", "p2p_files_ad", "p2p_files_au")

POSTGRES_DDL = [
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    "CREATE INDEX IF NOT EXISTS p2p_files_name_trgm ON p2p_files USING gin (name gin_trgm_ops)",
    # 1-2 character queries are prefix searches on lower(name).
    "CREATE INDEX IF NOT EXISTS p2p_files_name_prefix ON p2p_files (lower(name) text_pattern_ops)",
]
_PG_SCHEMA_LOCK = 7_202_611  # arbitrary advisory lock id: serialises schema creation across workers


def create_schema(conn: Connection, dialect: str) -> None:
    """Create tables and name-search indexes if missing, in the caller's write transaction.

    Safe to run concurrently: on PostgreSQL an advisory lock serialises it across processes,
    on SQLite the write transaction does.
    """
    if dialect == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_SCHEMA_LOCK})
    metadata.create_all(conn, checkfirst=True)
    for ddl in SQLITE_DDL if dialect == "sqlite" else POSTGRES_DDL:
        conn.exec_driver_sql(ddl)
