"""The index: which peer shares which file under which name (replace, upsert, delete, browse)."""
from __future__ import annotations

import json

from sqlalchemy import case, delete, exists, insert, select, update
from sqlalchemy.engine import Connection

from . import claims
from .copies import cancel_copies_of
from .engine import StoreEngine, transactional
from .schema import dropped, files, pending, publications, withdrawn


def _entry_row(peer_id: str, entry: dict) -> dict:
    pieces = entry.get("pieces")
    return {
        "peer_id": peer_id,
        "name": entry["name"],
        "sha256": entry["sha256"],
        "size": entry["size"],
        "piece_size": entry.get("piece_size"),
        "pieces": json.dumps(pieces) if pieces is not None else None,
    }


def _public_entry(row) -> dict:
    entry = {"name": row.name, "size": row.size, "sha256": row.sha256}
    if row.piece_size is not None:
        entry["piece_size"], entry["pieces"] = row.piece_size, json.loads(row.pieces)
    return entry


class Index(StoreEngine):
    """Each peer's index of FileEntry rows, and what indexing completes or records."""

    @transactional("write")
    def replace_files(self, peer_id: str, entries: list[dict], now: float | None = None, *, conn: Connection) -> int:
        """Replace peer_id's whole index with entries; completes copies it was waiting for.

        With now (a running peer's index update, not a login), every sha256 the new index
        leaves out is recorded as dropped by peer_id, so no copy of it is planned back to it.
        """
        if now is not None:
            old = set(conn.execute(select(files.c.sha256).where(files.c.peer_id == peer_id).distinct()).scalars())
            self._record_dropped(peer_id, old - {e["sha256"] for e in entries}, now, conn=conn)
            # The session has published an index now: a paged commit after it records drops too.
            conn.execute(update(publications).where(publications.c.peer_id == peer_id).values(fresh=False))
        proofs = claims.saved_proofs(peer_id, conn=conn)  # the same bytes stay proven (store.claims)
        conn.execute(delete(files).where(files.c.peer_id == peer_id))
        if entries:
            conn.execute(insert(files), [_entry_row(peer_id, e) for e in entries])
        claims.restore_proofs(proofs, conn=conn)
        self._complete_copies(peer_id, conn=conn)
        return len(entries)

    @transactional("write")
    def upsert_files(self, peer_id: str, entries: list[dict], *, conn: Connection) -> int:
        """Add or update (by name) entries in peer_id's index; completes copies it was waiting for."""
        if entries:
            stmt = self._insert(files)
            stmt = stmt.on_conflict_do_update(
                index_elements=["peer_id", "name"],
                set_={**{c: stmt.excluded[c] for c in ("sha256", "size", "piece_size", "pieces")},
                      # Other bytes under the same name are a new claim; the same bytes keep their proof.
                      "proof": case((files.c.sha256 == stmt.excluded.sha256, files.c.proof), else_=claims.UNPROVEN),
                      "proof_at": case((files.c.sha256 == stmt.excluded.sha256, files.c.proof_at), else_=0.0)},
            )
            conn.execute(stmt, [_entry_row(peer_id, e) for e in entries])
            claims.sync_proofs(peer_id, conn=conn)
        self._complete_copies(peer_id, conn=conn)
        return len(entries)

    @transactional("write")
    def delete_file(self, peer_id: str, sha256: str, now: float = 0.0, withdraw: bool = False,
                    *, conn: Connection) -> int:
        """Remove every name under which peer_id indexed sha256 and cancel its copies of it.

        With withdraw, also cancel every pending copy of sha256 and record the withdrawal,
        so no new copy is planned (other peers' entries stay: they are their own records).
        Returns the number of entries removed; 0 means nothing happened at all.
        """
        removed = conn.execute(delete(files).where(files.c.peer_id == peer_id, files.c.sha256 == sha256)).rowcount
        if not removed:
            return 0
        self._record_dropped(peer_id, {sha256}, now, conn=conn)
        if withdraw:
            conn.execute(delete(pending).where(pending.c.sha256 == sha256))
            conn.execute(self._insert(withdrawn).values(sha256=sha256, peer_id=peer_id, at=now)
                         .on_conflict_do_nothing(index_elements=["sha256"]))
        else:
            cancel_copies_of(peer_id, sha256=sha256, conn=conn)
        return removed

    @transactional("read")
    def peer_files(self, peer_id: str, *, conn: Connection) -> list[dict]:
        """Every FileEntry peer_id indexed, ordered by name."""
        rows = conn.execute(
            select(files.c.name, files.c.size, files.c.sha256, files.c.piece_size, files.c.pieces)
            .where(files.c.peer_id == peer_id)
            .order_by(files.c.name)
        )
        return [_public_entry(r) for r in rows]

    def _record_dropped(self, peer_id: str, sha256s: set, now: float, *, conn: Connection) -> None:
        if not sha256s:
            return
        stmt = self._insert(dropped).on_conflict_do_nothing(index_elements=["sha256", "peer_id"])
        rows = [{"sha256": d, "peer_id": peer_id, "at": now} for d in sorted(sha256s)]
        conn.execute(stmt, rows)
        # It cannot send what it no longer has: another holder may be planned at once.
        conn.execute(delete(pending).where(pending.c.from_peer_id == peer_id,
                                           exists().where(dropped.c.peer_id == peer_id,
                                                          dropped.c.sha256 == pending.c.sha256)))

    def _complete_copies(self, peer_id: str, *, conn: Connection) -> None:
        # Indexing a sha256 it dropped earlier means it shares it again (e.g. fetched it itself).
        conn.execute(
            delete(dropped).where(
                dropped.c.peer_id == peer_id,
                exists().where(files.c.peer_id == peer_id, files.c.sha256 == dropped.c.sha256),
            )
        )
        # Indexing a sha256 it withdrew earlier lifts the withdrawal: it shares it again.
        conn.execute(
            delete(withdrawn).where(
                withdrawn.c.peer_id == peer_id,
                exists().where(files.c.peer_id == peer_id, files.c.sha256 == withdrawn.c.sha256),
            )
        )
        # A pending copy is done once its backup has indexed that sha256 under any name; a push
        # that was handed out and is confirmed so proves the backup's claim.
        claims.prove_confirmed_copies(peer_id, conn=conn)
        conn.execute(
            delete(pending).where(
                pending.c.to_peer_id == peer_id,
                exists().where(files.c.peer_id == peer_id, files.c.sha256 == pending.c.sha256),
            )
        )
