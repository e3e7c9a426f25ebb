"""download() around the engine, against in-process peers: destination rules, resume, fallback, push."""
import hashlib
import logging
import os

import pytest

from peer_node.errors import AlreadyExists, ChecksumMismatch, NoHolders, NotFound, UnsafeName
from peer_node.hashing import PieceHasher
from peer_node.servicer import stop
from peer_node.transfer import (FileRecord, Holder, destination, download, find_file, partial_path, push,
                                record_path)
from tests.fixtures.peer import flip_bytes, record_of

PIECE = 64 * 1024
DATA = os.urandom(6 * PIECE + 17)
SHA = hashlib.sha256(DATA).hexdigest()
DEAD = Holder("dead", "127.0.0.1:9")


def holder(peer, peer_id="p"):
    return Holder(peer_id, peer.address)


def counting(peer):
    """Count the Download calls a peer serves."""
    calls = []
    real = peer.service.download
    peer.service.download = lambda *a, **kw: calls.append(a) or real(*a, **kw)
    return calls


def test_download_verifies_and_places(inproc_peer_factory, tmp_path):
    peer = inproc_peer_factory({"data.bin": DATA}, chunk_size=16 * 1024)
    dest = str(tmp_path / "out" / "data.bin")
    progress = []
    result = download(record_of(peer, "data.bin", [holder(peer)]), dest, on_progress=progress.append)
    assert open(dest, "rb").read() == DATA
    assert result.created and not result.replaced and result.sources == ["p"]
    assert result.verified == "pieces" and progress[-1].done == progress[-1].total == len(DATA)
    assert not os.path.exists(partial_path(dest, SHA)) and not os.path.exists(record_path(partial_path(dest, SHA)))


def test_destination_holding_the_file_ends_at_once(tmp_path):
    dest = tmp_path / "d"
    dest.write_bytes(DATA)
    result = download(FileRecord(SHA, len(DATA), "data.bin", [DEAD]), str(dest))
    assert not result.created and result.fetched == 0


def test_destination_with_other_content_stops_before_downloading(inproc_peer_factory, tmp_path):
    peer = inproc_peer_factory({"data.bin": DATA})
    calls = counting(peer)
    dest = tmp_path / "d"
    dest.write_bytes(b"mine")
    with pytest.raises(AlreadyExists, match="already exists with other content.*--force"):
        download(record_of(peer, "data.bin", [holder(peer)]), str(dest))
    assert dest.read_bytes() == b"mine" and calls == []
    assert not os.path.exists(tmp_path / ".p2p")


def test_force_replaces_only_after_verification(inproc_peer_factory, tmp_path):
    peer = inproc_peer_factory({"data.bin": DATA})
    dest = tmp_path / "d"
    dest.write_bytes(b"mine")
    os.link(dest, tmp_path / "other-name")  # whoever holds the old file keeps it intact
    result = download(record_of(peer, "data.bin", [holder(peer)]), str(dest), force=True)
    assert dest.read_bytes() == DATA and result.replaced and result.created
    assert (tmp_path / "other-name").read_bytes() == b"mine"


def test_force_with_no_good_holder_keeps_the_old_file(inproc_peer_factory, tmp_path):
    peer = inproc_peer_factory({"data.bin": DATA})
    flip_bytes(peer.folder.resolve("data.bin"), [10])
    dest = tmp_path / "d"
    dest.write_bytes(b"mine")
    with pytest.raises(NoHolders, match="banned"):
        download(record_of(peer, "data.bin", [holder(peer)]), str(dest), force=True)
    assert dest.read_bytes() == b"mine"


def test_destination_that_is_a_directory(tmp_path):
    (tmp_path / "d").mkdir()
    with pytest.raises(AlreadyExists, match="is a directory"):
        download(FileRecord(SHA, len(DATA), "data.bin", [DEAD]), str(tmp_path / "d"), force=True)


def test_unavailable_holder_is_reported_and_skipped(inproc_peer_factory, tmp_path):
    peer = inproc_peer_factory({"data.bin": DATA})
    reported = []
    result = download(record_of(peer, "data.bin", [DEAD, holder(peer, "good")]), str(tmp_path / "d"),
                      on_unreachable=lambda h, e: reported.append(h.peer_id))
    assert reported == ["dead"] and result.sources == ["good"] and result.failed == ["dead"]
    assert open(tmp_path / "d", "rb").read() == DATA


