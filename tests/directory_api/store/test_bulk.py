"""directory_api.store.bulk and .plans: bulk loading with the indexes after the load; query plans."""
import time

import pytest
from sqlalchemy import inspect

from devtools.store_tools import bulk_seed
from directory_api.store import plans
from directory_api.store.schema import POSTGRES_SEARCH_INDEXES
from tests.fixtures.directory import sha


def _seed(store, n=300):
    now = time.time()
    peers = [{"peer_id": f"p{i}", "grpc_address": f"127.0.0.1:{3000 + i}", "last_seen": now,
              "token_hash": f"tok{i}"} for i in range(5)]
    rows = [{"peer_id": f"p{i % 5}", "name": f"album/track {i:03}.ogg", "sha256": sha(i), "size": i,
             "piece_size": 4 if i % 2 else None, "pieces": [sha(i)] if i % 2 else None} for i in range(n)]
    rows[2]["proof"] = 1  # a seeded copy may come proven; the others are claims
    return now, bulk_seed(store, peers, rows)


def test_bulk_load_leaves_every_index_and_a_searchable_store(store):
    now, counts = _seed(store)
    assert counts == (5, 300)
    indexes = {i["name"] for i in inspect(store.engine).get_indexes("p2p_files")}
    expected = {"p2p_files_sha256", "p2p_files_peer_sha256", "p2p_files_proof"}
    if store.dialect == "postgresql":
        expected |= set(POSTGRES_SEARCH_INDEXES)
    assert expected <= indexes
    assert [r["name"] for r in store.search("track 12", now - 10, 5)["results"]] == \
        [f"album/track 12{d}.ogg" for d in range(5)]
    assert store.file_detail(sha(1), now - 10, now)["pieces"] == [sha(1)]
    assert store.authenticate("tok3", now - 10) == "p3"
    assert store.entry_proof("p2", sha(2)) == 1 and store.entry_proof("p3", sha(3)) == 0


def test_explain_gives_each_hot_statement_its_plan(store):
    now, _ = _seed(store)
    store.search("track", now - 10, 5)  # reads the name sample on PostgreSQL
    shapes = [shape for q in ("track 12", "al", "") for shape in
              plans.search_shapes(store.dialect, q, now - 10, sample=store._name_sample)]
    shapes += plans.hot_shapes(store.dialect, sha256=sha(3), token_hash="tok3", holder="p1",
                               live_since=now - 10, now=now)
    with store.write() as conn:  # the handouts statement writes; nothing to hand out here
        for label, statement, params in shapes:
            found = plans.explain(conn, statement, params)
            assert found["plan"] and found["ms"] is not None, label
            if store.dialect == "postgresql":
                assert "Execution Time" in found["plan"], label


@pytest.mark.postgres
def test_pg_trgm_lives_in_public_and_survives_a_dropped_schema(pg_url):
    """A test schema created first must not take the extension (and every trigram index) along."""
    from sqlalchemy import create_engine

    from directory_api.store import Store

    base = pg_url.split("?")[0]
    engine = create_engine(base, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.exec_driver_sql('CREATE SCHEMA IF NOT EXISTS "p2p_trgm_probe"')
    probe = Store(base + "?options=-csearch_path%3Dp2p_trgm_probe,public")
    probe.create_schema()
    probe.dispose()
    with engine.connect() as conn:
        conn.exec_driver_sql('DROP SCHEMA "p2p_trgm_probe" CASCADE')
        schema = conn.exec_driver_sql("SELECT extnamespace::regnamespace::text FROM pg_extension "
                                      "WHERE extname = 'pg_trgm'").scalar()
    engine.dispose()
    assert schema == "public"
