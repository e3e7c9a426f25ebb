"""What the directory checks before it signs a transfer ticket or lets a peer in at an address (issue 12)."""
from __future__ import annotations

from sqlalchemy import bindparam, select
from sqlalchemy.engine import Connection

from .engine import StoreEngine, transactional
from .schema import files, peers

_INDEXED_SIZE = select(files.c.size).where(files.c.sha256 == bindparam("s")).limit(1)
_HOLDS = (
    select(peers.c.peer_id)
    .select_from(files.join(peers, peers.c.peer_id == files.c.peer_id))
    .where(files.c.sha256 == bindparam("s"), peers.c.last_seen >= bindparam("ls"))
)


_ADDRESS_HOLDER = select(peers.c.peer_id).where(
    peers.c.grpc_address == bindparam("a"), peers.c.last_seen >= bindparam("ls"), peers.c.peer_id != bindparam("me")
).limit(1)


class Tickets(StoreEngine):
    """Facts a ticket or a login is granted on: who holds a file now, its indexed size, who holds an address."""

    @transactional("read_one")
    def address_holder(self, address: str, live_since: float, other_than: str, *, conn: Connection) -> str | None:
        """A live peer other than other_than that serves at address, or None."""
        return conn.execute(_ADDRESS_HOLDER, {"a": address, "ls": live_since, "me": other_than}).scalar()

    @transactional("read_one")
    def indexed_size(self, sha256: str, *, conn: Connection) -> int | None:
        """The size some peer (live or not) indexed sha256 with, or None if nobody did."""
        return conn.execute(_INDEXED_SIZE, {"s": sha256}).scalar()

    @transactional("read_one")
    def live_holder(self, sha256: str, live_since: float, peer_id: str | None = None, *,
                    conn: Connection) -> str | None:
        """A live peer that indexes sha256 (peer_id itself, when given), or None."""
        stmt = _HOLDS.where(files.c.peer_id == peer_id) if peer_id is not None else _HOLDS
        return conn.execute(stmt.limit(1), {"s": sha256, "ls": live_since}).scalar()
