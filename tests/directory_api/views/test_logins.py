"""The failed-login limiter (issue 12): 429 + Retry-After per peer_id and per address, shared by processes."""
import pytest

from directory_api import auth

GOOD = {"peer_id": "alice", "secret": "pw", "grpc_address": "127.0.0.1:50051"}
WRONG = {**GOOD, "secret": "guess"}


def _login(client, body):
    return client.post("/api/v1/login", json=body)


@pytest.fixture
def hashes(monkeypatch):
    """Counts the secret checks the directory makes (each one is a scrypt in production)."""
    calls = []
    real = auth.secret_matches
    monkeypatch.setattr(auth, "secret_matches", lambda stored, secret: calls.append(secret) or real(stored, secret))
    return calls


def test_past_the_limit_a_peer_id_gets_429_before_any_hashing(make_app, clock, hashes):
    client = make_app(clock=clock).test_client()
    assert _login(client, GOOD).status_code == 200
    for _ in range(5):
        assert _login(client, WRONG).status_code == 401
        clock.advance(1)
    checked = len(hashes)
    r = _login(client, GOOD)  # even the right secret waits: the guesser may be the one who has it
    assert r.status_code == 429 and r.mimetype == "application/problem+json"
    assert len(hashes) == checked, "a refused login must not hash the secret"
    assert r.headers["Retry-After"] == "55" and r.get_json()["retry_after"] == 55
    assert "alice" in r.get_json()["detail"]
    assert _login(client, {**GOOD, "peer_id": "bob", "grpc_address": None}).status_code == 200  # not held up
    clock.advance(55)  # the first failure leaves the window
    assert _login(client, GOOD).status_code == 200
    assert _login(client, WRONG).status_code == 401  # the success cleared alice's count
    assert _login(client, WRONG).status_code == 401


def test_past_the_limit_an_address_gets_429_for_every_peer_id(make_app, clock, hashes):
    client = make_app(clock=clock, login_failures_per_address=3).test_client()
    for name in ("a", "b", "c"):
        assert _login(client, {**GOOD, "peer_id": name, "grpc_address": None}).status_code == 200
        assert _login(client, {**WRONG, "peer_id": name}).status_code == 401
    r = _login(client, {**GOOD, "peer_id": "d", "grpc_address": None})
    assert r.status_code == 429 and "address 127.0.0.1" in r.get_json()["detail"]
    other = client.post("/api/v1/login", json={**GOOD, "peer_id": "d", "grpc_address": None},
                        environ_base={"REMOTE_ADDR": "127.0.0.2"})
    assert other.status_code == 200


def test_no_limit_when_off(make_app, clock):
    client = make_app(clock=clock, login_failures_per_minute=0, login_failures_per_address=0).test_client()
    _login(client, GOOD)
    assert [_login(client, WRONG).status_code for _ in range(30)] == [401] * 30


def test_two_directory_processes_on_one_database_share_the_count(store, db_url, make_app, clock):
    # `store` emptied the database (PostgreSQL keeps its tables between tests)
    one, two = (make_app(clock=clock, database_url=db_url).test_client() for _ in range(2))
    assert _login(one, GOOD).status_code == 200
    codes = [_login(client, WRONG).status_code for client in (one, two, one, two, one)]
    assert codes == [401] * 5
    assert _login(two, GOOD).status_code == 429 and _login(one, GOOD).status_code == 429


def test_the_sweep_forgets_old_failures(make_app, clock):
    app = make_app(clock=clock)
    client = app.test_client()
    _login(client, GOOD)
    _login(client, WRONG)
    store = app.extensions["p2p"].store
    assert len(store.login_failures(["peer:alice", "addr:127.0.0.1"], 0)["peer:alice"]) == 1
    clock.advance(61)
    app.extensions["p2p"].liveness.sweep(store)
    assert store.login_failures(["peer:alice", "addr:127.0.0.1"], 0) == {"peer:alice": [], "addr:127.0.0.1": []}
