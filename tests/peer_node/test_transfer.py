"""The download engine against in-process peers: holders in turn, resume, verification."""
import hashlib
import os

import pytest

from peer_node.errors import AlreadyExists, ChecksumMismatch, NoHolders, NotFound, UnsafeName
from peer_node.servicer import stop
from peer_node.transfer import FileRecord, Holder, destination, download, find_file, partial_path, push

DATA = os.urandom(256 * 1024 + 17)
SHA = hashlib.sha256(DATA).hexdigest()
DEAD = Holder("dead", "127.0.0.1:9")


def record(*holders, sha=SHA, size=len(DATA)):
    return FileRecord(sha, size, "data.bin", list(holders))


def holder(peer, peer_id="p"):
    return Holder(peer_id, peer.address)


def test_download_verifies_and_places(inproc_peer_factory, tmp_path):
    peer = inproc_peer_factory({"data.bin": DATA}, chunk_size=16 * 1024)
    dest = str(tmp_path / "out" / "data.bin")
    progress = []
    result = download(record(holder(peer)), dest, on_progress=lambda d, t: progress.append(d))
    assert open(dest, "rb").read() == DATA
    assert result.created and result.sources == ["p"] and progress[-1] == len(DATA)
    assert not os.path.exists(partial_path(dest, SHA))
    again = download(record(holder(peer)), dest)
    assert not again.created


def test_unavailable_holder_is_reported_and_skipped(inproc_peer_factory, tmp_path):
    peer = inproc_peer_factory({"data.bin": DATA})
    reported = []
    result = download(record(DEAD, holder(peer, "good")), str(tmp_path / "d"),
                      on_unreachable=lambda h, e: reported.append(h.peer_id))
    assert reported == ["dead"] and result.sources == ["good"] and result.failed == ["dead"]
    assert open(tmp_path / "d", "rb").read() == DATA


def test_holder_without_the_file_is_skipped_not_reported(inproc_peer_factory, tmp_path):
    empty = inproc_peer_factory({})
    peer = inproc_peer_factory({"data.bin": DATA})
    reported = []
    download(record(holder(empty, "empty"), holder(peer, "good")), str(tmp_path / "d"),
             on_unreachable=lambda h, e: reported.append(h))
    assert reported == []


def test_holder_dying_mid_stream_continues_from_received_bytes(inproc_peer_factory, tmp_path):
    first = inproc_peer_factory({"data.bin": DATA}, chunk_size=8 * 1024, upload_rate_limit=512 * 1024)
    second = inproc_peer_factory({"data.bin": DATA})
    state = {"stopped": False}

    def on_progress(done, total):
        if done >= 64 * 1024 and not state["stopped"]:
            state["stopped"] = True
            stop(first.server, grace=0)

    reported = []
    result = download(record(holder(first, "first"), holder(second, "second")), str(tmp_path / "d"),
                      on_progress=on_progress, on_unreachable=lambda h, e: reported.append(h.peer_id))
    assert open(tmp_path / "d", "rb").read() == DATA
    assert reported == ["first"] and result.sources == ["first", "second"]


def test_resume_from_partial(inproc_peer_factory, tmp_path):
    peer = inproc_peer_factory({"data.bin": DATA})
    dest = str(tmp_path / "d")
    part = partial_path(dest, SHA)
    os.makedirs(os.path.dirname(part))
    with open(part, "wb") as f:
        f.write(DATA[:100_000])
    result = download(record(holder(peer)), dest)
    assert result.resumed_from == 100_000
    assert open(dest, "rb").read() == DATA


def test_corrupt_partial_fails_verification_and_is_dropped(inproc_peer_factory, tmp_path):
    peer = inproc_peer_factory({"data.bin": DATA})
    dest = str(tmp_path / "d")
    part = partial_path(dest, SHA)
    os.makedirs(os.path.dirname(part))
    with open(part, "wb") as f:
        f.write(b"\0" * 1000)
    with pytest.raises(ChecksumMismatch):
        download(record(holder(peer)), dest)
    assert not os.path.exists(part) and not os.path.exists(dest)
    download(record(holder(peer)), dest)  # the next run starts afresh
    assert open(dest, "rb").read() == DATA


