"""directory_api.auth: tokens, secrets, and how a request proves which peer sent it."""
import pytest
from flask import g

from directory_api import auth
from directory_api.errors import Forbidden, Unauthorized


def test_tokens_are_random_and_long():
    tokens = {auth.new_token() for _ in range(100)}
    assert len(tokens) == 100 and min(len(t) for t in tokens) >= 43  # 256 bits, base64url


def test_token_hash_is_a_stable_sha256_that_does_not_contain_the_token():
    token = auth.new_token()
    assert auth.token_hash(token) == auth.token_hash(token) != auth.token_hash(token + "x")
    assert len(auth.token_hash(token)) == 64 and token not in auth.token_hash(token)
    assert len(auth.token_hash("\ud800")) == 64  # a lone surrogate from a header cannot crash it


def test_secrets_are_salted_and_checked():
    method = "pbkdf2:sha256:1000"
    first, second = auth.hash_secret("pw", method), auth.hash_secret("pw", method)
    assert first != second and "pw" not in first
    assert auth.secret_matches(first, "pw") and auth.secret_matches(second, "pw")
    assert not auth.secret_matches(first, "PW") and not auth.secret_matches(first, "")


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer ", "Bearer    ", "Basic abc", "Token abc", "abc"])
def test_bearer_token_refuses_missing_or_malformed_headers(app, header):
    headers = {} if header is None else {"Authorization": header}
    with app.test_request_context(headers=headers):
        with pytest.raises(Unauthorized, match="Bearer <token>"):
            auth.bearer_token()


@pytest.mark.parametrize("header", ["Bearer abc", "bearer abc", "BEARER  abc "])
def test_bearer_token_reads_the_token(app, header):
    with app.test_request_context(headers={"Authorization": header}):
        assert auth.bearer_token() == "abc"


def _whoami(app, headers, path="/api/v1/logout", method="POST"):
    """Run auth.enforce for a request to path (an endpoint marked auth.PEER by default); g.peer_id."""
    with app.test_request_context(path, method=method, headers=headers):
        auth.enforce()
        return g.get("peer_id")


def test_enforce_sets_the_caller_from_a_live_token(app, peer_client):
    alice = peer_client("alice")
    assert _whoami(app, alice.auth) == "alice"
    with pytest.raises(Unauthorized, match="log in again"):
        _whoami(app, {"Authorization": "Bearer not-a-token"})


def test_enforce_refuses_a_token_whose_lease_lapsed(make_app, clock):
    from tests.fixtures.directory import PeerClient

    app = make_app(lease_s=2, clock=clock)
    alice = PeerClient(app.test_client(), "alice")
    clock.advance(2.5)
    with pytest.raises(Unauthorized):
        _whoami(app, alice.auth)


def test_enforce_checks_the_owner_of_the_path_and_leaves_open_endpoints_alone(app, peer_client):
    alice = peer_client("alice")
    assert _whoami(app, alice.auth, "/api/v1/peers/alice/files", "PUT") == "alice"
    with pytest.raises(Forbidden, match="alice may not change the records of bob"):
        _whoami(app, alice.auth, "/api/v1/peers/bob/files", "PUT")
    assert _whoami(app, {}, "/api/v1/peers/bob/files", "GET") is None  # browsing needs no token


def test_mark_refuses_an_unknown_mode():
    with pytest.raises(ValueError, match="unknown auth mode"):
        auth.mark(lambda: None, "admin")


def test_require_owner(app):
    with app.test_request_context():
        g.peer_id = "alice"
        auth.require_owner("alice")
        with pytest.raises(Forbidden, match="alice may not change the records of bob"):
            auth.require_owner("bob")
