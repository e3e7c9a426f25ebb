"""Piece geometry, the record of verified pieces, resuming a partial, writing pieces in place."""
import hashlib
import os

import pytest

from peer_node.hashing import PieceHasher
from peer_node.pieces import (IOV_MAX, MAX_BUFFERED_PIECE, Geometry, PieceBuffer, PieceRecord, data_pieces,
                              geometry_for, resume, write_at)

PIECE = 64 * 1024
DATA = os.urandom(10 * PIECE + 1234)
SHA = hashlib.sha256(DATA).hexdigest()


def digest(data=DATA, piece=PIECE):
    hasher = PieceHasher(piece)
    hasher.update(data)
    return hasher.finish()


GEOMETRY = Geometry(len(DATA), PIECE, tuple(digest().pieces))


def test_geometry_spans_and_the_short_last_piece():
    g = GEOMETRY
    assert g.count == 11 and g.verified
    assert (g.start(10), g.end(10), g.length(10)) == (10 * PIECE, len(DATA), 1234)
    assert g.span(2, 5) == (2 * PIECE, 3 * PIECE)
    assert Geometry(0, PIECE).count == 0


@pytest.mark.parametrize("piece_size, pieces, why", [
    (None, None, "no piece hashes"),
    ("big", ["0" * 64], "not a number"),
    (MAX_BUFFERED_PIECE + 1, ["0" * 64], "outside"),
    (PIECE, ["0" * 64] * 3, "do not fit"),
    (PIECE, ["0" * 64] * 10 + ["nope"], "not all sha256"),
    (PIECE, "0" * 64, "do not fit"),
])
def test_unusable_piece_hashes_mean_whole_file_verification(piece_size, pieces, why):
    geometry, reason = geometry_for(len(DATA), piece_size, pieces)
    assert not geometry.verified and why in reason
    assert geometry.count > 0  # still pieces for bookkeeping


def test_usable_piece_hashes():
    geometry, reason = geometry_for(str(len(DATA)), PIECE, digest().pieces)
    assert reason == "" and geometry == GEOMETRY


def test_record_round_trip_and_what_it_refuses(tmp_path):
    record = PieceRecord(str(tmp_path / "x.pieces"), SHA, GEOMETRY)
    assert record.load() is None
    done = bytearray(GEOMETRY.count)
    done[0] = done[3] = done[10] = 1
    record.save(done)
    assert record.load() == {0, 3, 10}
    raw = (tmp_path / "x.pieces").read_bytes()
    assert raw.startswith(f"p2p-pieces 1 {SHA} {len(DATA)} {PIECE} 11\n".encode())
    other = PieceRecord(record.path, "f" * 64, GEOMETRY)
    assert other.load() is None  # names another file
    resized = PieceRecord(record.path, SHA, Geometry(len(DATA), 2 * PIECE, None))
    assert resized.load() is None  # other pieces
    (tmp_path / "x.pieces").write_bytes(raw[:-1])
    assert record.load() is None  # truncated
    record.remove()
    assert not os.path.exists(record.path)


def write_partial(path, pieces, data=DATA):
    """A partial as the engine leaves it: only the given pieces written, holes elsewhere."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        for i in pieces:
            os.pwrite(fd, data[GEOMETRY.start(i):GEOMETRY.end(i)], GEOMETRY.start(i))
    finally:
        os.close(fd)


def test_resume_trusts_only_pieces_that_verify_and_hashes_the_prefix(tmp_path):
    part = str(tmp_path / "x.part")
    write_partial(part, [0, 1, 2, 5, 6])
    record = PieceRecord(str(tmp_path / "x.pieces"), SHA, GEOMETRY)
    done = bytearray(GEOMETRY.count)
    for i in (0, 1, 2, 5, 6):
        done[i] = 1
    record.save(done)
    with open(part, "r+b") as f:  # piece 5 rots on disk after it was recorded
        f.seek(5 * PIECE + 7)
        f.write(b"\x00" if DATA[5 * PIECE + 7] else b"\x01")
    got = resume(part, record, GEOMETRY)
    assert [i for i, d in enumerate(got.done) if d] == [0, 1, 2, 6]
    assert got.stale == 1 and got.prefix == 3
    assert got.whole.hexdigest() == hashlib.sha256(DATA[:3 * PIECE]).hexdigest()


def test_resume_without_a_record_finds_written_pieces(tmp_path):
    part = str(tmp_path / "x.part")
    write_partial(part, [1, 4, 10])  # a crash before the first record save
    got = resume(part, PieceRecord(str(tmp_path / "x.pieces"), SHA, GEOMETRY), GEOMETRY)
    assert [i for i, d in enumerate(got.done) if d] == [1, 4, 10]
    assert got.stale == 0 and got.prefix == 0


def test_resume_an_old_prefix_partial_and_cut_an_overlong_one(tmp_path):
    part = tmp_path / "x.part"
    part.write_bytes(DATA[:3 * PIECE + 100])  # what the old stream engine left
    got = resume(str(part), PieceRecord(str(tmp_path / "r"), SHA, GEOMETRY), GEOMETRY)
    assert got.pieces == 3 and got.prefix == 3
    part.write_bytes(DATA + b"junk")
    got = resume(str(part), PieceRecord(str(tmp_path / "r"), SHA, GEOMETRY), GEOMETRY)
    assert got.pieces == GEOMETRY.count and os.path.getsize(part) == len(DATA)


def test_resume_without_piece_hashes_trusts_what_was_written(tmp_path):
    part = str(tmp_path / "x.part")
    geometry = Geometry(len(DATA), PIECE)
    write_partial(part, [0, 1])
    got = resume(part, PieceRecord(str(tmp_path / "r"), SHA, geometry), geometry)
    assert got.pieces == 2 and got.prefix == 0  # the whole-file hash starts from byte 0 later


def test_data_pieces_sees_holes(tmp_path):
    part = str(tmp_path / "x.part")
    write_partial(part, [2, 3, 9])
    fd = os.open(part, os.O_RDONLY)
    try:
        found = data_pieces(fd, GEOMETRY, os.fstat(fd).st_size)
    finally:
        os.close(fd)
    assert found == {2, 3, 9}


def test_write_at_many_small_buffers_lands_exactly_in_range(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"\xee" * 4 * PIECE)
    piece = os.urandom(PIECE)
    views = [memoryview(piece)[i:i + 16] for i in range(0, PIECE, 16)]  # 4096 > IOV_MAX buffers
    assert len(views) > IOV_MAX
    fd = os.open(path, os.O_RDWR)
    try:
        write_at(fd, PIECE, views)
    finally:
        os.close(fd)
    assert path.read_bytes() == b"\xee" * PIECE + piece + b"\xee" * 2 * PIECE


def test_piece_buffer_hashes_what_it_keeps():
    buf = PieceBuffer(GEOMETRY, 10)
    assert (buf.start, buf.end, buf.pos, buf.full) == (10 * PIECE, len(DATA), 10 * PIECE, False)
    tail = memoryview(DATA)[10 * PIECE:]
    buf.add(tail[:1000])
    buf.add(tail[1000:])
    assert buf.full and buf.hexdigest() == GEOMETRY.hashes[10]
    assert b"".join(buf.views) == DATA[10 * PIECE:]
