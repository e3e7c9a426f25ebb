"""directory_api.validation: every check names its field; tables of bad input, then the good ones.

File names have their own table (the contract's name rules); here the other checks.
"""
import pytest
from flask import Flask

from directory_api import validation
from directory_api.errors import BadRequest, PayloadTooLarge, ValidationError
from protos.rules import MIN_PIECE_SIZE
from tests.fixtures.directory import entry, sha


def rejects(check, value, *args, field):
    with pytest.raises(ValidationError) as err:
        check(value, *args)
    assert err.value.field == field
    return err.value


@pytest.mark.parametrize("value", ["", "x" * 65, "bad id", "a/b", "é", "a\x00", 7, None, ["a"], True])
def test_peer_id_rejects(value):
    rejects(validation.peer_id, value, field="peer_id")


@pytest.mark.parametrize("value", ["a", "A.b_c-9", "x" * 64])
def test_peer_id_accepts(value):
    assert validation.peer_id(value) == value


@pytest.mark.parametrize("value", ["", "a" * 63, "a" * 65, "A" * 64, "g" * 64, " " + "a" * 63, 1, None])
def test_sha256_rejects(value):
    rejects(validation.sha256, value, "files[2].sha256", field="files[2].sha256")


def test_sha256_accepts():
    assert validation.sha256(sha(1)) == sha(1)


@pytest.mark.parametrize("value", ["", "x" * 1025, "a\x00b", None, 123, b"pw"])
def test_secret_rejects(value):
    rejects(validation.secret, value, field="secret")


@pytest.mark.parametrize("value", ["p", "x" * 1024, "pässwörd with spaces"])
def test_secret_accepts(value):
    assert validation.secret(value) == value


@pytest.mark.parametrize("value", [
    "nohost", "host:", ":50051", "host:0", "host:65536", "host:-1", "host:5o", "host:٥٠", "ho st:1",
    "-host:1", "::1:50051", "[::1", "host:1:2", 50051, None,
])
def test_grpc_address_rejects(value):
    rejects(validation.grpc_address, value, field="grpc_address")


@pytest.mark.parametrize("value", ["127.0.0.1:50051", "peer.example.org:1", "[::1]:65535", "localhost:8080"])
def test_grpc_address_accepts(value):
    assert validation.grpc_address(value) == value


@pytest.mark.parametrize("value", [-1, 2**63, 1.0, "1", None, True, False])
def test_int64_rejects(value):
    rejects(validation.int64, value, "size", field="size")


def test_int64_bounds():
    assert validation.int64(0, "size") == 0 and validation.int64(2**63 - 1, "size") == 2**63 - 1
    rejects(validation.int64, 0, "piece_size", 1, field="piece_size")


@pytest.mark.parametrize("raw", ["0", "-1", "abc", "1.5", "٣", " 5"])
def test_limit_rejects(raw):
    rejects(validation.limit, raw, field="limit")


@pytest.mark.parametrize("raw, expected", [(None, 20), ("", 20), ("1", 1), ("200", 200), ("10000", 200)])
def test_limit_defaults_and_caps(raw, expected):
    assert validation.limit(raw) == expected


@pytest.mark.parametrize("raw", ["maybe", "yes", "2", "tru"])
def test_flag_rejects(raw):
    rejects(validation.flag, raw, "withdraw", field="withdraw")


@pytest.mark.parametrize("raw, expected", [(None, False), ("", False), ("true", True), ("TRUE", True),
                                           ("1", True), ("false", False), ("0", False)])
def test_flag_accepts(raw, expected):
    assert validation.flag(raw, "withdraw") is expected


@pytest.mark.parametrize("raw", ["x" * 1025, "a\x00b"])
def test_query_text_rejects(raw):
    rejects(validation.query_text, raw, field="q")


