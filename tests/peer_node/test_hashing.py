"""Unit tests for peer_node.hashing."""
import hashlib
import os

import pytest

from peer_node.hashing import PieceHasher, hash_file, is_sha256, read_range, sha256_file


@pytest.mark.parametrize("size", [0, 1, 1000, 4096, 4097, 10000])
def test_hash_file_matches_hashlib_and_pieces(tmp_path, size):
    data = os.urandom(size)
    path = tmp_path / "f"
    path.write_bytes(data)
    digest = hash_file(path, piece_size=4096, read_size=1500)
    assert digest.size == size
    assert digest.sha256 == hashlib.sha256(data).hexdigest()
    expected = [hashlib.sha256(data[i:i + 4096]).hexdigest() for i in range(0, size, 4096)]
    assert digest.pieces == expected


def test_piece_hasher_is_independent_of_update_sizes():
    data = os.urandom(10_000)
    a, b = PieceHasher(1000), PieceHasher(1000)
    a.update(data)
    for i in range(0, len(data), 7):
        b.update(data[i:i + 7])
    assert a.finish() == b.finish()


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


@pytest.mark.parametrize("text,ok", [("a" * 64, True), ("A" * 64, False), ("a" * 63, False),
                                     ("g" * 64, False), (None, False)])
def test_is_sha256(text, ok):
    assert is_sha256(text) is ok
