"""The ticket check alone (no grpc): the directory's keys, refresh on an unknown kid, every refusal."""
import hashlib

import pytest

from peer_node.admission import Admission, Keyring
from peer_node.errors import TicketRefused, TicketRequired
from protos import tickets
from tests.fixtures.tickets import Mint

SHA = hashlib.sha256(b"data").hexdigest()
OTHER = hashlib.sha256(b"other").hexdigest()


class Clock:
    def __init__(self, now=1000.0):
        self.now = now

    def __call__(self):
        return self.now


@pytest.fixture
def mint():
    return Mint()


@pytest.fixture
def admission(mint):
    keyring = Keyring()
    assert keyring.learn(mint.key_dict)
    return Admission("me", keyring)


@pytest.mark.parametrize("key", [
    None, {}, {"public_key": "not base64 !"}, {"public_key": "AAAA"}, {"alg": "RS256", "public_key": "x"},
    "a string",
])
def test_unusable_keys_are_ignored(key):
    keyring = Keyring()
    assert keyring.learn(key) is False
    assert keyring.keys() == {}


def test_a_key_id_that_does_not_name_the_key_is_ignored(mint):
    assert Keyring().learn({**mint.key_dict, "kid": "0123456789abcdef"}) is False


def test_keys_are_bounded_oldest_dropped():
    keyring = Keyring(max_keys=3)
    mints = [Mint() for _ in range(5)]
    for m in mints:
        keyring.learn(m.key_dict)
    assert list(keyring.keys()) == [m.kid for m in mints[2:]]


def test_refresh_is_rate_limited_and_survives_a_down_directory(mint):
    clock, calls = Clock(), []

    def fetch():
        calls.append(clock.now)
        if len(calls) == 1:
            raise OSError("directory down")
        return [mint.key_dict]

    keyring = Keyring(fetch=fetch, refresh_every=30, clock=clock)
    assert keyring.refresh() is False and calls == [1000.0]
    assert keyring.refresh() is False and calls == [1000.0]  # too soon: no call
    clock.now += 31
    assert keyring.refresh() is True and mint.kid in keyring.keys()
    clock.now += 31
    assert keyring.refresh() is False and len(calls) == 3  # nothing new


def test_an_unknown_kid_fetches_the_keys_once(mint):
    calls = []
    keyring = Keyring(fetch=lambda: calls.append(1) or [mint.key_dict])
    admission = Admission("me", keyring)
    claims = admission.admit(mint.bearer(SHA), tickets.DOWNLOAD)
    assert claims.sha == SHA and calls == [1]
    admission.admit(mint.bearer(SHA), tickets.DOWNLOAD)
    assert calls == [1]  # known now: no call per transfer
    stranger = Mint()
    for _ in range(5):
        with pytest.raises(TicketRefused, match="key this peer does not know"):
            admission.admit(stranger.bearer(SHA), tickets.DOWNLOAD)
    assert calls == [1]  # made-up key ids cost at most one call per refresh period


@pytest.mark.parametrize("value", [None, "", "Bearer", "Bearer   ", "Basic dXNlcjpwYXNz", "v1.a.b"])
def test_no_ticket_is_ticket_required(admission, value):
    with pytest.raises(TicketRequired, match="only with a ticket.*authorization: Bearer"):
        admission.admit(value, tickets.DOWNLOAD)


def test_a_good_download_ticket(admission, mint):
    claims = admission.admit(mint.bearer(SHA, sub="alice"), tickets.DOWNLOAD)
    assert (claims.sub, claims.sha, claims.pur) == ("alice", SHA, tickets.DOWNLOAD)
    assert admission.match(claims, SHA) is claims


def test_a_good_upload_ticket(admission, mint):
    claims = admission.admit(mint.bearer(SHA, tickets.UPLOAD, aud="me", size=4), tickets.UPLOAD)
    assert admission.match(claims, SHA, 4) is claims


@pytest.mark.parametrize("make,purpose,reason", [
    (lambda m: Mint().bearer(SHA), tickets.DOWNLOAD, "key this peer does not know"),
    (lambda m: m.bearer(SHA, ttl=-100), tickets.DOWNLOAD, "expired"),
    (lambda m: m.bearer(SHA, tickets.UPLOAD, aud="me"), tickets.DOWNLOAD, "another purpose"),
    (lambda m: m.bearer(SHA), tickets.UPLOAD, "another purpose"),
    (lambda m: m.bearer(SHA, tickets.UPLOAD, aud="someone-else", size=4), tickets.UPLOAD, "another peer"),
    (lambda m: m.bearer(SHA, tickets.UPLOAD, size=4), tickets.UPLOAD, "another peer"),
    (lambda m: m.bearer(SHA, aud="someone-else"), tickets.DOWNLOAD, "another peer"),
    (lambda m: "Bearer " + m.ticket(SHA)[:-4] + "AAAA", tickets.DOWNLOAD, "does not verify"),
    (lambda m: "Bearer v1.e30.AAAA", tickets.DOWNLOAD, "not a ticket"),
    (lambda m: "Bearer " + "x" * 5000, tickets.DOWNLOAD, "too long"),
])
def test_refusals_say_why(admission, mint, make, purpose, reason):
    with pytest.raises(TicketRefused, match=reason):
        admission.admit(make(mint), purpose)


def test_another_file_or_size_is_refused_by_match(admission, mint):
    claims = admission.admit(mint.bearer(SHA, tickets.UPLOAD, aud="me", size=4), tickets.UPLOAD)
    with pytest.raises(TicketRefused, match="another file"):
        admission.match(claims, OTHER, 4)
    with pytest.raises(TicketRefused, match="another size"):
        admission.match(claims, SHA, 5)
