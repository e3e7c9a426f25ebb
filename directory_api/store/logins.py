"""Failed logins, counted in the database so that every directory process sees the same count (issue 12)."""
from __future__ import annotations

from sqlalchemy import bindparam, delete, select
from sqlalchemy.engine import Connection

from .engine import StoreEngine, transactional
from .schema import login_failures

_RECENT = (
    select(login_failures.c.key, login_failures.c.at)
    .where(login_failures.c.key.in_(bindparam("keys", expanding=True)), login_failures.c.at > bindparam("since"))
    .order_by(login_failures.c.at)
)


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
    def record_login_failure(self, keys: list[str], now: float, *, conn: Connection) -> None:
        """Count one failed login at now against each key."""
        conn.execute(login_failures.insert(), [{"key": key, "at": now} for key in keys])

    @transactional("write")
    def clear_login_failures(self, key: str, *, conn: Connection) -> None:
        """Forget the failures of key (a peer_id that has just logged in with its secret)."""
        conn.execute(delete(login_failures).where(login_failures.c.key == key))

    @transactional("write")
    def drop_old_login_failures(self, before: float, *, conn: Connection) -> int:
        """Delete the failures older than before (the sweep); returns how many."""
        return conn.execute(delete(login_failures).where(login_failures.c.at < before)).rowcount
