"""Unit tests for peer_node.hashing."""
import hashlib
import os

import pytest

from peer_node import hashing
from peer_node.hashing import hash_file, read_range, sha256_file
from protos import rules


@pytest.mark.parametrize("size", [0, 1, 1000, 4096, 4097, 10000])
def test_hash_file_matches_hashlib_and_the_piece_rules(tmp_path, size):
    data = os.urandom(size)
    path = tmp_path / "f"
    path.write_bytes(data)
    digest = hash_file(path, piece_size=4096, read_size=1500)
    assert digest.size == size
    assert digest.sha256 == hashlib.sha256(data).hexdigest()
    expected = [hashlib.sha256(data[i:i + 4096]).hexdigest() for i in range(0, size, 4096)]
    assert digest.pieces == expected and len(expected) == rules.piece_count(size, 4096)


def test_sha256_file_with_limit(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"abcdef")
    assert sha256_file(path, limit=3).hexdigest() == hashlib.sha256(b"abc").hexdigest()
    assert sha256_file(path).hexdigest() == hashlib.sha256(b"abcdef").hexdigest()


def test_read_range_chunks(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(bytes(range(100)))
    fd = os.open(path, os.O_RDONLY)
    try:
        blocks = list(read_range(fd, 10, 25, 10))
        assert [(o, len(d)) for o, d in blocks] == [(10, 10), (20, 10), (30, 5)]
        assert b"".join(d for _, d in blocks) == bytes(range(10, 35))
        assert list(read_range(fd, 95, 20, 10)) == [(95, bytes(range(95, 100)))]  # short file
    finally:
        os.close(fd)


def test_rules_are_the_contracts_not_copies():
    # callers import these from peer_node.hashing; they must be protos.rules' own objects
    for name in ("DEFAULT_PIECE_SIZE", "Digest", "PieceHasher", "is_sha256"):
        assert getattr(hashing, name) is getattr(rules, name), name
