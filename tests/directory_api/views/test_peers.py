"""The peers blueprint: listing, browsing, indexing, deleting and unreachable reports."""
import pytest

from protos.rules import MIN_PIECE_SIZE as P
from tests.fixtures.directory import entry, sha


def test_list_peers(client, peer_client):
    peer_client("a", files=[entry("x"), entry("y")], free_bytes=10)
    peer_client("b", accept_uploads=False)
    peers = {p["peer_id"]: p for p in client.get("/api/v1/peers").get_json()}
    assert peers["a"]["files"] == 2 and peers["a"]["free_bytes"] == 10 and peers["a"]["accept_uploads"] is True
    assert peers["b"]["accept_uploads"] is False and peers["b"]["free_bytes"] is None
    assert set(peers["a"]) >= {"peer_id", "grpc_address", "last_seen", "files"}


def test_put_replaces_and_post_adds(client, peer_client):
    a = peer_client("a")
    r = a.put_files([entry("one"), entry("two")])
    assert r.status_code == 200 and r.get_json() == {"indexed": 2}
    r = a.add_files([entry("three"), entry("one", n="new", size=3)])
    assert r.status_code == 201 and r.get_json() == {"indexed": 2}
    files = {f["name"]: f for f in client.get("/api/v1/peers/a/files").get_json()["files"]}
    assert set(files) == {"one", "two", "three"} and files["one"]["sha256"] == sha("new")
    assert a.put_files([]).get_json() == {"indexed": 0}
    assert client.get("/api/v1/peers/a/files").get_json()["files"] == []


def test_delete_file(client, peer_client):
    a = peer_client("a", files=[entry("one", n=1), entry("copy", n=1), entry("two", n=2)])
    assert client.delete(f"/api/v1/peers/a/files/{sha(1)}", headers=a.auth).status_code == 204
    assert [f["name"] for f in client.get("/api/v1/peers/a/files").get_json()["files"]] == ["two"]
    r = client.delete(f"/api/v1/peers/a/files/{sha(1)}", headers=a.auth)
    assert r.status_code == 404 and r.mimetype == "application/problem+json"
    r = client.delete("/api/v1/peers/a/files/NOTHEX", headers=a.auth)
    assert r.status_code == 400 and r.get_json()["field"] == "sha256"


def test_foreign_token_is_forbidden_and_changes_nothing(client, peer_client):
    a = peer_client("a", files=[entry("mine", n=1)])
    b = peer_client("b")
    calls = [
        client.put("/api/v1/peers/a/files", json={"files": []}, headers=b.auth),
        client.post("/api/v1/peers/a/files", json={"files": [entry("evil")]}, headers=b.auth),
        client.delete(f"/api/v1/peers/a/files/{sha(1)}", headers=b.auth),
        # a bad body must not reveal anything before the ownership check
        client.put("/api/v1/peers/a/files", data="{not json", headers=b.auth),
    ]
    assert [r.status_code for r in calls] == [403] * 4
    assert all(r.mimetype == "application/problem+json" for r in calls)
    assert [f["name"] for f in client.get("/api/v1/peers/a/files").get_json()["files"]] == ["mine"]
    assert a.heartbeat().status_code == 200


@pytest.mark.parametrize("method", ["put", "post"])
def test_index_calls_need_a_token(client, peer_client, method):
    peer_client("a")
    r = getattr(client, method)("/api/v1/peers/a/files", json={"files": []})
    assert r.status_code == 401


