"""Claims over the API: corrupt and verified reports, verify orders and audits in heartbeat answers,
audit answers, and a liar caught before the real holder dies (SQLite and PostgreSQL)."""
import pytest

from protos import tickets
from tests.fixtures.directory import FakeClock, PeerClient, entry, sha

X = entry("song.mp3", n=1, size=10 * 1024 * 1024)


@pytest.fixture
def claims_app(make_app, db_url):
    """A directory with R = 2 that plans on every heartbeat, on each database, with a clock tests move."""
    from devtools.store_tools import truncate
    from directory_api.store import Store

    store = Store(db_url)
    store.create_schema()
    truncate(store)
    store.dispose()
    clock = FakeClock()
    app = make_app(clock=clock, database_url=db_url, replication=2, replication_interval_s=0, lease_s=60,
                   replication_deadline_s=5)
    app.clock = clock
    return app


def url(peer_id, sha256, report):
    return f"/api/v1/peers/{peer_id}/files/{sha256}/{report}"


def replication(client, sha256=X["sha256"]):
    return client.get(f"/api/v1/files/{sha256}").get_json()["replication"]


def test_a_corrupt_report_orders_the_holder_to_verify_once(claims_app):
    client = claims_app.test_client()
    holder = PeerClient(client, "holder", files=[X])
    downloader = PeerClient(client, "downloader")
    r = client.post(url("holder", X["sha256"], "corrupt"), headers=downloader.auth)
    assert r.status_code == 202
    assert holder.heartbeat().get_json()["verify"] == [X["sha256"]]
    assert holder.heartbeat().get_json()["verify"] == []  # handed out once
    assert client.post(url("holder", X["sha256"], "corrupt"), headers=downloader.auth).status_code == 202
    assert holder.heartbeat().get_json()["verify"] == []  # a report repeated within the interval: nothing
    assert replication(client)["unproven"] == 1  # the report alone proves or refutes nothing


@pytest.mark.parametrize("report", ["corrupt", "verified"])
def test_reports_about_a_file_the_peer_does_not_list_or_about_oneself(claims_app, report):
    client = claims_app.test_client()
    holder = PeerClient(client, "holder", files=[X])
    other = PeerClient(client, "other")
    assert client.post(url("holder", sha(2), report), headers=other.auth).status_code == 404
    assert client.post(url("nobody", X["sha256"], report), headers=other.auth).status_code == 404
    r = client.post(url("holder", X["sha256"], report), headers=holder.auth)
    assert r.status_code == 403 and r.content_type == "application/problem+json"
    assert client.post(url("holder", X["sha256"], report)).status_code == 401
    assert client.post(url("holder", "NOT-A-DIGEST", report), headers=other.auth).status_code == 400


def test_a_verified_report_proves_an_unproven_claim_never_a_refuted_one(claims_app):
    client = claims_app.test_client()
    PeerClient(client, "holder", files=[X])
    PeerClient(client, "liar", files=[X])
    downloader = PeerClient(client, "downloader")
    assert client.post(url("holder", X["sha256"], "verified"), headers=downloader.auth).status_code == 204
    claims_app.extensions["p2p"].store.set_proof("liar", X["sha256"], 2, 0.0)
    assert client.post(url("liar", X["sha256"], "verified"), headers=downloader.auth).status_code == 204
    assert {k: replication(client)[k] for k in ("proven", "unproven", "refuted")} == {
        "proven": 1, "unproven": 0, "refuted": 1}


def test_a_liar_beside_the_owner_does_not_make_the_file_look_safe(claims_app):
    client = claims_app.test_client()
    owner = PeerClient(client, "owner", files=[X])
    PeerClient(client, "liar", files=[X], accept_uploads=False)
    PeerClient(client, "spare")
    summary = client.get("/api/v1/replication").get_json()
    assert (summary["below_target"], summary["unproven_claims"]) == (1, 2)
    assert [o["to_peer_id"] for o in owner.heartbeat().get_json()["replicate"]] == ["spare"]


