"""directory_api.store.schema: the tables and name-search indexes, created idempotently."""
import threading

from sqlalchemy import inspect

from directory_api.store import Store
from tests.directory_api.store.helpers import LIVE, add_peer
from tests.fixtures.directory import entry

TABLES = {"p2p_peers", "p2p_files", "p2p_pending_copies", "p2p_withdrawn", "p2p_dropped"}


def test_create_schema_makes_every_table_and_can_run_again(store):
    store.create_schema()  # the fixture made it once already
    assert TABLES <= set(inspect(store.engine).get_table_names())


def test_the_name_index_follows_inserts_renames_and_deletes(store):
    add_peer(store, "a", files=[entry("first draft.txt", n=1)])
    assert [r["name"] for r in store.search("draft", LIVE, 5)["results"]] == ["first draft.txt"]
    with store.write() as conn:
        conn.exec_driver_sql("UPDATE p2p_files SET name = 'final version.txt'")
    assert store.search("draft", LIVE, 5)["results"] == []
    assert [r["name"] for r in store.search("version", LIVE, 5)["results"]] == ["final version.txt"]
    store.replace_files("a", [])
    assert store.search("version", LIVE, 5)["results"] == []


def test_concurrent_schema_creation(tmp_path):
    """Several processes' workers start at once on one database: every create_schema succeeds."""
    url = f"sqlite:///{tmp_path}/race.db"
    stores = [Store(url) for _ in range(4)]
    errors = []

    def create(s):
        try:
            s.create_schema()
        except Exception as exc:  # collected, so the failure names it
            errors.append(repr(exc))

    threads = [threading.Thread(target=create, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    for s in stores:
        s.dispose()


def test_an_older_database_gets_the_columns_added_since(tmp_path):
    """A peers table made before the ring column existed gets it, filled, on create_schema."""
    from sqlalchemy import create_engine, inspect

    from directory_api.store import Store
    from directory_api.store.ring import ring_key

    url = f"sqlite:///{tmp_path}/old.db"
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE p2p_peers (peer_id VARCHAR(64) PRIMARY KEY, secret_hash VARCHAR(255) "
                             "NOT NULL, token_hash VARCHAR(64), grpc_address VARCHAR(300) NOT NULL, last_seen FLOAT "
                             "NOT NULL, accept_uploads BOOLEAN NOT NULL, free_bytes BIGINT, registered_at FLOAT NOT "
                             "NULL, planned_at FLOAT NOT NULL)")
        conn.exec_driver_sql("INSERT INTO p2p_peers VALUES ('old', 'h', NULL, '', 0, 1, NULL, 0, 0)")
    engine.dispose()
    store = Store(url)
    store.create_schema()
    assert "ring" in {c["name"] for c in inspect(store.engine).get_columns("p2p_peers")}
    assert "p2p_peers_ring" in {i["name"] for i in inspect(store.engine).get_indexes("p2p_peers")}
    with store.read() as conn:
        assert conn.exec_driver_sql("SELECT ring FROM p2p_peers").scalar() == ring_key("old")
    store.dispose()


def test_an_index_whose_columns_changed_is_built_again(tmp_path):
    from sqlalchemy import create_engine, inspect

    from directory_api.store import Store

    url = f"sqlite:///{tmp_path}/old-index.db"
    store = Store(url)
    store.create_schema()
    store.dispose()
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP INDEX p2p_files_sha256")
        conn.exec_driver_sql("CREATE INDEX p2p_files_sha256 ON p2p_files (sha256, peer_id)")  # as it once was
    engine.dispose()
    store = Store(url)
    store.create_schema()
    found = {i["name"]: i["column_names"] for i in inspect(store.engine).get_indexes("p2p_files")}
    assert found["p2p_files_sha256"] == ["sha256", "id", "peer_id", "proof"]
    store.dispose()


def test_an_older_files_table_gets_the_proof_columns_and_their_index(tmp_path):
    """Entries indexed before claims had proofs come back unproven, and the audit queue's index is built."""
    from sqlalchemy import create_engine, inspect

    from directory_api.store import Store

    url = f"sqlite:///{tmp_path}/old-files.db"
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE p2p_peers (peer_id VARCHAR(64) PRIMARY KEY, secret_hash VARCHAR(255) "
                             "NOT NULL, token_hash VARCHAR(64), grpc_address VARCHAR(300) NOT NULL, last_seen FLOAT "
                             "NOT NULL, accept_uploads BOOLEAN NOT NULL, free_bytes BIGINT, registered_at FLOAT NOT "
                             "NULL, planned_at FLOAT NOT NULL, ring BIGINT NOT NULL DEFAULT 0)")
        conn.exec_driver_sql("CREATE TABLE p2p_files (id INTEGER PRIMARY KEY, peer_id VARCHAR(64) NOT NULL "
                             "REFERENCES p2p_peers (peer_id) ON DELETE CASCADE, name TEXT NOT NULL, sha256 VARCHAR(64) "
                             "NOT NULL, size BIGINT NOT NULL, piece_size BIGINT, pieces TEXT)")
        conn.exec_driver_sql("CREATE INDEX p2p_files_sha256 ON p2p_files (sha256, id, peer_id)")
        conn.exec_driver_sql("INSERT INTO p2p_peers VALUES ('old', 'h', NULL, '', 0, 1, NULL, 0, 0, 0)")
        conn.exec_driver_sql("INSERT INTO p2p_files VALUES (1, 'old', 'x', '" + "a" * 64 + "', 3, NULL, NULL)")
    engine.dispose()
    store = Store(url)
    store.create_schema()
    indexes = {i["name"]: i["column_names"] for i in inspect(store.engine).get_indexes("p2p_files")}
    assert indexes["p2p_files_proof"] == ["proof", "proof_at"]
    assert indexes["p2p_files_sha256"] == ["sha256", "id", "peer_id", "proof"]
    with store.read() as conn:
        assert conn.exec_driver_sql("SELECT proof, proof_at FROM p2p_files").one() == (0, 0)
    store.dispose()
