"""The session blueprint: login, logout, heartbeat."""
import pytest

from directory_api import auth

from tests.fixtures.directory import entry
from tests.integration.helpers import wait_until

GOOD = {"peer_id": "alice", "secret": "pw", "grpc_address": "127.0.0.1:50051"}


def test_login_registers_then_requires_same_secret(client):
    r = client.post("/api/v1/login", json=GOOD)
    assert r.status_code == 200
    body = r.get_json()
    assert body["registered"] is True and body["peer_id"] == "alice" and body["lease_s"] == 2 and body["token"]
    again = client.post("/api/v1/login", json=GOOD).get_json()
    assert again["registered"] is False and again["token"] != body["token"]
    wrong = client.post("/api/v1/login", json={**GOOD, "secret": "nope"})
    assert wrong.status_code == 401 and wrong.mimetype == "application/problem+json"


def test_secret_and_token_are_stored_hashed(app, client):
    token = client.post("/api/v1/login", json=GOOD).get_json()["token"]
    store = app.extensions["p2p"].store
    with store.read() as conn:
        row = conn.exec_driver_sql("SELECT secret_hash, token_hash FROM p2p_peers").one()
    # A short secret such as "pw" can occur in the random salt by chance: check the hash's form
    # and that it is the secret's hash, not a search for the secret's letters.
    assert row.secret_hash.startswith(("scrypt:", "pbkdf2:")) and row.secret_hash != GOOD["secret"]
    assert auth.secret_matches(row.secret_hash, GOOD["secret"])
    assert row.token_hash == auth.token_hash(token) and token not in row.token_hash


def test_login_with_files_indexes_them(client):
    client.post("/api/v1/login", json={**GOOD, "files": [entry("a.txt")]})
    assert client.get("/api/v1/peers/alice/files").get_json()["files"][0]["name"] == "a.txt"


BAD_LOGINS = [
    ({}, "peer_id"),
    ({**GOOD, "peer_id": ""}, "peer_id"),
    ({**GOOD, "peer_id": "x" * 65}, "peer_id"),
    ({**GOOD, "peer_id": "bad id"}, "peer_id"),
    ({**GOOD, "peer_id": 7}, "peer_id"),
    ({k: v for k, v in GOOD.items() if k != "secret"}, "secret"),
    ({**GOOD, "secret": ""}, "secret"),
    ({**GOOD, "secret": None}, "secret"),
    ({**GOOD, "grpc_address": "nohost"}, "grpc_address"),
    ({**GOOD, "grpc_address": "host:0"}, "grpc_address"),
    ({**GOOD, "grpc_address": "host:70000"}, "grpc_address"),
    ({**GOOD, "grpc_address": ":50051"}, "grpc_address"),
    ({**GOOD, "accept_uploads": "yes"}, "accept_uploads"),
    ({**GOOD, "free_bytes": -1}, "free_bytes"),
    ({**GOOD, "free_bytes": 1.5}, "free_bytes"),
    ({**GOOD, "files": "x"}, "files"),
    ({**GOOD, "files": [{"name": "../x", "size": 1, "sha256": "a" * 64}]}, "files[0].name"),
]


@pytest.mark.parametrize("body,field", BAD_LOGINS)
def test_login_rejects_bad_bodies(client, body, field):
    r = client.post("/api/v1/login", json=body)
    assert r.status_code == 400
    assert r.mimetype == "application/problem+json"
    assert r.get_json()["field"] == field


def test_login_rejects_non_object_json(client):
    r = client.post("/api/v1/login", json=[1, 2])
    assert r.status_code == 400 and r.get_json()["field"] == "body"


def test_heartbeat_renews_and_reports_state(app, client, peer_client):
    alice = peer_client("alice")
    r = alice.heartbeat()
    assert r.status_code == 200 and r.get_json() == {"lease_s": 2, "replicate": [], "verify": [], "audit": []}
    assert alice.heartbeat(free_bytes=123, accept_uploads=False).status_code == 200
    # No lease writer runs: the heartbeat wrote its own renewal before it was answered.
    peer = client.get("/api/v1/peers").get_json()[0]
    assert peer["free_bytes"] == 123 and peer["accept_uploads"] is False


def test_with_the_lease_writer_running_renewals_arrive_in_a_batch(app, client, peer_client):
    app.extensions["p2p"].start()
    alice = peer_client("alice")
    assert alice.heartbeat(free_bytes=321).status_code == 200
    # Written within lease_flush_s (0.05 s by default).
    wait_until(lambda: client.get("/api/v1/peers").get_json()[0]["free_bytes"] == 321, timeout=5, interval=0.01)


def test_heartbeat_with_no_body_at_all(client, peer_client):
    alice = peer_client("alice")
    assert client.post("/api/v1/heartbeat", headers=alice.auth).status_code == 200


@pytest.mark.parametrize("body,field", [
    ({"free_bytes": -5}, "free_bytes"),
    ({"free_bytes": "many"}, "free_bytes"),
    ({"accept_uploads": 1}, "accept_uploads"),
])
def test_heartbeat_rejects_bad_bodies(peer_client, body, field):
    r = peer_client("alice").heartbeat(**body)
    assert r.status_code == 400 and r.get_json()["field"] == field


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer"}, {"Authorization": "Basic abc"},
                                     {"Authorization": "Bearer not-a-token"}])
def test_heartbeat_needs_a_valid_token(client, headers):
    r = client.post("/api/v1/heartbeat", json={}, headers=headers)
    assert r.status_code == 401 and r.mimetype == "application/problem+json"
    assert r.headers["WWW-Authenticate"].startswith("Bearer")


def test_logout_kills_token_and_hides_peer(client, peer_client):
    alice = peer_client("alice", files=[entry("song.mp3")])
    assert client.get("/api/v1/files?q=song").get_json()["results"]
    assert client.post("/api/v1/logout", headers=alice.auth).status_code == 204
    assert client.get("/api/v1/files?q=song").get_json()["results"] == []
    assert client.get("/api/v1/peers").get_json() == []
    assert alice.heartbeat().status_code == 401
    assert client.post("/api/v1/logout", headers=alice.auth).status_code == 401


def test_lease_expiry_hides_peer_and_kills_token(make_app, clock):
    client = make_app(lease_s=1, clock=clock).test_client()
    r = client.post("/api/v1/login", json={**GOOD, "files": [entry("song.mp3")]})
    token = r.get_json()["token"]
    clock.advance(1.0)
    assert client.get("/api/v1/files?q=song").get_json()["results"]  # live while last_seen + lease >= now
    clock.advance(0.01)
    assert client.get("/api/v1/files?q=song").get_json()["results"] == []
    assert client.get("/api/v1/peers").get_json() == []
    assert client.get("/api/v1/peers/alice/files").status_code == 404
    assert client.post("/api/v1/heartbeat", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    # logging in again brings the old index back to life
    client.post("/api/v1/login", json=GOOD)
    assert client.get("/api/v1/files?q=song").get_json()["results"]
