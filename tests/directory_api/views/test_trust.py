"""The trust blueprint (issue 12): the directory's keys, client sessions, tickets."""
import pytest

from protos import tickets
from tests.fixtures.directory import entry

GOOD = {"peer_id": "alice", "secret": "pw", "grpc_address": "127.0.0.1:50051"}


def test_keys_publish_the_signing_key_without_auth(app, client):
    r = client.get("/api/v1/keys")
    assert r.status_code == 200
    [key] = r.get_json()["keys"]
    assert key == app.extensions["p2p"].signer.public()
    assert key["alg"] == "Ed25519" and tickets.key_id(tickets.decode_public_key(key["public_key"])) == key["kid"]


def test_login_answer_carries_the_same_key(client):
    body = client.post("/api/v1/login", json=GOOD).get_json()
    assert body["directory_key"] == client.get("/api/v1/keys").get_json()["keys"][0]
    assert body["client"] is False


# --- client sessions -------------------------------------------------------------------------

CLIENT = {"peer_id": "alice", "secret": "pw"}


def _bearer(token):
    return {"Authorization": f"Bearer {token}"}


def test_a_client_login_is_never_live_and_does_not_heartbeat(client):
    r = client.post("/api/v1/login", json=CLIENT)
    assert r.status_code == 200
    body = r.get_json()
    assert body["client"] is True and body["registered"] is True and body["lease_s"] == 2
    assert client.get("/api/v1/peers").get_json() == []
    beat = client.post("/api/v1/heartbeat", json={}, headers=_bearer(body["token"]))
    assert beat.status_code == 401 and "client sessions do not heartbeat" in beat.get_json()["detail"]
    assert client.get("/api/v1/peers").get_json() == []
    # the id it registered keeps its secret for the peer login that follows
    assert client.post("/api/v1/login", json={**CLIENT, "secret": "other"}).status_code == 401
    assert client.post("/api/v1/login", json={**CLIENT, "grpc_address": None}).get_json()["client"] is True


def test_a_client_login_leaves_the_running_peer_alone(client, peer_client):
    alice = peer_client("alice", secret="pw", files=[entry("a.txt")])
    before = client.get("/api/v1/peers").get_json()
    token = client.post("/api/v1/login", json=CLIENT).get_json()["token"]
    assert alice.heartbeat().status_code == 200  # the peer's token still works
    after = client.get("/api/v1/peers").get_json()
    assert [(p["peer_id"], p["grpc_address"], p["files"]) for p in after] == \
        [(p["peer_id"], p["grpc_address"], p["files"]) for p in before]
    # a client token may not act as the peer
    r = client.put("/api/v1/peers/alice/files", json={"files": []}, headers=_bearer(token))
    assert r.status_code == 401 and "client session" in r.get_json()["detail"]
    # its logout ends the client session only
    assert client.post("/api/v1/logout", headers=_bearer(token)).status_code == 204
    assert client.post("/api/v1/logout", headers=_bearer(token)).status_code == 401
    assert alice.heartbeat().status_code == 200
    assert len(client.get("/api/v1/peers").get_json()) == 1


@pytest.mark.parametrize("extra", [{"files": [entry("a.txt")]}, {"files": []}, {"accept_uploads": True},
                                   {"free_bytes": 10}, {"grpc_address": None, "free_bytes": 0}])
def test_a_client_login_with_peer_fields_is_refused(client, extra):
    r = client.post("/api/v1/login", json={**CLIENT, **extra})
    assert r.status_code == 422 and r.mimetype == "application/problem+json"
    assert r.get_json()["field"] == next(k for k in extra if k != "grpc_address")
    assert client.post("/api/v1/login", json={**CLIENT, "files": None}).status_code == 200


def test_a_client_session_expires(make_app, clock):
    client = make_app(clock=clock, client_session_s=60).test_client()
    token = client.post("/api/v1/login", json=CLIENT).get_json()["token"]
    assert client.post("/api/v1/logout", headers=_bearer(token)).status_code == 204
    token = client.post("/api/v1/login", json=CLIENT).get_json()["token"]
    clock.advance(61)
    r = client.post("/api/v1/logout", headers=_bearer(token))
    assert r.status_code == 401 and "expired" in r.get_json()["detail"]
