"""Client sessions (issue 12): tokens of a registered peer_id that search, ask for tickets and report.

A client session is a row of its own, apart from the peer's row: it holds no lease, no address
and no index, so a client command (``p2p get``) never makes its peer look live and never ends
or alters the peer session the same peer_id may be running.
"""
from __future__ import annotations

from sqlalchemy import bindparam, delete, select
from sqlalchemy.engine import Connection

from .engine import StoreEngine, transactional
from .schema import client_sessions

_AUTHENTICATE_CLIENT = select(client_sessions.c.peer_id).where(
    client_sessions.c.token_hash == bindparam("th"), client_sessions.c.expires_at >= bindparam("now")
)


class Clients(StoreEngine):
    """Open, check and end client sessions."""

    @transactional("write")
    def start_client_session(self, peer_id: str, token_hash: str, now: float, expires_at: float, *,
                             conn: Connection) -> None:
        """Record a new client session of peer_id (a registered peer) valid until expires_at."""
        conn.execute(client_sessions.insert().values(token_hash=token_hash, peer_id=peer_id, created_at=now,
                                                     expires_at=expires_at))

    @transactional("read_one")
    def authenticate_client(self, token_hash: str, now: float, *, conn: Connection) -> str | None:
        """The peer_id of the unexpired client session with this token hash, or None."""
        return conn.execute(_AUTHENTICATE_CLIENT, {"th": token_hash, "now": now}).scalar()

    @transactional("write")
    def end_client_session(self, token_hash: str, *, conn: Connection) -> bool:
        """End one client session (its logout); False if there was none."""
        return conn.execute(delete(client_sessions).where(client_sessions.c.token_hash == token_hash)).rowcount > 0

    @transactional("write")
    def drop_expired_client_sessions(self, now: float, *, conn: Connection) -> int:
        """Delete the client sessions expired before now (the sweep); returns how many."""
        return conn.execute(delete(client_sessions).where(client_sessions.c.expires_at < now)).rowcount
