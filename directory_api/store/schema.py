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
    bindparam,
    inspect,
    select,
    text,
    update,
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
    # The peer's place on the placement ring (store.ring.ring_key of peer_id): backup candidates
    # are drawn from the peers that follow a file's place, through p2p_peers_ring.
    Column("ring", BigInteger, nullable=False, default=0),
    Index("p2p_peers_token", "token_hash", unique=True),
    Index("p2p_peers_last_seen", "last_seen"),
    Index("p2p_peers_ring", "ring"),
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
    # Whether the claim "peer_id holds these bytes" was checked (store.claims): 0 unproven, 1 proven,
    # 2 refuted; proof_at is when it last changed or was last put to an audit. Server defaults, so
    # COPY and INSERT ... SELECT (bulk loads, paged commits) that name neither column fill them.
    Column("proof", Integer, nullable=False, server_default=text("0")),
    Column("proof_at", Float, nullable=False, server_default=text("0")),
    UniqueConstraint("peer_id", "name", name="p2p_files_peer_name"),
    # (sha256, id, peer_id, proof): a search's holders of a sha256 and its "no earlier live copy"
    # check (sha256 = ? AND id < ?, a range of the key), refuted claims left out, read the index
    # alone on both databases.
    Index("p2p_files_sha256", "sha256", "id", "peer_id", "proof"),
    Index("p2p_files_peer_sha256", "peer_id", "sha256"),
    # The audit scheduler's queue: unproven claims, least recently audited first.
    Index("p2p_files_proof", "proof", "proof_at"),
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

publications = Table(
    "p2p_publications",
    metadata,
    # A peer's paged publication under way (generation, the next page expected, entries staged so
    # far), the last one it committed (so a commit sent again is answered, not refused), and
    # whether its session has published an index yet: the first one, like a login's, records
    # nothing as dropped.
    Column("peer_id", String(64), ForeignKey("p2p_peers.peer_id", ondelete="CASCADE"), primary_key=True),
    Column("generation", String(64), nullable=True),
    Column("next_page", Integer, nullable=False, default=0),
    Column("staged", Integer, nullable=False, default=0),
    Column("committed", String(64), nullable=True),
    Column("fresh", Boolean, nullable=False, default=True),
)