def test_the_audit_catches_the_liar_and_a_real_copy_is_planned(claims_app):
    client = claims_app.test_client()
    ctx = claims_app.extensions["p2p"]
    owner = PeerClient(client, "owner", files=[X])
    liar = PeerClient(client, "liar", files=[X], accept_uploads=False)
    downloader = PeerClient(client, "downloader", accept_uploads=False)
    # A downloader verified the owner's pieces: proven + min(1, unproven) = 2, the file looks safe...
    assert client.post(url("owner", X["sha256"], "verified"), headers=downloader.auth).status_code == 204
    assert owner.heartbeat().get_json()["replicate"] == []
    spare = PeerClient(client, "spare")
    assert ctx.auditing.schedule(claims_app.clock.now) == 1  # ...until the liar's claim is audited
    [order] = owner.heartbeat().get_json()["audit"]
    assert order["target_peer_id"] == "liar" and order["target_address"] == liar.address
    assert order["sha256"] == X["sha256"] and 0 <= order["offset"] < X["size"] and 0 < order["length"] <= 4 << 20
    keys = {k["kid"]: tickets.decode_public_key(k["public_key"]) for k in [ctx.signer.public()]}
    granted = tickets.verify(order["ticket"], keys, claims_app.clock.now, purpose="download", sha256=X["sha256"],
                             me="liar")
    assert (granted.sub, granted.aud) == ("owner", "liar")
    assert owner.heartbeat().get_json()["audit"] == []  # handed out once
    path = f"/api/v1/audits/{order['audit_id']}"
    assert client.post(path, json={"ok": False}, headers=spare.auth).status_code == 409  # not spare's audit
    r = client.post(path, json={"ok": False, "detail": "bytes differ"}, headers=owner.auth)
    assert r.status_code == 204
    assert client.post(path, json={"ok": True}, headers=owner.auth).status_code == 409  # answered already
    [hit] = client.get("/api/v1/files?q=song").get_json()["results"]
    assert [h["peer_id"] for h in hit["holders"]] == ["owner"]
    detail = client.get(f"/api/v1/files/{X['sha256']}").get_json()
    assert [h["peer_id"] for h in detail["holders"]] == ["owner"] and detail["replication"]["refuted"] == 1
    assert liar.heartbeat().get_json()["verify"] == [X["sha256"]]
    # The real copy: planned from the owner to the spare, confirmed by the spare, which is proven then.
    assert [o["to_peer_id"] for o in owner.heartbeat().get_json()["replicate"]] == ["spare"]
    spare.add_files([X])
    state = replication(client)
    assert (state["proven"], state["unproven"], state["refuted"]) == (2, 0, 1)
    assert client.get("/api/v1/replication").get_json()["at_target"] == 1


def test_a_passed_audit_proves_the_claim(claims_app):
    client = claims_app.test_client()
    ctx = claims_app.extensions["p2p"]
    owner = PeerClient(client, "owner", files=[X])
    PeerClient(client, "backup", files=[X])
    ctx.store.set_proof("owner", X["sha256"], 1, 0.0)
    assert ctx.auditing.schedule(claims_app.clock.now) == 1
    [order] = owner.heartbeat().get_json()["audit"]
    assert client.post(f"/api/v1/audits/{order['audit_id']}", json={"ok": True}, headers=owner.auth).status_code == 204
    assert replication(client)["proven"] == 2


@pytest.mark.parametrize("path, body, status", [
    ("/api/v1/audits/" + "0" * 32, {"ok": True}, 404),
    ("/api/v1/audits/not-an-id", {"ok": True}, 400),
    ("/api/v1/audits/" + "0" * 32, {"ok": "yes"}, 400),
    ("/api/v1/audits/" + "0" * 32, {}, 400),
    ("/api/v1/audits/" + "0" * 32, {"ok": False, "detail": "x" * 1001}, 400),
])
def test_bad_audit_answers(claims_app, path, body, status):
    client = claims_app.test_client()
    auditor = PeerClient(client, "auditor")
    r = client.post(path, json=body, headers=auditor.auth)
    assert r.status_code == status and r.content_type == "application/problem+json"
    assert client.post(path, json=body).status_code == 401


def test_a_failed_push_from_a_claimed_holder_moves_the_copy_to_another_source(claims_app):
    client = claims_app.test_client()
    liar = PeerClient(client, "liar", files=[X], accept_uploads=False)
    owner = PeerClient(client, "owner", files=[X])
    PeerClient(client, "spare")
    [order] = liar.heartbeat().get_json()["replicate"]  # the liar heartbeats first: it is asked to push
    assert order["to_peer_id"] == "spare"
    claims_app.clock.advance(6)  # ...and never does (the deadline is 5 s)
    assert liar.heartbeat().get_json()["replicate"] == []  # passed over as the source
    assert [o["to_peer_id"] for o in owner.heartbeat().get_json()["replicate"]] == ["spare"]


def test_a_failed_push_from_the_only_holder_is_tried_again(claims_app):
    client = claims_app.test_client()
    owner = PeerClient(client, "owner", files=[X])
    PeerClient(client, "spare")
    assert owner.heartbeat().get_json()["replicate"]
    claims_app.clock.advance(6)
    assert [o["to_peer_id"] for o in owner.heartbeat().get_json()["replicate"]] == ["spare"]
