"""The ticket-signing key kept in the database (PostgreSQL), shared by every directory process."""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.engine import Connection

from .engine import StoreEngine, transactional
from .schema import ticket_keys

TICKET_KEY = "tickets"


class Keys(StoreEngine):
    """Read, or create once, the one key every process of this database signs with."""

    @transactional("write")
    def ticket_key_pem(self, kid: str, private_pem: str, now: float, *, conn: Connection) -> str:
        """The stored key's PEM; stores the offered one (kid, private_pem) first if none is stored.

        Several processes starting at once may each offer a new key: the one row's primary key
        makes every insert but the first a no-op, and all of them return the first.
        """
        stmt = self._insert(ticket_keys).values(name=TICKET_KEY, kid=kid, private_pem=private_pem, created_at=now)
        conn.execute(stmt.on_conflict_do_nothing(index_elements=["name"]))
        return conn.execute(select(ticket_keys.c.private_pem).where(ticket_keys.c.name == TICKET_KEY)).scalar()