def test_holder_without_the_file_is_skipped_not_reported(inproc_peer_factory, tmp_path):
    empty = inproc_peer_factory({})
    peer = inproc_peer_factory({"data.bin": DATA})
    reported = []
    result = download(record_of(peer, "data.bin", [holder(empty, "empty"), holder(peer, "good")]),
                      str(tmp_path / "d"), on_unreachable=lambda h, e: reported.append(h))
    assert reported == [] and "not found" in result.holders["empty"]["reason"]


def test_holder_dying_mid_stream_leaves_its_pieces_to_the_next(inproc_peer_factory, tmp_path):
    first = inproc_peer_factory({"data.bin": DATA}, chunk_size=8 * 1024, upload_rate_limit=512 * 1024)
    second = inproc_peer_factory({"data.bin": DATA})
    state = {"stopped": False}

    def on_progress(p):
        if p.done >= 2 * PIECE and not state["stopped"]:
            state["stopped"] = True
            stop(first.server, grace=0)

    reported = []
    result = download(record_of(first, "data.bin", [holder(first, "first"), holder(second, "second")]),
                      str(tmp_path / "d"), on_progress=on_progress, parallel=1,
                      on_unreachable=lambda h, e: reported.append(h.peer_id))
    assert open(tmp_path / "d", "rb").read() == DATA
    assert reported == ["first"] and result.sources == ["first", "second"]
    assert result.holders["first"]["verified"] >= 2 * PIECE
    assert result.fetched - len(DATA) < PIECE  # only the piece in flight is fetched twice


def test_no_holder_keeps_partial_and_says_how_to_resume(tmp_path):
    with pytest.raises(NoHolders, match="dead failed.*kept in .*resume"):
        download(FileRecord(SHA, len(DATA), "data.bin", [DEAD], PIECE, []), str(tmp_path / "d"))
    with pytest.raises(NoHolders, match="no live holder right now"):
        download(FileRecord(SHA, len(DATA), "data.bin", []), str(tmp_path / "e"))


def test_empty_file(tmp_path):
    empty = hashlib.sha256(b"").hexdigest()
    result = download(FileRecord(empty, 0, "e", [], 65536, []), str(tmp_path / "e"))
    assert result.created and (tmp_path / "e").read_bytes() == b""


def test_resume_from_an_old_prefix_partial(inproc_peer_factory, tmp_path):
    peer = inproc_peer_factory({"data.bin": DATA})
    dest = str(tmp_path / "d")
    part = partial_path(dest, SHA)
    os.makedirs(os.path.dirname(part))
    with open(part, "wb") as f:
        f.write(DATA[:3 * PIECE + 1000])  # as the previous engine left it
    result = download(record_of(peer, "data.bin", [holder(peer)]), dest)
    assert result.resumed_bytes == 3 * PIECE and result.fetched == len(DATA) - 3 * PIECE
    assert open(dest, "rb").read() == DATA


def test_without_piece_hashes_whole_file_verification_one_holder_at_a_time(inproc_peer_factory, tmp_path,
                                                                            caplog):
    a = inproc_peer_factory({"data.bin": DATA})
    b = inproc_peer_factory({"data.bin": DATA})
    calls_a, calls_b = counting(a), counting(b)
    rec = FileRecord(SHA, len(DATA), "data.bin", [holder(a, "a"), holder(b, "b")])  # an old peer's entry
    with caplog.at_level(logging.WARNING, logger="peer_node.transfer"):
        result = download(rec, str(tmp_path / "d"), parallel=4)
    assert open(tmp_path / "d", "rb").read() == DATA
    assert result.verified == "whole file" and result.sources == ["a"]
    assert len(calls_a) == 1 and calls_b == []
    assert "no piece hashes" in caplog.text and "verifying only the whole file" in caplog.text