BAD_FILES = [
    ({}, "files"),
    ({"files": {}}, "files"),
    ({"files": ["x"]}, "files[0]"),
    ({"files": [{"size": 1, "sha256": "a" * 64}]}, "files[0].name"),
    ({"files": [{"name": "/etc/passwd", "size": 1, "sha256": "a" * 64}]}, "files[0].name"),
    ({"files": [{"name": "a/../b", "size": 1, "sha256": "a" * 64}]}, "files[0].name"),
    ({"files": [{"name": "..", "size": 1, "sha256": "a" * 64}]}, "files[0].name"),
    ({"files": [{"name": "a//b", "size": 1, "sha256": "a" * 64}]}, "files[0].name"),
    ({"files": [{"name": "a\x00b", "size": 1, "sha256": "a" * 64}]}, "files[0].name"),
    ({"files": [{"name": "a\\..\\b", "size": 1, "sha256": "a" * 64}]}, "files[0].name"),
    ({"files": [{"name": "x" * 256, "size": 1, "sha256": "a" * 64}]}, "files[0].name"),
    ({"files": [{"name": "/".join(["x" * 200] * 21), "size": 1, "sha256": "a" * 64}]}, "files[0].name"),
    ({"files": [{"name": "", "size": 1, "sha256": "a" * 64}]}, "files[0].name"),
    ({"files": [{"name": "a", "size": -1, "sha256": "a" * 64}]}, "files[0].size"),
    ({"files": [{"name": "a", "size": 2**63, "sha256": "a" * 64}]}, "files[0].size"),
    ({"files": [{"name": "a", "size": "1", "sha256": "a" * 64}]}, "files[0].size"),
    ({"files": [{"name": "a", "size": True, "sha256": "a" * 64}]}, "files[0].size"),
    ({"files": [{"name": "a", "size": 1, "sha256": "A" * 64}]}, "files[0].sha256"),
    ({"files": [{"name": "a", "size": 1, "sha256": "a" * 63}]}, "files[0].sha256"),
    ({"files": [{"name": "a", "size": 1}]}, "files[0].sha256"),
    ({"files": [{"name": "sub/.p2p/partial/x.part", "size": 1, "sha256": "a" * 64}]}, "files[0].name"),
    ({"files": [{"name": "a", "size": 4, "sha256": "a" * 64, "piece_size": P}]}, "files[0].pieces"),
    ({"files": [{"name": "a", "size": 2 * P, "sha256": "a" * 64, "piece_size": P, "pieces": ["a" * 64]}]},
     "files[0].pieces"),
    ({"files": [{"name": "a", "size": 0, "sha256": "a" * 64, "piece_size": P, "pieces": ["a" * 64]}]},
     "files[0].pieces"),  # an empty file has no pieces
    ({"files": [{"name": "a", "size": 4, "sha256": "a" * 64, "piece_size": 0, "pieces": []}]}, "files[0].piece_size"),
    ({"files": [{"name": "a", "size": 4, "sha256": "a" * 64, "piece_size": P - 1, "pieces": ["a" * 64]}]},
     "files[0].piece_size"),
    ({"files": [{"name": "a", "size": 1, "sha256": "a" * 64, "piece_size": P, "pieces": ["zz"]}]},
     "files[0].pieces[0]"),
    ({"files": [entry("dup"), entry("ok"), entry("dup", n=2)]}, "files[2].name"),
]


@pytest.mark.parametrize("body,field", BAD_FILES)
def test_index_rejects_bad_files_and_changes_nothing(client, peer_client, body, field):
    a = peer_client("a", files=[entry("kept")])
    r = client.put("/api/v1/peers/a/files", json=body, headers=a.auth)
    assert r.status_code == 400, r.get_json()
    assert r.mimetype == "application/problem+json" and r.get_json()["field"] == field
    assert [f["name"] for f in client.get("/api/v1/peers/a/files").get_json()["files"]] == ["kept"]


