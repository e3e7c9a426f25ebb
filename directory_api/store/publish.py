"""Paged publication of a big index: pages staged out of sight, then committed in one transaction.

A peer sends its index as pages 0, 1, ... of a generation it names; the last page commits. Until
then search sees the old index whole; the commit swaps in the new one at once. A page sent again
(a retry after a lost answer) changes nothing; a page out of order, a page of a generation that is
not under way, or a name an earlier page had is an IndexConflict, and changes nothing either.
"""
from __future__ import annotations

from sqlalchemy import delete, exists, insert, literal, select, update
from sqlalchemy.engine import Connection

from ..errors import IndexConflict
from . import claims
from .engine import transactional
from .index import Index, _entry_row
from .schema import files, publications, staged_files

_COLUMNS = ("peer_id", "name", "sha256", "size", "piece_size", "pieces")


class Publish(Index):
    """Staging and committing the pages of a peer's new index."""

    def _reset_publication(self, peer_id: str, fresh: bool, *, conn: Connection) -> None:
        """A new session: forget any unfinished generation; fresh means no index published yet."""
        conn.execute(delete(staged_files).where(staged_files.c.peer_id == peer_id))
        stmt = self._insert(publications).values(peer_id=peer_id, generation=None, next_page=0, staged=0,
                                                 committed=None, fresh=fresh)
        conn.execute(stmt.on_conflict_do_update(
            index_elements=["peer_id"],
            set_={"generation": None, "next_page": 0, "staged": 0, "committed": None, "fresh": fresh}))

    @transactional("write")
    def publish_page(self, peer_id: str, generation: str, page: int, entries: list[dict], last: bool, now: float,
                     *, conn: Connection) -> dict:
        """Stage page `page` of `generation` for peer_id, and commit the generation when last.

        Returns {indexed (entries this call took), staged (entries of the generation so far),
        committed}. Raises IndexConflict (nothing changed) for a page out of order, a
        generation not under way, or a name an earlier page of it had.
        """
        row = conn.execute(select(publications).where(publications.c.peer_id == peer_id)).first()
        if row is None:  # a session started before paged publication existed
            self._reset_publication(peer_id, False, conn=conn)
            row = conn.execute(select(publications).where(publications.c.peer_id == peer_id)).first()
        state = dict(row._mapping)
        if state["generation"] != generation:
            if state["generation"] is None and state["committed"] == generation:
                return {"indexed": 0, "staged": 0, "committed": True}  # the commit, sent again
            if page != 0:
                raise IndexConflict(f"generation {generation} is not under way: start it with page 0",
                                    expected_page=0)
            conn.execute(delete(staged_files).where(staged_files.c.peer_id == peer_id))
            state.update(generation=generation, next_page=0, staged=0)
        if page < state["next_page"]:
            return {"indexed": 0, "staged": state["staged"], "committed": False}  # a page sent again
        if page > state["next_page"]:
            raise IndexConflict(f"page {page} of generation {generation} came before page {state['next_page']}",
                                expected_page=state["next_page"])
        if entries:
            stmt = self._insert(staged_files).on_conflict_do_nothing(index_elements=["peer_id", "name"])
            taken = conn.execute(stmt.returning(staged_files.c.name),
                                 [_entry_row(peer_id, e) for e in entries]).scalars().all()
            if len(taken) != len(entries):
                duplicate = next(e["name"] for e in entries if e["name"] not in set(taken))
                # Raising rolls the whole page back: the transaction is the caller's or transactional's.
                raise IndexConflict(f"{duplicate!r} is on an earlier page of generation {generation}",
                                    duplicate=duplicate)
        staged = state["staged"] + len(entries)
        if not last:
            conn.execute(update(publications).where(publications.c.peer_id == peer_id)
                         .values(generation=generation, next_page=page + 1, staged=staged))
            return {"indexed": len(entries), "staged": staged, "committed": False}
        self._commit(peer_id, record_drops=not state["fresh"], now=now, conn=conn)
        conn.execute(update(publications).where(publications.c.peer_id == peer_id)
                     .values(generation=None, next_page=0, staged=0, committed=generation, fresh=False))
        return {"indexed": len(entries), "staged": staged, "committed": True}

    def _commit(self, peer_id: str, *, record_drops: bool, now: float, conn: Connection) -> None:
        """Replace peer_id's index with its staged rows, as replace_files would with those entries."""
        if record_drops:
            kept = exists().where(staged_files.c.peer_id == peer_id, staged_files.c.sha256 == files.c.sha256)
            gone = conn.execute(select(files.c.sha256).where(files.c.peer_id == peer_id, ~kept).distinct())
            self._record_dropped(peer_id, set(gone.scalars()), now, conn=conn)
        proofs = claims.saved_proofs(peer_id, conn=conn)  # the same bytes stay proven (store.claims)
        conn.execute(delete(files).where(files.c.peer_id == peer_id))
        source = select(literal(peer_id), *(staged_files.c[c] for c in _COLUMNS[1:])).where(
            staged_files.c.peer_id == peer_id)
        conn.execute(insert(files).from_select(list(_COLUMNS), source))
        claims.restore_proofs(proofs, conn=conn)
        conn.execute(delete(staged_files).where(staged_files.c.peer_id == peer_id))
        self._complete_copies(peer_id, conn=conn)
