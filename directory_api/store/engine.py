"""The engine under the store: connections, the four kinds of transaction, SQLite and PostgreSQL hooks.

Every store method takes a keyword-only ``conn``: without it the method runs in its own
transaction of the kind its ``@transactional`` names; with it, inside the caller's (see
``StoreEngine.write``).
"""
from __future__ import annotations

import contextlib
import functools
import sqlite3
import time
from typing import Iterator

from sqlalchemy import create_engine, event, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from .writelock import WriteLock

_KINDS = ("read", "read_one", "write", "write_one")


def transactional(kind: str):
    """Run the method in its own transaction of this kind unless the caller passed conn=.

    kind: "read" or "write" for a transaction, "read_one" or "write_one" for a method that runs
    one statement, which is atomic and consistent on its own (see StoreEngine.read_one).
    """
    if kind not in _KINDS:
        raise ValueError(f"unknown transaction kind {kind!r}")

    def _wrap(method):
        @functools.wraps(method)
        def _run(self, *args, conn: Connection | None = None, **kwargs):
            if conn is not None:
                return method(self, *args, conn=conn, **kwargs)
            with getattr(self, kind)() as own:
                return method(self, *args, conn=own, **kwargs)

        return _run

    return _wrap


class StoreEngine:
    """One SQLAlchemy engine and the transactions the store's methods run in."""

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
        # How read_one and write_one skip BEGIN and COMMIT: SQLite's begin hook (p2p_begin=""),
        # PostgreSQL's autocommit.
        self._one_statement: dict = {}
        if self.dialect == "sqlite":
            _configure_sqlite(self.engine)
            database = self.engine.url.database
            in_memory = not database or database == ":memory:" or database.startswith("file::memory:")
            self._write_lock = WriteLock(None if in_memory else database + "-writelock")
        elif self.dialect == "postgresql":
            _configure_postgresql(self.engine)
            self._one_statement = {"isolation_level": "AUTOCOMMIT"}
        else:
            raise ValueError(f"unsupported database {self.dialect!r}: use sqlite or postgresql")

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
            conn.execution_options(p2p_begin="", **self._one_statement)
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
            # two more statements (round trips on PostgreSQL) to the hottest read paths.
            conn.execution_options(p2p_begin="", **self._one_statement)
            with conn.begin():
                yield conn

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()
        if isinstance(self._write_lock, WriteLock):
            self._write_lock.close()

    @transactional("read")
    def ping(self, *, conn: Connection) -> bool:
        """True when the database answers."""
        return conn.execute(select(1)).scalar() == 1

    def _insert(self, table):
        """INSERT for this dialect, which knows ON CONFLICT."""
        return (postgresql.insert if self.dialect == "postgresql" else sqlite.insert)(table)


def _configure_postgresql(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):
        # psycopg prepares a statement run five times on a connection. Plan it once, then: every
        # statement of the store is written so that its plan does not depend on the values (see
        # search_pg), and planning the search anew cost more than running it.
        autocommit = dbapi_conn.autocommit
        dbapi_conn.autocommit = True
        with dbapi_conn.cursor() as cur:
            cur.execute("SET plan_cache_mode = force_generic_plan")
            # A generic plan's cost counts every sub-plan at its worst; past jit_above_cost that
            # compiled the search with LLVM on each run (30 ms) for a statement of 1 ms.
            cur.execute("SET jit = off")
            # The directory's tables are read from memory, not from a spinning disk: at the
            # default 4, a peers table of 100 rows on two pages was read whole for each of a
            # search's 41 liveness checks instead of through its primary key.
            cur.execute("SET random_page_cost = 1.1")
        dbapi_conn.autocommit = autocommit


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):
        # Let SQLAlchemy's "begin" event issue BEGIN itself, so writers can ask for IMMEDIATE.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA busy_timeout=30000")
        _set_wal(cur)
        cur.execute("PRAGMA foreign_keys=ON")
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
        if mode:  # "" (StoreEngine.read_one): stay in autocommit, COMMIT is then a no-op
            conn.exec_driver_sql(f"BEGIN {mode}")


def _set_wal(cur, attempts: int = 50) -> None:
    """Switch the database to WAL, waiting while another connection switches it at the same time.

    Changing the journal mode of a new database needs it to itself, and SQLite answers "database
    is locked" at once instead of calling the busy handler when several processes (or gunicorn
    workers) open it together.
    """
    for attempt in range(attempts):
        try:
            cur.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == attempts - 1:
                raise
            time.sleep(0.02 * (attempt + 1))

