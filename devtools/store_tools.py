"""Store operations only tests and benchmarks need: seed fast, empty, drop."""
from __future__ import annotations

from typing import Iterable

from sqlalchemy import delete

from directory_api.store import Store
from directory_api.store.bulk import bulk_load
from directory_api.store.schema import (
    client_sessions,
    login_failures,
    directory_processes,
    dropped,
    files,
    metadata,
    peers,
    pending,
    publications,
    staged_files,
    tasks,
    removals,
    withdrawn,
)


def bulk_seed(store: Store, peer_rows: Iterable[dict], file_rows: Iterable[dict],
              batch: int = 50_000) -> tuple[int, int]:
    """Insert many peers and files fast, for benchmarks; returns (peers, files) inserted.

    See directory_api.store.bulk.bulk_load: COPY with the indexes built after the load on
    PostgreSQL, executemany with the name index rebuilt once on SQLite.
    """
    return bulk_load(store, peer_rows, file_rows, batch=batch)


def truncate(store: Store) -> None:
    """Delete every row, keeping the schema."""
    with store.write() as conn:
        for table in (client_sessions, login_failures, staged_files, publications, removals, dropped, withdrawn, pending, files, peers,
                      directory_processes, tasks):
            conn.execute(delete(table))
        if store.dialect == "sqlite":
            conn.exec_driver_sql("INSERT INTO p2p_files_fts(p2p_files_fts) VALUES ('delete-all')")


def drop_schema(store: Store) -> None:
    """Drop every table of the directory."""
    with store.write() as conn:
        if store.dialect == "sqlite":
            conn.exec_driver_sql("DROP TABLE IF EXISTS p2p_files_fts")
        metadata.drop_all(conn, checkfirst=True)
