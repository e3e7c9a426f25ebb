"""The trust blueprint (issue 12): the directory's keys, client sessions, tickets."""
from protos import tickets

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