def test_too_many_files_in_one_call(make_app):
    client = make_app(max_files_per_call=3).test_client()
    token = client.post("/api/v1/login", json={"peer_id": "a", "secret": "s",
                                                "grpc_address": "127.0.0.1:1"}).get_json()["token"]
    r = client.put("/api/v1/peers/a/files", json={"files": [entry(str(i)) for i in range(4)]},
                   headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 413 and r.get_json()["field"] == "files"


def test_good_names_are_accepted(peer_client):
    a = peer_client("a")
    names = ["a", "dir/sub/file.txt", ".hidden", "x" * 255, "ümlaut ✓.txt", "a..b", "/".join(["y" * 200] * 20)]
    assert a.put_files([entry(n) for n in names]).get_json() == {"indexed": len(names)}


@pytest.mark.parametrize("peer_id", ["bad id", "x" * 65])
def test_browse_rejects_bad_peer_ids(client, peer_id):
    r = client.get(f"/api/v1/peers/{peer_id}/files")
    assert r.status_code == 400 and r.get_json()["field"] == "peer_id"


def test_browse_unknown_peer(client):
    assert client.get("/api/v1/peers/ghost/files").status_code == 404


def test_unreachable_needs_auth_and_known_peer(client, peer_client):
    a = peer_client("a")
    assert client.post("/api/v1/peers/a/unreachable").status_code == 401
    r = client.post("/api/v1/peers/ghost/unreachable", headers=a.auth)
    assert r.status_code == 404 and r.mimetype == "application/problem+json"


def test_unreachable_dead_peer_is_removed(client, peer_client, closed_port):
    a = peer_client("a")
    b = peer_client("b", address=f"127.0.0.1:{closed_port}", files=[entry("b-file")])
    r = client.post("/api/v1/peers/b/unreachable", headers=a.auth)
    assert r.status_code == 202 and r.get_json() == {"status": "removed"}
    assert client.get("/api/v1/files?q=b-file").get_json()["results"] == []
    assert b.heartbeat().status_code == 401


def test_unreachable_live_peer_stays(client, peer_client, health_server):
    a = peer_client("a")
    peer_client("b", address=health_server, files=[entry("b-file")])
    r = client.post("/api/v1/peers/b/unreachable", headers=a.auth)
    assert r.status_code == 202 and r.get_json() == {"status": "alive"}
    assert client.get("/api/v1/files?q=b-file").get_json()["results"]


def test_put_in_pages_commits_atomically(client, peer_client):
    a = peer_client("a", files=[entry("old.txt", n=1)])
    url = "/api/v1/peers/a/files?generation=g1&page={}&last={}"
    r = client.put(url.format(0, "false"), json={"files": [entry("new-0.txt", n=2)]}, headers=a.auth)
    assert r.status_code == 200 and r.get_json() == {"indexed": 1, "staged": 1, "committed": False}
    assert [x["name"] for x in client.get("/api/v1/files?q=txt").get_json()["results"]] == ["old.txt"]
    r = client.put(url.format(1, "true"), json={"files": [entry("new-1.txt", n=3)]}, headers=a.auth)
    assert r.get_json() == {"indexed": 1, "staged": 2, "committed": True}
    assert sorted(x["name"] for x in client.get("/api/v1/files?q=txt").get_json()["results"]) == \
        ["new-0.txt", "new-1.txt"]


def test_put_pages_out_of_order_or_with_a_repeated_name(client, peer_client):
    a = peer_client("a", files=[entry("kept", n=1)])
    url = "/api/v1/peers/a/files?generation=g&page={}&last={}"
    r = client.put(url.format(3, "true"), json={"files": []}, headers=a.auth)
    assert r.status_code == 409 and r.mimetype == "application/problem+json" and r.get_json()["expected_page"] == 0
    client.put(url.format(0, "false"), json={"files": [entry("x", n=2)]}, headers=a.auth)
    r = client.put(url.format(1, "true"), json={"files": [entry("y", n=3), entry("x", n=4)]}, headers=a.auth)
    assert r.status_code == 400 and r.get_json()["field"] == "files[1].name"
    assert [f["name"] for f in client.get("/api/v1/peers/a/files").get_json()["files"]] == ["kept"]
    r = client.put("/api/v1/peers/a/files?generation=bad%20name&page=0", json={"files": []}, headers=a.auth)
    assert r.status_code == 400 and r.get_json()["field"] == "generation"
