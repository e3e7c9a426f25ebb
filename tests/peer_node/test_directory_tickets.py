"""DirectoryClient's wave-3 calls against a fake directory: client login, keys, tickets, reports."""
import pytest

from peer_node.directory import DirectoryClient
from peer_node.errors import Unauthorized
from tests.fixtures.fake_directory import FakeDirectory

SHA = "ab" * 32


@pytest.fixture
def fake():
    d = FakeDirectory()
    yield d
    d.close()


@pytest.fixture
def client(fake):
    c = DirectoryClient(fake.url)
    yield c
    c.close()


def test_login_without_an_address_is_a_client_session(fake, client):
    answer = client.login("alice", "alice-secret")
    assert answer["client"] is True and answer["directory_key"] == fake.mint.key_dict
    assert fake.calls("/login")[0][3] == {"peer_id": "alice", "secret": "alice-secret"}
    client.login("alice", "alice-secret", "127.0.0.1:5000", accept_uploads=True)
    assert fake.calls("/login")[1][3]["grpc_address"] == "127.0.0.1:5000"


def test_keys(fake, client):
    assert client.keys() == [fake.mint.key_dict]


def test_ticket_with_and_without_a_session(fake, client):
    with pytest.raises(Unauthorized):
        client.ticket(SHA)
    assert fake.calls("/tickets")[0][2] is None  # no token: asked anonymously
    fake.open_downloads = True
    ticket, expires_at = client.ticket(SHA)
    assert ticket.startswith("v1.") and isinstance(expires_at, int)
    client.login("alice", "alice-secret")
    client.ticket(SHA, "upload", holder="bob", size=3)
    method, _, auth, body = fake.calls("/tickets")[-1]
    assert auth == f"Bearer {client.token}" and body == {"sha256": SHA, "purpose": "upload", "holder": "bob", "size": 3}


def test_reports_go_to_their_paths(fake, client):
    client.login("alice", "alice-secret")
    for call in (lambda: client.report_corrupt("bob", SHA), lambda: client.report_verified("bob", SHA),
                 lambda: client.audit_result("a1", False, "piece 3 differs")):
        try:
            call()
        except Exception:
            pass  # the fake knows none of them: only the request matters here
    paths = [(m, p, b) for m, p, _, b in fake.requests if p not in ("/login",)]
    assert paths == [("POST", f"/peers/bob/files/{SHA}/corrupt", {}), ("POST", f"/peers/bob/files/{SHA}/verified", {}),
                     ("POST", "/audits/a1", {"ok": False, "detail": "piece 3 differs"})]
