"""Transfer tickets: signed by one key, verified offline, refused for every wrong reason."""
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protos import tickets
from protos.tickets import Claims

NOW = 1_800_000_000
SHA = "a" * 64
OTHER_SHA = "b" * 64


@pytest.fixture(scope="module")
def key():
    return Ed25519PrivateKey.generate()


@pytest.fixture(scope="module")
def keys(key):
    return {tickets.key_id(key.public_key()): key.public_key()}


def make(key, **overrides):
    claims = dict(sub="alice", sha=SHA, pur=tickets.DOWNLOAD, exp=NOW + 300, iat=NOW,
                  kid=tickets.key_id(key.public_key()))
    claims.update(overrides)
    return tickets.sign(Claims(**claims), key)


def test_a_genuine_download_ticket_verifies_and_is_short(key, keys):
    ticket = make(key)
    claims = tickets.verify(ticket, keys, NOW + 10, purpose=tickets.DOWNLOAD, sha256=SHA, me="bob")
    assert claims.sub == "alice" and claims.sha == SHA and claims.aud is None
    assert len(ticket) < 400


def test_an_upload_ticket_names_its_target_and_size(key, keys):
    ticket = make(key, pur=tickets.UPLOAD, aud="bob", size=10)
    claims = tickets.verify(ticket, keys, NOW, purpose=tickets.UPLOAD, sha256=SHA, me="bob", size=10)
    assert (claims.aud, claims.size) == ("bob", 10)


@pytest.mark.parametrize("overrides,check,error,words", [
    ({"exp": NOW - 100}, {}, tickets.ExpiredTicket, "expired"),
    ({}, {"sha256": OTHER_SHA}, tickets.WrongTicket, "another file"),
    ({}, {"purpose": tickets.UPLOAD}, tickets.WrongTicket, "another purpose"),
    ({"aud": "carol"}, {}, tickets.WrongTicket, "another peer"),
    ({"pur": tickets.UPLOAD, "aud": "carol", "size": 10},
     {"purpose": tickets.UPLOAD, "size": 10}, tickets.WrongTicket, "another peer"),
    ({"pur": tickets.UPLOAD, "aud": "bob", "size": 10},
     {"purpose": tickets.UPLOAD, "size": 11}, tickets.WrongTicket, "another size"),
])
def test_genuine_tickets_for_something_else_are_refused_saying_why(key, keys, overrides, check, error, words):
    ticket = make(key, **overrides)
    args = {"purpose": tickets.DOWNLOAD, "sha256": SHA, "me": "bob", **check}
    with pytest.raises(error) as refused:
        tickets.verify(ticket, keys, NOW, **args)
    assert words in str(refused.value)


def test_the_leeway_forgives_a_little_clock_difference(key, keys):
    ticket = make(key, exp=NOW - 5)
    assert tickets.verify(ticket, keys, NOW, purpose=tickets.DOWNLOAD, sha256=SHA, leeway_s=30)
    with pytest.raises(tickets.ExpiredTicket):
        tickets.verify(ticket, keys, NOW, purpose=tickets.DOWNLOAD, sha256=SHA, leeway_s=0)


def test_a_ticket_signed_by_another_key_is_forged(keys):
    stranger = Ed25519PrivateKey.generate()
    same_kid = next(iter(keys))
    with pytest.raises(tickets.ForgedTicket, match="not issued by the directory"):
        tickets.verify(make(stranger, kid=same_kid), keys, NOW, purpose=tickets.DOWNLOAD, sha256=SHA)
    with pytest.raises(tickets.ForgedTicket, match="key this peer does not know"):
        tickets.verify(make(stranger), keys, NOW, purpose=tickets.DOWNLOAD, sha256=SHA)


def test_a_changed_claim_breaks_the_signature(key, keys):
    version, payload, signature = make(key).split(".")
    forged_payload = tickets._b64(tickets._unb64(payload).replace(b'"alice"', b'"mallo"'))
    with pytest.raises(tickets.ForgedTicket):
        tickets.verify(f"{version}.{forged_payload}.{signature}", keys, NOW, purpose=tickets.DOWNLOAD,
                       sha256=SHA)


@pytest.mark.parametrize("text", [
    None, "", "v1", "v1..", "v2.e30.AAAA", "v1.!!!.AAAA", "v1.e30.AAAA", "v1.W10.AAAA",  # {} and []
    "v1." + "A" * 3000 + ".AAAA", "v1.ZMOp.AAAA",  # not JSON
    "v1.eyJzdWIiOjEsInNoYSI6MiwicHVyIjozLCJleHAiOiJ4IiwiaWF0IjowLCJraWQiOjR9.AAAA",  # wrong types
])
def test_text_that_is_not_a_ticket_is_malformed(keys, text):
    with pytest.raises(tickets.MalformedTicket):
        tickets.verify(text, keys, NOW, purpose=tickets.DOWNLOAD, sha256=SHA)


def test_peek_reads_the_stated_claims_without_trusting_them(key):
    assert tickets.peek(make(key, sub="mallory"))["sub"] == "mallory"
    assert tickets.peek(make(key))["kid"] == tickets.key_id(key.public_key())


@pytest.mark.parametrize("text", [None, "", "v1", "v1.!!!.AAAA", "v1.W10.AAAA", "v1.ZMOp.AAAA"])
def test_peek_at_what_is_no_ticket_is_empty(text):
    assert tickets.peek(text) == {}


def test_without_a_sha256_the_file_is_left_to_the_caller(key, keys):
    claims = tickets.verify(make(key, sha=OTHER_SHA), keys, NOW, purpose=tickets.DOWNLOAD, sha256=None)
    assert claims.sha == OTHER_SHA


def test_public_keys_round_trip_and_bad_ones_are_refused(key):
    text = tickets.encode_public_key(key.public_key())
    assert tickets.key_id(tickets.decode_public_key(text)) == tickets.key_id(key.public_key())
    for bad in ("", "AAAA", "é", None):
        with pytest.raises(tickets.TicketError):
            tickets.decode_public_key(bad)


@pytest.mark.parametrize("value,ticket", [
    ("Bearer v1.a.b", "v1.a.b"), ("bearer  v1.a.b ", "v1.a.b"), ("Basic v1.a.b", None), ("", None),
    (None, None), ("Bearer ", None),
])
def test_bearer_values(value, ticket):
    assert tickets.from_bearer(value) == ticket
    if ticket:
        assert tickets.from_bearer(tickets.bearer(ticket)) == ticket
