"""Crafted requests that once got a 500 (issue 13): each is a 4xx problem, changes nothing, and
replication still hands out copies afterwards; the planner's reserved-bytes sum cannot overflow."""

import pytest

from tests.fixtures.directory import PeerClient, entry

MAX_INT64 = 2**63 - 1
DEEP = 5000


def nested(depth: int) -> str:
    """A JSON value nested depth levels deep."""
    return "[" * depth + "]" * depth


def _cursor(value) -> str:
    """The cursor the directory would write for row id value (hex), were it a row id."""
    return f"{value:x}"


LOGIN = '{"peer_id": "mallory", "secret": "pw", "grpc_address": "127.0.0.1:1"'
# (name, method, path, raw body or None, needs mallory's token)
CRAFTED = [
    ("deep JSON on /login", "post", "/api/v1/login", LOGIN + ', "files": ' + nested(DEEP) + "}", False),
    ("deep JSON on /heartbeat", "post", "/api/v1/heartbeat", '{"free_bytes": ' + nested(DEEP) + "}", True),
    ("deep JSON on PUT files", "put", "/api/v1/peers/mallory/files", '{"files": ' + nested(DEEP) + "}", True),
    ("deep JSON on POST files", "post", "/api/v1/peers/mallory/files", '{"files": ' + nested(DEEP) + "}", True),
    ("lone surrogate in the secret", "post", "/api/v1/login",
     '{"peer_id": "mallory2", "secret": "\\ud800", "grpc_address": "127.0.0.1:1"}', False),
    ("lone surrogate in a key", "post", "/api/v1/heartbeat", '{"\\udc00": 1}', True),
    ("lone surrogate in a file name", "put", "/api/v1/peers/mallory/files",
     '{"files": [{"name": "a\\ud800", "size": 1, "sha256": "' + "a" * 64 + '"}]}', True),
    ("cursor past int64", "get", "/api/v1/files?cursor=" + _cursor(2**63), None, False),
    ("cursor far past int64", "get", "/api/v1/files?q=abc&cursor=" + _cursor(10**30), None, False),
    ("a size past int64", "put", "/api/v1/peers/mallory/files",
     '{"files": [{"name": "a", "size": 9223372036854775808, "sha256": "' + "a" * 64 + '"}]}', True),
    ("NaN for free_bytes", "post", "/api/v1/heartbeat", '{"free_bytes": NaN}', True),
    ("a 5000-digit integer", "post", "/api/v1/heartbeat", '{"free_bytes": ' + "9" * 5000 + "}", True),
    ("bad UTF-8", "post", "/api/v1/login", b'{"peer_id": "m\xff", "secret": "pw", "grpc_address": "h:1"}', False),
]


def snapshot(client):
    """Everything a client can see of the directory's state."""
    return {"peers": client.get("/api/v1/peers").get_json(),
            "files": client.get("/api/v1/files?limit=200").get_json(),
            "mallory": client.get("/api/v1/peers/mallory/files").get_json(),
            "replication": client.get("/api/v1/replication").get_json()}


@pytest.fixture
def network(make_app, clock):
    """A directory with R = 2, a holder with a file, a backup that accepts uploads, and mallory."""
    app = make_app(replication=2, replication_interval_s=0, clock=clock)
    client = app.test_client()
    holder = PeerClient(client, "holder", files=[entry("song.ogg", n=1)])
    PeerClient(client, "backup")
    mallory = PeerClient(client, "mallory", files=[entry("kept.txt", n=2)])
    return client, holder, mallory, clock


def copies_handed_out(client, holder, clock):
    """A real planning round for holder (replication_interval_s=0: every heartbeat plans)."""
    clock.advance(0.1)
    r = holder.heartbeat()
    assert r.status_code == 200, r.get_json()
    return r.get_json()["replicate"]


@pytest.mark.parametrize("name, method, path, body, authed", CRAFTED, ids=[c[0] for c in CRAFTED])
def test_a_crafted_request_is_a_4xx_problem_and_changes_nothing(network, name, method, path, body, authed):
    client, holder, mallory, clock = network
    before = snapshot(client)
    headers = mallory.auth if authed else {}
    data = body.encode() if isinstance(body, str) else body
    r = getattr(client, method)(path, data=data, headers=headers, content_type="application/json")
    assert 400 <= r.status_code < 500, (name, r.status_code, r.get_data(as_text=True)[:300])
    assert r.mimetype == "application/problem+json"
    assert {"type", "title", "status", "detail"} <= set(r.get_json())
    assert snapshot(client) == before
    orders = copies_handed_out(client, holder, clock)
    assert [(o["sha256"], o["to_peer_id"]) for o in orders] in ([(entry("x", n=1)["sha256"], "backup")],
                                                                [(entry("x", n=1)["sha256"], "mallory")])


def test_two_huge_copies_on_one_backup_do_not_stop_planning(make_app, clock):
    """Two 2^62+1-byte files planned onto one backup: their reserved sum passes int64, and planning goes on."""
    client = make_app(replication=2, replication_interval_s=0, clock=clock).test_client()
    huge = 2**62 + 1
    x = PeerClient(client, "x", accept_uploads=False, files=[entry("huge-x.bin", n="x", size=huge)])
    y = PeerClient(client, "y", accept_uploads=False, files=[entry("huge-y.bin", n="y", size=huge)])
    PeerClient(client, "backup")  # free_bytes unknown: room for anything
    z = PeerClient(client, "z", accept_uploads=False, files=[entry("small.txt", n="z")])
    for peer in (x, y):
        [order] = copies_handed_out(client, peer, clock)
        assert order["to_peer_id"] == "backup"
    # backup now awaits 2^63+2 bytes: an int64 SUM of them overflows
    [order] = copies_handed_out(client, z, clock)
    assert order["to_peer_id"] == "backup" and order["sha256"] == entry("s", n="z")["sha256"]
    summary = client.get("/api/v1/replication")
    assert summary.status_code == 200 and summary.get_json()["pending_copies"] == 3


def test_a_body_nested_just_within_the_limit_is_read(network):
    client, _holder, mallory, _clock = network
    r = client.post("/api/v1/heartbeat", data='{"free_bytes": ' + nested(31) + "}", headers=mallory.auth,
                    content_type="application/json")
    assert r.status_code == 400 and r.get_json()["field"] == "free_bytes"  # parsed, then refused by the model
    r = client.post("/api/v1/heartbeat", data='{"free_bytes": ' + nested(32) + "}", headers=mallory.auth,
                    content_type="application/json")
    assert r.status_code == 400 and r.get_json()["field"] == "body" and "32" in r.get_json()["detail"]
