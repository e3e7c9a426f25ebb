"""directory_api.store.clients: client sessions, apart from the peer's own session."""
from tests.directory_api.store.helpers import LIVE, NOW, add_peer


def test_a_client_session_authenticates_until_it_expires(store):
    assert store.register_peer("a", "hash", NOW)
    store.start_client_session("a", "ct", NOW, NOW + 60)
    assert store.authenticate_client("ct", NOW + 60) == "a"
    assert store.authenticate_client("ct", NOW + 61) is None
    assert store.authenticate_client("other", NOW) is None
    assert store.authenticate("ct", LIVE) is None  # never a peer session


def test_a_client_session_leaves_the_peer_session_alone(store):
    add_peer(store, "a", token="pt")
    before = store.peer("a")
    store.start_client_session("a", "ct", NOW + 5, NOW + 65)
    assert store.peer("a") == before
    assert store.authenticate("pt", LIVE) == "a"
    assert [p["peer_id"] for p in store.live_peers(LIVE)] == ["a"]


def test_ending_and_sweeping_client_sessions(store):
    assert store.register_peer("a", "hash", NOW)
    store.start_client_session("a", "c1", NOW, NOW + 10)
    store.start_client_session("a", "c2", NOW, NOW + 100)
    assert store.end_client_session("c1") and not store.end_client_session("c1")
    store.start_client_session("a", "c3", NOW, NOW + 10)
    assert store.drop_expired_client_sessions(NOW + 50) == 1
    assert store.authenticate_client("c2", NOW + 50) == "a"


def test_address_holder_is_a_live_other_peer(store):
    add_peer(store, "a")
    address = store.peer("a")["grpc_address"]
    assert store.address_holder(address, LIVE, "b") == "a"
    assert store.address_holder(address, LIVE, "a") is None
    assert store.address_holder(address, NOW + 1, "b") is None  # a's lease is over
    assert store.address_holder("127.0.0.1:1", LIVE, "b") is None