staged_files = Table(
    "p2p_staged_files",
    metadata,
    # The pages received of a peer's generation under way: invisible to search until the commit
    # moves them into p2p_files in one transaction. One generation per peer at a time.
    Column("peer_id", String(64), ForeignKey("p2p_peers.peer_id", ondelete="CASCADE"), nullable=False),
    Column("name", Text, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("piece_size", BigInteger, nullable=True),
    Column("pieces", Text, nullable=True),
    PrimaryKeyConstraint("peer_id", "name", name="p2p_staged_files_pk"),
)

directory_processes = Table(
    "p2p_directory_processes",
    metadata,
    # Every directory process writes a row here at start and then a heartbeat of life: its own
    # clock and the database's at that write, so clock skew between processes shows (store.cluster).
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("started_at", Float, nullable=False),
    Column("own_time", Float, nullable=False),  # the process's clock at its last heartbeat of life
    Column("db_time", Float, nullable=False),  # the database's clock at that write
    Column("skew_s", Float, nullable=False, default=0.0),  # own clock minus the database's
    Index("p2p_directory_processes_db_time", "db_time"),
)

ticket_keys = Table(
    "p2p_ticket_keys",
    metadata,
    # The Ed25519 key the directory signs transfer tickets with, when no key file is given and
    # the database is a server (PostgreSQL): the first process to start stores one, every other
    # process of the network reads it, so all of them sign with the same key (directory_api/keys.py).
    Column("name", String(32), primary_key=True),  # "tickets": one row, so racing inserts keep the first
    Column("kid", String(32), nullable=False),
    Column("private_pem", Text, nullable=False),
    Column("created_at", Float, nullable=False),
)

tasks = Table(
    "p2p_tasks",
    metadata,
    # Work that must happen once per interval across every directory process (the sweep, later
    # audits): a process runs it only after moving last_run forward itself (store.cluster).
    Column("name", String(64), primary_key=True),
    Column("last_run", Float, nullable=False, default=0.0),
    Column("run_by", String(300), nullable=True),
)

# Columns added after a table first shipped: create_schema adds them to an older database.
ADDED_COLUMNS = [(peers, "ring"), (files, "proof"), (files, "proof_at")]
# Indexes whose columns changed since they first shipped: create_schema builds them again.
CHANGED_INDEXES = [(files, "p2p_files_sha256")]

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

verify_orders = Table(
    "p2p_verify_orders",
    metadata,
    # A holder asked to re-hash its copy of sha256 (a downloader reported it corrupt, or it failed
    # an audit): handed out once in its heartbeat answer; the row stays until verify_every_s after
    # that, so reports repeated meanwhile cost the holder nothing (store.claims).
    Column("peer_id", String(64), ForeignKey("p2p_peers.peer_id", ondelete="CASCADE"), nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("reported_by", String(64), nullable=True),
    Column("at", Float, nullable=False),
    Column("handed_at", Float, nullable=True),
    PrimaryKeyConstraint("peer_id", "sha256", name="p2p_verify_orders_pk"),
)

audits = Table(
    "p2p_audits",
    metadata,
    # An audit: auditor (a proven holder of sha256) reads length bytes at offset from target and
    # compares them with its own copy (directory_api/audits.py). Handed out once; answered once.
    Column("audit_id", String(32), primary_key=True),
    Column("sha256", String(64), nullable=False),
    Column("target_peer_id", String(64), ForeignKey("p2p_peers.peer_id", ondelete="CASCADE"), nullable=False),
    Column("auditor_peer_id", String(64), ForeignKey("p2p_peers.peer_id", ondelete="CASCADE"), nullable=False),
    Column("piece_offset", BigInteger, nullable=False),  # "offset" and "length" are SQL words
    Column("piece_length", BigInteger, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("deadline", Float, nullable=False),
    Column("handed_at", Float, nullable=True),
    Column("answered_at", Float, nullable=True),
    Column("ok", Boolean, nullable=True),
    Column("detail", Text, nullable=True),
    Index("p2p_audits_auditor", "auditor_peer_id", "handed_at"),
    Index("p2p_audits_target", "target_peer_id", "sha256"),
    Index("p2p_audits_deadline", "deadline"),
)

failed_pushes = Table(
    "p2p_failed_pushes",
    metadata,
    # A copy handed to peer_id to push passed its deadline unconfirmed: for a while the planner
    # takes another holder of sha256 as the source, if there is one (a claimed holder that cannot
    # send the bytes must not be asked for ever).
    Column("sha256", String(64), nullable=False),
    Column("peer_id", String(64), ForeignKey("p2p_peers.peer_id", ondelete="CASCADE"), nullable=False),
    Column("at", Float, nullable=False),
    PrimaryKeyConstraint("sha256", "peer_id", name="p2p_failed_pushes_pk"),
    Index("p2p_failed_pushes_at", "at"),
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

# The name-search indexes of PostgreSQL, by name: bulk loading (store.bulk) drops them before a
# load and builds them after it, which is many times faster than keeping them up to date row by row.
POSTGRES_FOLDED_NAME = (
    # The name lower-cased by the database itself, stored: search matches it with a byte-wise
    # LIKE (4x cheaper a row than ILIKE, which folds both sides on every comparison).
    "ALTER TABLE p2p_files ADD COLUMN IF NOT EXISTS name_folded text GENERATED ALWAYS AS (lower(name)) STORED"
)
POSTGRES_SEARCH_INDEXES = {
    # fastupdate off: with it on, new entries wait in a pending list that every search scans
    # linearly until a vacuum merges it (4 MB by default: at 10k files that list was most of the
    # index, and search there ran slower than at 100k). Index writes cost more; searches never do.
    "p2p_files_folded_trgm":
        "CREATE INDEX IF NOT EXISTS p2p_files_folded_trgm ON p2p_files "
        "USING gin (name_folded {trgm}.gin_trgm_ops) WITH (fastupdate = off)",
}
POSTGRES_DDL = [
    # A bigger sample for ANALYZE: the search plans with its 1,000 names (search_pg.NameSample).
    "ALTER TABLE p2p_files ALTER COLUMN name_folded SET STATISTICS 1000",
    # A covering index for the liveness sub-plan every search candidate and holder runs: a peer's
    # last_seen and grpc_address from the index alone (p2p_files_sha256 covers the files' side).
    "CREATE UNIQUE INDEX IF NOT EXISTS p2p_peers_live ON p2p_peers (peer_id) INCLUDE (last_seen, grpc_address)",
    # Indexes of an earlier release: name_folded's replace those on name, p2p_files_sha256
    # (sha256, id, peer_id) replaces p2p_files_sha256_id.
    "DROP INDEX IF EXISTS p2p_files_sha256_id",
    "DROP INDEX IF EXISTS p2p_files_name_trgm",
    "DROP INDEX IF EXISTS p2p_files_name_prefix",
    # 1-2 character queries match anywhere in a name now: no prefix index serves them.
    "DROP INDEX IF EXISTS p2p_files_folded_prefix",
    *POSTGRES_SEARCH_INDEXES.values(),
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
    _add_missing_columns(conn)
    for index in ADDED_INDEXES:
        index.create(conn, checkfirst=True)
    _rebuild_changed_indexes(conn)
    if dialect == "sqlite":
        for ddl in SQLITE_DDL:
            conn.exec_driver_sql(ddl)
        return
    # ALTER TABLE locks the table even when the column exists: only run it when it does not.
    if "name_folded" not in {c["name"] for c in inspect(conn).get_columns(files.name)}:
        conn.exec_driver_sql(POSTGRES_FOLDED_NAME)
    trgm = pg_trgm_schema(conn)
    for ddl in POSTGRES_DDL:
        conn.exec_driver_sql(ddl.format(trgm=trgm))


def pg_trgm_schema(conn: Connection) -> str:
    """The schema that holds pg_trgm (created in public when missing), quoted for DDL.

    An extension lives in one schema of the database. Created with a search_path that starts
    with a schema of our own (as tests and benchmarks use), it would land there and vanish with
    that schema, taking every trigram index of the other schemas along: so it goes to public,
    and an operator class is always named with its schema.
    """
    conn.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA public")
    schema = conn.execute(text("SELECT extnamespace::regnamespace::text FROM pg_extension "
                               "WHERE extname = 'pg_trgm'")).scalar()
    return schema


def _add_missing_columns(conn: Connection) -> None:
    """ALTER TABLE ... ADD COLUMN for each of ADDED_COLUMNS an older database lacks (then its index)."""
    inspector = inspect(conn)
    added = []
    for table, name in ADDED_COLUMNS:
        if name in {c["name"] for c in inspector.get_columns(table.name)}:
            continue
        column = table.c[name]
        ddl = f"{column.type.compile(conn.dialect)} NOT NULL DEFAULT 0"
        conn.exec_driver_sql(f"ALTER TABLE {table.name} ADD COLUMN {name} {ddl}")
        added.append((table, name))
        if table is peers and name == "ring":
            _fill_ring(conn)
    # The indexes on the new columns, once every column they name exists (p2p_files_proof has two).
    for table, name in added:
        for index in table.indexes:
            if name in index.columns:
                index.create(conn, checkfirst=True)


def _rebuild_changed_indexes(conn: Connection) -> None:
    """Drop and create again each of CHANGED_INDEXES whose columns an older database has otherwise."""
    inspector = inspect(conn)
    for table, name in CHANGED_INDEXES:
        [index] = [i for i in table.indexes if i.name == name]
        found = {i["name"]: i["column_names"] for i in inspector.get_indexes(table.name)}
        if found.get(name) not in (None, [c.name for c in index.columns]):
            conn.exec_driver_sql(f"DROP INDEX {name}")
            index.create(conn)


def _fill_ring(conn: Connection) -> None:
    from .ring import ring_key

    ids = conn.execute(select(peers.c.peer_id)).scalars().all()
    if ids:
        conn.execute(update(peers).where(peers.c.peer_id == bindparam("pid")).values(ring=bindparam("r")),
                     [{"pid": i, "r": ring_key(i)} for i in ids])

client_sessions = Table(
    "p2p_client_sessions",
    metadata,
    # A login without grpc_address (issue 12): a token of a registered peer_id for the client calls
    # (tickets, reports) that never makes the peer live and never touches its peer session.
    Column("token_hash", String(64), primary_key=True),
    Column("peer_id", String(64), ForeignKey("p2p_peers.peer_id", ondelete="CASCADE"), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Index("p2p_client_sessions_expires", "expires_at"),
    Index("p2p_client_sessions_peer", "peer_id"),
)

login_failures = Table(
    "p2p_login_failures",
    metadata,
    # Failed logins of the last minute, per peer_id and per client address (issue 12): a table,
    # not a process's memory, so that every directory process on this database (gunicorn workers,
    # several machines behind a balancer) counts the same failures, with no other service to run.
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("key", String(320), nullable=False),  # "peer:<peer_id>" or "addr:<client address>"
    Column("at", Float, nullable=False),
    Index("p2p_login_failures_key_at", "key", "at"),
    Index("p2p_login_failures_at", "at"),
)

# issue 12: a login's "is this address held by another live peer?" reads this index, not the table.
peers_address = Index("p2p_peers_address", peers.c.grpc_address)
# Indexes added to a table after it first shipped: create_schema makes them on an older database.
ADDED_INDEXES = [peers_address]
