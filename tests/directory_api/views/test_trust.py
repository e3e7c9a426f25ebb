"""The trust blueprint (issue 12): the directory's keys, client sessions, tickets."""
import time

import pytest

from protos import tickets
from tests.fixtures.directory import entry, sha

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


# --- tickets ---------------------------------------------------------------------------------


def _claims(app, ticket, purpose=tickets.DOWNLOAD, sha256=None, me=None, size=None):
    key = app.extensions["p2p"].signer.key.public_key()
    return tickets.verify(ticket, {tickets.key_id(key): key}, time.time(), purpose=purpose, sha256=sha256, me=me,
                          size=size)


def _ask(client, token=None, **body):
    return client.post("/api/v1/tickets", json=body, headers=_bearer(token) if token else {})


def test_a_download_ticket_names_the_caller_and_the_file(app, client, peer_client):
    bob = peer_client("bob", files=[entry("a.txt")])
    token = client.post("/api/v1/login", json=CLIENT).get_json()["token"]  # a client session may ask
    r = _ask(client, token, sha256=sha("a.txt"))
    assert r.status_code == 200
    body = r.get_json()
    claims = _claims(app, body["ticket"], sha256=sha("a.txt"), me="anyone")
    assert (claims.sub, claims.pur, claims.aud, claims.exp) == ("alice", "download", None, body["expires_at"])
    assert isinstance(body["expires_at"], int) and body["expires_at"] > time.time()
    # naming the holder makes it the only peer that may serve it
    named = _ask(client, bob.token, sha256=sha("a.txt"), holder="bob").get_json()["ticket"]
    claims = _claims(app, named, sha256=sha("a.txt"), me="bob")
    assert (claims.sub, claims.aud) == ("bob", "bob")


def test_a_download_ticket_needs_a_live_holder(make_app, clock):
    app = make_app(clock=clock)
    client = app.test_client()
    from tests.fixtures.directory import PeerClient

    bob = PeerClient(client, "bob", files=[entry("a.txt")])
    PeerClient(client, "carol")
    r = _ask(client, bob.token, sha256=sha("other"))
    assert r.status_code == 404 and r.mimetype == "application/problem+json"
    r = _ask(client, bob.token, sha256=sha("a.txt"), holder="carol")
    assert r.status_code == 404 and "carol does not hold" in r.get_json()["detail"]
    token = client.post("/api/v1/login", json=CLIENT).get_json()["token"]
    clock.advance(5)  # bob's lease lapses
    assert _ask(client, token, sha256=sha("a.txt")).status_code == 404


def test_without_a_session_only_an_open_network_gives_download_tickets(make_app):
    closed = make_app().test_client()
    from tests.fixtures.directory import PeerClient

    PeerClient(closed, "bob", files=[entry("a.txt")])
    assert _ask(closed, sha256=sha("a.txt")).status_code == 401
    assert _ask(closed, "forged", sha256=sha("a.txt")).status_code == 401


def test_an_open_network_gives_anonymous_download_tickets(tmp_path, make_app):
    app = make_app(open_downloads=True, database_url=f"sqlite:///{tmp_path}/open.db")
    client = app.test_client()
    from tests.fixtures.directory import PeerClient

    PeerClient(client, "bob", files=[entry("a.txt")])
    r = _ask(client, sha256=sha("a.txt"))
    assert r.status_code == 200
    assert _claims(app, r.get_json()["ticket"], sha256=sha("a.txt")).sub == "anonymous"
    r = _ask(client, sha256=sha("a.txt"), purpose="upload", holder="bob")
    assert r.status_code == 401  # uploads always need a session
    assert _ask(client, "forged", sha256=sha("a.txt")).status_code == 401  # a bad token stays an error


def test_an_upload_ticket_names_the_target_and_the_size(app, client, peer_client):
    bob = peer_client("bob", files=[entry("a.txt", size=10)])
    peer_client("carol")
    token = client.post("/api/v1/login", json=CLIENT).get_json()["token"]
    known = _ask(client, token, sha256=sha("a.txt"), purpose="upload", holder="carol").get_json()["ticket"]
    claims = _claims(app, known, tickets.UPLOAD, sha("a.txt"), me="carol", size=10)
    assert (claims.sub, claims.aud, claims.size) == ("alice", "carol", 10)
    other = _ask(client, token, sha256=sha("a.txt"), purpose="upload", holder="carol", size=11).get_json()["ticket"]
    assert _claims(app, other, tickets.UPLOAD, sha("a.txt"), me="carol").size == 10  # the index decides
    new = _ask(client, bob.token, sha256=sha("new"), purpose="upload", holder="carol", size=7).get_json()["ticket"]
    assert _claims(app, new, tickets.UPLOAD, sha("new"), me="carol", size=7).size == 7


@pytest.mark.parametrize("body,status,field", [
    ({"holder": None}, 422, "holder"),
    ({}, 422, "holder"),
    ({"holder": "nobody"}, 409, None),
    ({"holder": "dave"}, 409, None),  # does not accept uploads
    ({"holder": "carol", "sha256": sha("new")}, 422, "size"),
])
def test_upload_tickets_refused(client, peer_client, body, status, field):
    bob = peer_client("bob", files=[entry("a.txt", size=10)])
    peer_client("carol")
    peer_client("dave", accept_uploads=False)
    r = _ask(client, bob.token, **{"sha256": sha("a.txt"), "purpose": "upload", **body})
    assert r.status_code == status and r.mimetype == "application/problem+json", r.get_json()
    assert r.get_json().get("field") == field


@pytest.mark.parametrize("body,field", [
    ({}, "sha256"), ({"sha256": "x"}, "sha256"), ({"sha256": "a" * 64, "purpose": "steal"}, "purpose"),
    ({"sha256": "a" * 64, "holder": "bad id"}, "holder"), ({"sha256": "a" * 64, "size": -1}, "size"),
])
def test_ticket_requests_are_validated(client, peer_client, body, field):
    bob = peer_client("bob")
    r = _ask(client, bob.token, **body)
    assert r.status_code == 400 and r.get_json()["field"] == field


# --- addresses -------------------------------------------------------------------------------


def test_a_live_peers_address_cannot_be_claimed_by_another_peer_id(make_app, clock):
    client = make_app(clock=clock).test_client()
    from tests.fixtures.directory import PeerClient

    victim = PeerClient(client, "victim", address="10.0.0.5:7000")
    r = client.post("/api/v1/login", json={"peer_id": "impostor", "secret": "x", "grpc_address": "10.0.0.5:7000"})
    assert r.status_code == 409 and r.mimetype == "application/problem+json"
    assert r.get_json()["field"] == "grpc_address" and "victim" in r.get_json()["detail"]
    assert [p["peer_id"] for p in client.get("/api/v1/peers").get_json()] == ["victim"]
    victim.login()  # the holder itself logs in again at its address
    assert victim.heartbeat().status_code == 200
    clock.advance(5)  # the victim's lease lapses: the address is free
    assert client.post("/api/v1/login", json={"peer_id": "newcomer", "secret": "x",
                                              "grpc_address": "10.0.0.5:7000"}).status_code == 200


def test_ipv6_spellings_of_one_address_conflict(client):
    first = {"peer_id": "one", "secret": "x", "grpc_address": "[fd00::1]:7000"}
    assert client.post("/api/v1/login", json=first).status_code == 200
    second = {"peer_id": "two", "secret": "x", "grpc_address": "[FD00:0:0::1]:7000"}
    assert client.post("/api/v1/login", json=second).status_code == 409
    assert client.get("/api/v1/peers").get_json()[0]["grpc_address"] == "[fd00::1]:7000"
