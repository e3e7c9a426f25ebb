"""Failed logins, counted in the database so that every directory process sees the same count (issue 12).

A login attempt is recorded as a failure *before* its secret is checked (begin_login) and
struck off when the secret was right (end_login): so concurrent guesses cannot all pass the
check before any of them has failed, and the limit holds exactly however many arrive at once.
The count and the record are one transaction, serialised per key (SQLite's one writer; on
PostgreSQL a transaction-scoped advisory lock on the key).
"""
from __future__ import annotations

from sqlalchemy import bindparam, delete, select, text
from sqlalchemy.engine import Connection

from .engine import StoreEngine, transactional
from .schema import login_failures

_RECENT = (
    select(login_failures.c.key, login_failures.c.at)
    .where(login_failures.c.key.in_(bindparam("keys", expanding=True)), login_failures.c.at > bindparam("since"))
    .order_by(login_failures.c.at)
)
_PG_LOCK_SPACE = 7_202_612  # advisory lock class of login keys (the schema lock is 7_202_611)


class Logins(StoreEngine):
    """Record, count and forget failed logins by key ("peer:<id>", "addr:<address>")."""

    @transactional("read_one")
    def login_failures(self, keys: list[str], since: float, *, conn: Connection) -> dict[str, list[float]]:
        """The times (oldest first) of the failures of each key after since."""
        found: dict[str, list[float]] = {key: [] for key in keys}
        for key, at in conn.execute(_RECENT, {"keys": list(keys), "since": since}):
            found[key].append(at)
        return found

    @transactional("write")
    def begin_login(self, limits: dict[str, int], since: float, now: float, *,
                    conn: Connection) -> tuple[dict[str, list[float]], list[int] | None]:
        """Each key's failures after since and, unless a key is at its limit, this attempt's row ids.

        limits maps keys to their limit (> 0). The attempt is recorded against every key, as a
        failure until end_login strikes it off; at a limit nothing is recorded (ids None).
        """
        keys = sorted(limits)
        if self.dialect == "postgresql":
            for key in keys:  # in key order: two attempts never wait on each other crosswise
                conn.execute(text("SELECT pg_advisory_xact_lock(:space, hashtext(:key))"),
                             {"space": _PG_LOCK_SPACE, "key": key})
        found = self.login_failures(keys, since, conn=conn)
        if any(len(found[key]) >= limits[key] for key in keys):
            return found, None
        insert = login_failures.insert().returning(login_failures.c.id)
        return found, [conn.execute(insert.values(key=key, at=now)).scalar_one() for key in keys]

    @transactional("write")
    def end_login(self, ids: list[int], clear_key: str | None = None, *, conn: Connection) -> None:
        """Strike off a successful attempt's rows, and forget every failure of clear_key."""
        conn.execute(delete(login_failures).where(login_failures.c.id.in_(ids)))
        if clear_key is not None:
            conn.execute(delete(login_failures).where(login_failures.c.key == clear_key))

    @transactional("write")
    def drop_old_login_failures(self, before: float, *, conn: Connection) -> int:
        """Delete the failures older than before (the sweep); returns how many."""
        return conn.execute(delete(login_failures).where(login_failures.c.at < before)).rowcount