def test_no_holder_keeps_partial(tmp_path):
    with pytest.raises(NoHolders, match="resume"):
        download(record(DEAD), str(tmp_path / "d"))


def test_existing_different_file_is_not_overwritten(inproc_peer_factory, tmp_path):
    peer = inproc_peer_factory({"data.bin": DATA})
    (tmp_path / "d").write_bytes(b"mine")
    with pytest.raises(AlreadyExists):
        download(record(holder(peer)), str(tmp_path / "d"))
    assert (tmp_path / "d").read_bytes() == b"mine"


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
        {SHA: {"sha256": SHA, "size": 5, "names": ["x.bin"], "holders": h}})
    rec = find_file(d, SHA)
    assert (rec.name, rec.size, rec.holders) == ("x.bin", 5, [Holder("a", "h:1")])
    assert find_file(d, "x.bin").sha256 == SHA
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


BIG = os.urandom(10 * 1024 * 1024 + 333)
BIG_SHA = hashlib.sha256(BIG).hexdigest()


def big_record(*holders):
    return FileRecord(BIG_SHA, len(BIG), "big.bin", list(holders))


def test_parallel_download_uses_several_holders(inproc_peer_factory, tmp_path):
    a = inproc_peer_factory({"big.bin": BIG}, chunk_size=256 * 1024)
    b = inproc_peer_factory({"big.bin": BIG}, chunk_size=256 * 1024)
    result = download(big_record(holder(a, "a"), holder(b, "b")), str(tmp_path / "big"), parallel=2)
    assert open(tmp_path / "big", "rb").read() == BIG
    assert sorted(set(result.sources)) == ["a", "b"]


def test_parallel_download_survives_a_dying_holder(inproc_peer_factory, tmp_path):
    a = inproc_peer_factory({"big.bin": BIG}, chunk_size=64 * 1024, upload_rate_limit=8 * 1024 * 1024)
    b = inproc_peer_factory({"big.bin": BIG}, chunk_size=64 * 1024, upload_rate_limit=8 * 1024 * 1024)
    state = {"stopped": False}

    def on_progress(done, total):
        if done > 2 * 1024 * 1024 and not state["stopped"]:
            state["stopped"] = True
            stop(a.server, grace=0)

    reported = []
    download(big_record(holder(a, "a"), holder(b, "b"), DEAD), str(tmp_path / "big"), parallel=2,
             on_progress=on_progress, on_unreachable=lambda h, e: reported.append(h.peer_id))
    assert open(tmp_path / "big", "rb").read() == BIG
    assert "a" in reported


def test_parallel_download_failure_keeps_a_resumable_prefix(inproc_peer_factory, tmp_path):
    a = inproc_peer_factory({"big.bin": BIG}, chunk_size=64 * 1024, upload_rate_limit=8 * 1024 * 1024)
    state = {"stopped": False}

    def on_progress(done, total):
        if done > 3 * 1024 * 1024 and not state["stopped"]:
            state["stopped"] = True
            stop(a.server, grace=0)

    dest = str(tmp_path / "big")
    with pytest.raises(NoHolders):
        download(big_record(holder(a, "a"), DEAD), dest, parallel=2, on_progress=on_progress)
    part = partial_path(dest, BIG_SHA)
    kept = open(part, "rb").read()
    assert 0 < len(kept) < len(BIG) and kept == BIG[:len(kept)]
    b = inproc_peer_factory({"big.bin": BIG})
    assert download(big_record(holder(b, "b")), dest).resumed_from == len(kept)
    assert open(dest, "rb").read() == BIG
