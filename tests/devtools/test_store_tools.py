"""devtools.store_tools: seeding, emptying and dropping a store for tests and benchmarks."""
import time

from sqlalchemy import inspect

from devtools.store_tools import bulk_seed, drop_schema, truncate
from directory_api.store import Store
from tests.fixtures.directory import entry, sha


def test_bulk_seed_then_search(store):
    now = time.time()
    peers = ({"peer_id": f"p{i}", "grpc_address": f"127.0.0.1:{2000 + i}", "last_seen": now} for i in range(20))
    files = ({"peer_id": f"p{i % 20}", "name": f"dir/file-{i:05}.bin", "sha256": sha(i), "size": i}
             for i in range(2000))
    assert bulk_seed(store, peers, files, batch=500) == (20, 2000)
    page = store.search("file-0199", now - 10, 50)
    assert [r["name"] for r in page["results"]] == [f"dir/file-0199{d}.bin" for d in range(10)]
    # the name index stays in sync after seeding
    store.upsert_files("p0", [entry("fresh-name.bin", n="fresh")])
    assert store.search("fresh-nam", now - 10, 5)["results"][0]["name"] == "fresh-name.bin"


def test_truncate_empties_every_table_and_the_name_index(store):
    bulk_seed(store, [{"peer_id": "p", "grpc_address": "127.0.0.1:1"}],
              [{"peer_id": "p", "name": "song.mp3", "sha256": sha(1), "size": 1}])
    truncate(store)
    assert store.live_peers(0.0) == [] and store.search("song", 0.0, 5)["results"] == []
    store.register_peer("p", "h", 1.0)  # the schema is still there


def test_drop_schema(tmp_path):
    s = Store(f"sqlite:///{tmp_path}/drop.db")
    s.create_schema()
    drop_schema(s)
    assert inspect(s.engine).get_table_names() == []
    s.dispose()


def test_haproxy_config_checks_health_and_sends_a_dead_directorys_requests_elsewhere():
    from devtools.cluster import haproxy_config

    conf = haproxy_config(8080, [("directory-1", 5001), ("directory-2", 5002)], check_ms=250)
    assert "bind 127.0.0.1:8080" in conf
    assert "option httpchk GET /api/v1/health" in conf
    for needed in ("retries 3", "option redispatch", "retry-on conn-failure empty-response"):
        assert needed in conf
    assert "server directory-1 127.0.0.1:5001 check" in conf and "server directory-2 127.0.0.1:5002 check" in conf
    assert "inter 250ms" in conf
