"""The files blueprint: search and one file's details."""
import pytest

from protos.rules import MIN_PIECE_SIZE
from tests.fixtures.directory import entry, sha


def test_search_groups_by_sha256_with_every_live_holder(client, peer_client):
    peer_client("a", files=[entry("Holiday Video.mp4", n=1), entry("notes.txt", n=2)])
    peer_client("b", address="10.0.0.2:7000", files=[entry("holiday video (copy).mp4", n=1)])
    body = client.get("/api/v1/files?q=HOLIDAY").get_json()
    assert body["next_cursor"] is None
    [result] = body["results"]
    assert result["sha256"] == sha(1) and result["size"] == 10
    assert result["holders"] == [
        {"peer_id": "a", "grpc_address": client.get("/api/v1/peers").get_json()[0]["grpc_address"]},
        {"peer_id": "b", "grpc_address": "10.0.0.2:7000"},
    ]


def test_search_paginates_with_opaque_cursor(client, peer_client):
    peer_client("a", files=[entry(f"file {i:03}.dat", n=i) for i in range(25)])
    names, url = [], "/api/v1/files?q=file&limit=10"
    while url:
        body = client.get(url).get_json()
        names += [r["name"] for r in body["results"]]
        url = f"/api/v1/files?q=file&limit=10&cursor={body['next_cursor']}" if body["next_cursor"] else None
    assert names == [f"file {i:03}.dat" for i in range(25)]


def test_search_limit_is_capped(client, peer_client):
    peer_client("a", files=[entry(f"f{i}", n=i) for i in range(210)])
    body = client.get("/api/v1/files?limit=1000").get_json()
    assert len(body["results"]) == 200 and body["next_cursor"]
    assert len(client.get("/api/v1/files").get_json()["results"]) == 20


@pytest.mark.parametrize("query,field", [
    ("limit=0", "limit"), ("limit=-1", "limit"), ("limit=abc", "limit"), ("limit=1.5", "limit"),
    ("cursor=garbage", "cursor"), ("cursor=eyJ4IjoxfQ", "cursor"), ("q=" + "x" * 1025, "q"), ("q=a%00b", "q"),
])
def test_search_rejects_bad_parameters(client, query, field):
    r = client.get(f"/api/v1/files?{query}")
    assert r.status_code == 400 and r.mimetype == "application/problem+json"
    assert r.get_json()["field"] == field


def test_file_detail(client, peer_client):
    pieces, size = [sha("p1"), sha("p2")], MIN_PIECE_SIZE + 1
    peer_client("a", files=[entry("big.iso", n=1, size=size, piece_size=MIN_PIECE_SIZE, pieces=pieces)])
    peer_client("b", files=[entry("same.iso", n=1, size=size)])
    body = client.get(f"/api/v1/files/{sha(1)}").get_json()
    assert body["sha256"] == sha(1) and body["size"] == size
    assert body["names"] == ["big.iso", "same.iso"]
    assert [h["peer_id"] for h in body["holders"]] == ["a", "b"]
    assert body["piece_size"] == MIN_PIECE_SIZE and body["pieces"] == pieces
    assert body["replication"] == {"target": 1, "live_holders": 2, "pending": [], "withdrawn": False,
                                   "proven": 0, "unproven": 2, "refuted": 0}


def test_file_detail_errors(client):
    assert client.get(f"/api/v1/files/{sha(404)}").status_code == 404
    r = client.get("/api/v1/files/xyz")
    assert r.status_code == 400 and r.get_json()["field"] == "sha256"