@pytest.mark.parametrize("raw, expected", [(None, ""), ("", ""), ("x" * 1024, "x" * 1024), ("Ünïcode", "Ünïcode")])
def test_query_text_accepts(raw, expected):
    assert validation.query_text(raw) == expected


@pytest.fixture
def request_with():
    """A Flask request context whose body is the given bytes."""
    app = Flask(__name__)

    def make(body: bytes):
        return app.test_request_context(method="POST", data=body, content_type="application/json")

    return make


@pytest.mark.parametrize("body, error, field", [
    (b"", ValidationError, "body"),
    (b"   ", ValidationError, "body"),
    (b"[1, 2]", ValidationError, "body"),
    (b'"text"', ValidationError, "body"),
    (b"null", ValidationError, "body"),
    (b"{not json", BadRequest, None),
    (b"\xff\xfe", BadRequest, None),
])
def test_json_body_rejects(request_with, body, error, field):
    from flask import request

    with request_with(body):
        with pytest.raises(error) as err:
            validation.json_body(request)
    assert getattr(err.value, "field", None) == field


def test_json_body_allows_empty_when_asked(request_with):
    from flask import request

    with request_with(b""):
        assert validation.json_body(request, allow_empty=True) == {}
    with request_with(b'{"a": 1}'):
        assert validation.json_body(request) == {"a": 1}


GOOD = entry("a.txt", n=1)
PS = MIN_PIECE_SIZE
BIG = entry("big.bin", n=9, size=2 * PS + 1)

BAD_LISTS = [
    ("not a list", "files"),
    ({"name": "a"}, "files"),
    ([GOOD, "x"], "files[1]"),
    ([{"size": 1, "sha256": sha(1)}], "files[0].name"),
    ([{"name": "a", "sha256": sha(1)}], "files[0].size"),
    ([{"name": "a", "size": 1}], "files[0].sha256"),
    ([{**GOOD, "size": -1}], "files[0].size"),
    ([{**GOOD, "size": "10"}], "files[0].size"),
    ([{**GOOD, "sha256": "A" * 64}], "files[0].sha256"),
    ([GOOD, {**GOOD, "sha256": sha(2)}], "files[1].name"),  # the same name twice
    ([{**GOOD, "piece_size": PS}], "files[0].pieces"),
    ([{**GOOD, "pieces": [sha(1)]}], "files[0].piece_size"),
    ([{**GOOD, "piece_size": 0, "pieces": [sha(1)]}], "files[0].piece_size"),
    ([{**GOOD, "piece_size": PS - 1, "pieces": [sha(1)]}], "files[0].piece_size"),  # below the minimum
    ([{**BIG, "piece_size": PS, "pieces": [sha(1)]}], "files[0].pieces"),  # 3 pieces' worth needs 3 digests
    ([{**BIG, "piece_size": PS, "pieces": "abc"}], "files[0].pieces"),
    ([{**BIG, "piece_size": PS, "pieces": [sha(1), sha(2), "x"]}], "files[0].pieces[2]"),
]


@pytest.mark.parametrize("value, field", BAD_LISTS)
def test_file_list_rejects(value, field):
    rejects(validation.file_list, value, "files", 10, field=field)


def test_file_list_is_bounded():
    with pytest.raises(PayloadTooLarge) as err:
        validation.file_list([entry(f"f{i}", n=i) for i in range(11)], "files", 10)
    assert err.value.status == 413 and err.value.extra == {"field": "files"}


def test_file_list_normalises_entries():
    pieces = {**entry("b.bin", n=2, size=PS + 1), "piece_size": PS, "pieces": [sha(3), sha(4)]}
    assert validation.file_list([GOOD, pieces], "files", 10) == [
        {**GOOD, "piece_size": None, "pieces": None},
        {**pieces},
    ]
    empty = {**entry("empty", n=5, size=0), "piece_size": PS, "pieces": []}  # an empty file has no pieces
    assert validation.file_list([empty], "files", 10)[0]["pieces"] == []
