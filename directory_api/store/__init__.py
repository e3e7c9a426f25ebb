"""The only package that speaks SQL: peers, their indexed files and pending copies (SQLAlchemy Core).

Runs unchanged on SQLite (WAL, foreign keys, busy timeout, FTS5 trigram index on names) and on
PostgreSQL (pg_trgm GIN index). A module per table family, composed into one ``Store``:

- ``engine``: connections, the four kinds of transaction, dialect hooks (and ``writelock``);
- ``schema``: the tables and ``create_schema``;
- ``sessions``: peers, secrets, tokens, leases;
- ``index``: each peer's files (replace, upsert, delete, browse);
- ``search``: name search and one file's details;
- ``copies``: pending copies, withdrawals, drops, planning queries, the replication summary;
- ``ring``: places of peers and files on the placement ring (backup sampling);
- ``cluster``: work claimed once across directory processes, and the processes' clocks;
- ``bulk``: bulk loading with the indexes built after the load; ``plans``: EXPLAIN of the hot
  statements; ``search_pg``: PostgreSQL's search statements.
- ``keys``: the ticket-signing key, when the database keeps it;
- ``removals``: why peers left (lease lapsed, unreachable report, logout), the newest kept;
- ``overview``: counts for /metrics and the dashboard's short lists.
- ``clients``: client sessions (a login without grpc_address); ``tickets``: what a ticket is granted on;
  ``logins``: failed logins, counted across processes.
- ``claims``: proofs of file entries, the one rule that counts copies, verify orders;
  ``audits``: the audits of unproven claims.

Every method takes a keyword-only ``conn``: without it the method runs in its own short
transaction; with it, inside the caller's (see ``Store.write``). Liveness is decided elsewhere:
queries take ``live_since`` (a peer is live while ``last_seen >= live_since``) and ``now`` as
plain numbers.
"""
from __future__ import annotations

from . import schema
from .audits import Audits
from .claims import Claims
from .clients import Clients
from .cluster import Cluster
from .copies import Copies
from .keys import Keys
from .logins import Logins
from .overview import Overview
from .removals import Removals
from .search import Search
from .sessions import PeerSession, Sessions
from .tickets import Tickets

__all__ = ["Store", "PeerSession"]


class Store(Sessions, Search, Copies, Cluster, Removals, Overview, Keys, Clients, Tickets, Logins, Claims, Audits):
    """The directory's persistent state behind one SQLAlchemy engine."""

    def create_schema(self) -> None:
        """Create tables and name-search indexes if missing (safe to run concurrently)."""
        with self.write() as conn:
            schema.create_schema(conn, self.dialect)
