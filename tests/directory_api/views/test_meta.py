"""The meta blueprint (health) and the problem+json rendering of every error."""
import pytest

PROBLEM_KEYS = {"type", "title", "status", "detail"}


def test_health(client):
    r = client.get("/api/v1/health")
    assert r.status_code == 200 and r.get_json() == {"status": "ok"}


def test_health_reports_a_broken_store(app, client):
    app.extensions["p2p"].store.engine.dispose()
    app.extensions["p2p"].store.ping = lambda: (_ for _ in ()).throw(RuntimeError("db down"))
    r = client.get("/api/v1/health")
    assert r.status_code == 503 and r.mimetype == "application/problem+json"


def test_a_store_error_is_a_503_problem_carrying_its_data(app, client):
    from directory_api.errors import WriteLockTimeout

    def locked(*_a, **_k):
        raise WriteLockTimeout(0.2)

    app.extensions["p2p"].store.live_peers = locked
    r = client.get("/api/v1/peers")
    assert r.status_code == 503 and r.mimetype == "application/problem+json"
    assert r.get_json() == {"type": "urn:p2p:problem:unavailable", "title": "Service Unavailable", "status": 503,
                            "detail": "the database stayed locked by another writer for 0.2 s; try again",
                            "timeout_s": 0.2}


@pytest.mark.parametrize("method,path,kwargs,status", [
    ("get", "/nope", {}, 404),
    ("get", "/api/v1/nope", {}, 404),
    ("delete", "/api/v1/login", {}, 405),
    ("get", "/api/v1/heartbeat", {}, 405),
    ("post", "/api/v1/login", {"data": "{not json", "content_type": "application/json"}, 400),
    ("post", "/api/v1/login", {"data": b"\xff\xfe", "content_type": "application/json"}, 400),
    ("post", "/api/v1/login", {"data": "", "content_type": "application/json"}, 400),
    ("post", "/api/v1/login", {"data": "x" * (8 * 1024 * 1024 + 1), "content_type": "application/json"}, 413),
])
def test_errors_are_problem_json(client, method, path, kwargs, status):
    r = getattr(client, method)(path, **kwargs)
    assert r.status_code == status
    assert r.mimetype == "application/problem+json"
    body = r.get_json()
    assert PROBLEM_KEYS <= set(body) and body["status"] == status
    assert "<html" not in r.get_data(as_text=True).lower()


def test_405_keeps_allow_header(client):
    r = client.delete("/api/v1/login")
    assert "POST" in r.headers["Allow"]


def test_unexpected_errors_hide_the_traceback(app, client, caplog):
    def boom(*_a, **_k):
        raise RuntimeError("secret internals")

    app.extensions["p2p"].store.live_peers = boom
    r = client.get("/api/v1/peers")
    assert r.status_code == 500 and r.mimetype == "application/problem+json"
    text = r.get_data(as_text=True)
    assert "secret internals" not in text and "Traceback" not in text
    assert "secret internals" in caplog.text  # the operator still sees it
