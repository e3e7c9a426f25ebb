"""The contract's rules themselves (protos/rules.py): ids, digests, names, pieces."""
import hashlib
import os
import re
import subprocess
import sys

import pytest

from protos import rules
from tests.names import NAME_VERDICT_IDS, NAME_VERDICTS
from tests.procs import ROOT

SHA = hashlib.sha256(b"x").hexdigest()


@pytest.mark.parametrize("value,ok", [
    ("a", True), ("peer-1", True), ("Peer_2.b", True), ("x" * 64, True), ("...", True),
    ("", False), ("x" * 65, False), ("has space", False), ("a/b", False), ("a:b", False),
    ("é", False), ("ａ", False),  # fullwidth letter: not ASCII
    ("a\n", False), ("\na", False), ("a\x00", False), (None, False), (7, False), (b"a", False),
])
def test_peer_id(value, ok):
    assert rules.is_peer_id(value) is ok


@pytest.mark.parametrize("value,ok", [
    (SHA, True), ("0" * 64, True),
    (SHA.upper(), False), (SHA[:-1], False), (SHA + "0", False), ("g" * 64, False),
    (SHA + "\n", False), (" " + SHA[1:], False), ("٠" * 64, False),  # Arabic-Indic zero
    (None, False), (SHA.encode(), False),
])
def test_sha256(value, ok):
    assert rules.is_sha256(value) is ok


@pytest.mark.parametrize("pattern,good", [(rules.PEER_ID_PATTERN, "peer-1"), (rules.SHA256_PATTERN, SHA)])
def test_patterns_are_anchored_for_openapi(pattern, good):
    # an OpenAPI (ECMA) pattern matches anywhere unless anchored: search must not find it inside junk
    assert re.search(pattern, good)
    assert not re.search(pattern, f"!{good}!")


@pytest.mark.parametrize("name,reason", NAME_VERDICTS, ids=NAME_VERDICT_IDS)
def test_name_problem(name, reason):
    problem = rules.name_problem(name)
    if reason is None:
        assert problem is None
    else:
        assert problem is not None and reason in problem


@pytest.mark.parametrize("value", [None, 1, b"a.txt", ["a"]])
def test_name_problem_of_a_non_string(value):
    assert rules.name_problem(value) == "is not a string"


@pytest.mark.parametrize("component,reserved", [
    (".p2p", True), (".P2P", True), (".P2p", True), ("p2p", False), (".p2p ", False), ("..p2p", False),
])
def test_reserved_component(component, reserved):
    assert rules.is_reserved_component(component) is reserved


def test_name_rule_text_names_the_limits():
    for word in (rules.WORK_DIR, str(rules.MAX_NAME_BYTES), str(rules.MAX_COMPONENT_BYTES)):
        assert word in rules.NAME_RULE


def test_piece_sizes():
    assert rules.DEFAULT_PIECE_SIZE == 4 * 1024 * 1024
    assert 0 < rules.MIN_PIECE_SIZE <= rules.DEFAULT_PIECE_SIZE


@pytest.mark.parametrize("size,piece_size,count", [
    (0, 10, 0), (1, 10, 1), (9, 10, 1), (10, 10, 1), (11, 10, 2), (100, 10, 10), (101, 10, 11),
    (2**63 - 1, 4 * 1024 * 1024, 2**41),
])
def test_piece_count(size, piece_size, count):
    assert rules.piece_count(size, piece_size) == count


@pytest.mark.parametrize("size,piece_size", [(10, 0), (10, -1), (-1, 10)])
def test_piece_count_refuses_nonsense(size, piece_size):
    with pytest.raises(ValueError):
        rules.piece_count(size, piece_size)


@pytest.mark.parametrize("index,size,piece_size,expected", [
    (0, 25, 10, (0, 10)), (1, 25, 10, (10, 10)), (2, 25, 10, (20, 5)),
    (0, 10, 10, (0, 10)), (0, 1, 10, (0, 1)), (3, 40, 10, (30, 10)),
])
def test_piece_range(index, size, piece_size, expected):
    assert rules.piece_range(index, size, piece_size) == expected


@pytest.mark.parametrize("index,size,piece_size", [(3, 25, 10), (-1, 25, 10), (0, 0, 10), (1, 10, 10)])
def test_piece_range_refuses_missing_pieces(index, size, piece_size):
    with pytest.raises(ValueError, match="does not exist"):
        rules.piece_range(index, size, piece_size)


@pytest.mark.parametrize("size", [0, 1, 999, 1000, 1001, 10_000, 10_001])
def test_piece_hasher_agrees_with_count_range_and_hash(size):
    data = os.urandom(size)
    hasher = rules.PieceHasher(1000)
    hasher.update(data)
    digest = hasher.finish()
    assert digest.size == size and digest.sha256 == hashlib.sha256(data).hexdigest()
    assert digest.piece_size == 1000
    count = rules.piece_count(size, 1000)
    assert len(digest.pieces) == count
    for i in range(count):
        offset, length = rules.piece_range(i, size, 1000)
        assert digest.pieces[i] == rules.piece_hash(data[offset:offset + length])


def test_empty_stream_has_no_pieces():
    digest = rules.PieceHasher(rules.MIN_PIECE_SIZE).finish()
    assert digest.pieces == [] and digest.sha256 == hashlib.sha256(b"").hexdigest()


def test_piece_hasher_is_independent_of_update_sizes():
    data = os.urandom(10_000)
    a, b = rules.PieceHasher(1000), rules.PieceHasher(1000)
    a.update(data)
    for i in range(0, len(data), 7):
        b.update(memoryview(data)[i:i + 7])
    assert a.finish() == b.finish()


@pytest.mark.parametrize("piece_size", [0, -5])
def test_piece_hasher_refuses_nonsense(piece_size):
    with pytest.raises(ValueError, match="positive"):
        rules.PieceHasher(piece_size)


def test_rules_import_neither_side_nor_its_frameworks():
    # both sides import this module, so it must not drag in the other side's dependencies
    code = ("import sys, protos.rules; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "{'grpc', 'flask', 'sqlalchemy', 'werkzeug', 'directory_api', 'peer_node', 'google'}))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def _over_bytes(name):
    return len(name.encode("utf-8", "surrogatepass")) > rules.MAX_NAME_BYTES or any(
        len(c.encode("utf-8", "surrogatepass")) > rules.MAX_COMPONENT_BYTES for c in name.split("/"))


@pytest.mark.parametrize("name", [n for n, _ in NAME_VERDICTS] + [".p", ".p2", ".p2px", ".P2P", "x/.P2p/y", ".px"])
def test_name_pattern_agrees_with_name_problem_but_for_byte_lengths(name):
    """NAME_PATTERN (what the OpenAPI document shows) says what name_problem says, byte lengths aside."""
    if _over_bytes(name) or any("\ud800" <= c <= "\udfff" for c in name):
        pytest.skip("a rule the pattern cannot state (UTF-8 byte lengths, valid UTF-8)")
    matches = re.fullmatch(rules.NAME_PATTERN, name) is not None
    assert matches == (rules.name_problem(name) is None), name