def test_without_piece_hashes_a_bad_file_is_discarded_and_its_single_source_blamed(inproc_peer_factory,
                                                                                  tmp_path):
    peer = inproc_peer_factory({"data.bin": DATA})
    flip_bytes(peer.folder.resolve("data.bin"), [PIECE + 3])
    blamed = []
    dest = str(tmp_path / "d")
    with pytest.raises(ChecksumMismatch):
        download(FileRecord(SHA, len(DATA), "data.bin", [holder(peer, "p")]), dest,
                 on_corrupt=lambda h, sha: blamed.append((h.peer_id, sha)))
    assert blamed == [("p", SHA)]
    assert not os.path.exists(dest) and not os.path.exists(partial_path(dest, SHA))
    assert not os.path.exists(record_path(partial_path(dest, SHA)))


def test_piece_hashes_that_do_not_add_up_to_the_file_are_caught(inproc_peer_factory, tmp_path):
    other = os.urandom(len(DATA))
    liar = inproc_peer_factory({"data.bin": other})
    liar.folder.by_name("data.bin").sha256 = SHA  # serves other bytes under SHA...
    hasher = PieceHasher(PIECE)
    hasher.update(other)  # ...and the directory lists the pieces of those other bytes
    rec = FileRecord(SHA, len(DATA), "data.bin", [holder(liar, "liar")], PIECE, hasher.finish().pieces)
    dest = str(tmp_path / "d")
    with pytest.raises(ChecksumMismatch, match="piece hashes are wrong"):
        download(rec, dest)
    assert not os.path.exists(dest) and not os.path.exists(partial_path(dest, SHA))


def test_destination_rules(tmp_path):
    assert destination(None, "a/b.txt", str(tmp_path)) == str(tmp_path / "a" / "b.txt")
    assert destination(str(tmp_path), "a/b.txt", "/x") == str(tmp_path / "b.txt")
    assert destination(str(tmp_path / "n.txt"), "a/b.txt", "/x") == str(tmp_path / "n.txt")
    with pytest.raises(UnsafeName):
        destination(None, "../evil", str(tmp_path))


class FakeDirectory:
    def __init__(self, results, files):
        self.results, self.files = results, files

    def search(self, q):
        return [r for r in self.results if q.lower() in r["name"].lower()]

    def file(self, sha):
        if sha not in self.files:
            raise NotFound(sha)
        return self.files[sha]


def test_find_file_by_hash_and_by_name():
    h = [{"peer_id": "a", "grpc_address": "h:1"}]
    other = "b" * 64
    d = FakeDirectory(
        [{"sha256": SHA, "name": "x.bin", "size": 5, "holders": h},
         {"sha256": other, "name": "dup", "size": 1, "holders": h},
         {"sha256": SHA, "name": "dup", "size": 5, "holders": h}],
        {SHA: {"sha256": SHA, "size": 5, "names": ["x.bin"], "holders": h, "piece_size": 4, "pieces": ["c" * 64] * 2}})
    rec = find_file(d, SHA)
    assert (rec.name, rec.size, rec.holders) == ("x.bin", 5, [Holder("a", "h:1")])
    assert (rec.piece_size, rec.pieces) == (4, ["c" * 64] * 2)
    by_name = find_file(d, "x.bin")
    assert by_name.sha256 == SHA and by_name.piece_size == 4
    with pytest.raises(NotFound):
        find_file(d, "x")  # substring matches do not count: names must be exact
    with pytest.raises(Exception, match="different files"):
        find_file(d, "dup")
    with pytest.raises(UnsafeName):
        find_file(d, "../x")


def test_push_uploads_a_shared_file(inproc_peer_factory):
    src = inproc_peer_factory({"data.bin": DATA})
    dst = inproc_peer_factory({})
    stored = push(src.folder, src.folder.by_name("data.bin"), dst.address, "copy.bin")
    assert stored.sha256 == SHA and dst.folder.by_name("copy.bin").sha256 == SHA


def test_a_second_get_of_the_same_file_into_the_same_folder_is_refused(tmp_path):
    import fcntl

    from peer_node.errors import P2PError

    dest = str(tmp_path / "d")
    part = partial_path(dest, SHA)
    os.makedirs(os.path.dirname(part))
    with open(part, "wb") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)  # as the running one holds it
        with pytest.raises(P2PError, match="another p2p get is already downloading"):
            download(FileRecord(SHA, len(DATA), "data.bin", [DEAD], PIECE, []), dest)
