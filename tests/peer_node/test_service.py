"""PeerService alone, without grpc: list, find, ranged downloads, uploads and their refusals, transfer slots."""
import hashlib
import os

import pytest

from peer_node.errors import (AlreadyExists, Busy, ChecksumMismatch, InvalidRequest, NotFound,
                              OutOfRange, QuotaExceeded, SizeMismatch, UnsafeName, UploadRejected)
from peer_node.folder import SharedFolder
from peer_node.service import PeerService, ServiceLimits
from tests.fixtures.peer import fill_folder
from tests.names import HOSTILE_NAMES

DATA = os.urandom(200_000)
SHA = hashlib.sha256(DATA).hexdigest()
README = b"read me\n"


def sha(data):
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def make_service(tmp_path):
    """make_service(files={name: bytes}, on_stored=None, **ServiceLimits fields) -> PeerService over a scanned folder."""
    made = []

    def make(files=None, on_stored=None, **limits):
        root = fill_folder(str(tmp_path / f"folder-{len(made)}"), files)
        folder = SharedFolder(root, 64 * 1024)
        folder.scan()
        service = PeerService(folder, ServiceLimits(**{"chunk_size": 64 * 1024, **limits}), on_stored)
        made.append(service)
        return service

    return make


@pytest.fixture
def service(make_service):
    return make_service({"data.bin": DATA, "docs/readme.txt": README})


def fetch(service, **req):
    """Everything one download() yields, as (start, length, [(offset, bytes)])."""
    _, start, length, chunks = service.download(**req)
    return start, length, [(pos, bytes(data)) for pos, data in chunks]


def never_read():
    """Upload data that fails the test if the service reads it."""
    raise AssertionError("the service read the data of an upload it should have refused or skipped")
    yield b""  # a generator, so nothing runs until the service iterates it


def uploads_left(service):
    return os.listdir(service.folder.tmp_dir)


# -- list and find -----------------------------------------------------------------------


def test_list_files_with_and_without_prefix(service):
    assert [(e.name, e.size, e.sha256) for e in service.list_files()] == [
        ("data.bin", len(DATA), SHA), ("docs/readme.txt", len(README), sha(README))]
    assert [e.name for e in service.list_files("docs/")] == ["docs/readme.txt"]
    assert service.list_files("nothing/") == []


def test_find_by_sha256_by_name_and_by_both(service):
    assert service.find(sha256=SHA).name == "data.bin"
    assert service.find(name="docs/readme.txt").sha256 == sha(README)
    assert service.find(sha256=SHA, name="data.bin").name == "data.bin"


def test_find_by_both_picks_the_named_copy_of_the_content(make_service):
    service = make_service({"a.bin": DATA, "b.bin": DATA})
    assert service.find(sha256=SHA, name="b.bin").name == "b.bin"


@pytest.mark.parametrize("req, error, words", [
    ({"sha256": "0" * 64}, NotFound, "sha256"),
    ({"name": "nope.txt"}, NotFound, "nope.txt"),
    ({"sha256": SHA, "name": "docs/readme.txt"}, NotFound, "docs/readme.txt"),  # named file holds other bytes
    ({"sha256": "ABC"}, InvalidRequest, "64 lowercase hex"),
    ({"sha256": SHA.upper()}, InvalidRequest, "64 lowercase hex"),
    ({}, InvalidRequest, "by sha256 or by name"),
    ({"sha256": SHA, "name": "../x"}, UnsafeName, "'..'"),
])
def test_find_refusals(service, req, error, words):
    with pytest.raises(error, match=words):
        service.find(**req)


# an empty name means "not named", which test_find_refusals covers
@pytest.mark.parametrize("name, reason", [(n, r) for n, r in HOSTILE_NAMES if n])
def test_hostile_names_are_refused_by_find(service, name, reason):
    with pytest.raises(InvalidRequest, match="unsafe"):
        service.find(name=name)


# -- downloads ---------------------------------------------------------------------------


def test_whole_file_in_chunks(service):
    start, length, chunks = fetch(service, sha256=SHA)
    assert (start, length) == (0, len(DATA))
    assert b"".join(d for _, d in chunks) == DATA
    assert [pos for pos, _ in chunks] == list(range(0, len(DATA), 64 * 1024))
    assert max(len(d) for _, d in chunks) == 64 * 1024


@pytest.mark.parametrize("offset, length", [
    (0, 1), (1000, 5000), (64 * 1024 - 1, 2), (len(DATA) - 5, 0), (len(DATA) - 5, 5), (10, len(DATA) - 10),
])
def test_ranges(service, offset, length):
    start, got_length, chunks = fetch(service, name="data.bin", offset=offset, length=length)
    end = offset + length if length else len(DATA)
    assert (start, got_length) == (offset, end - offset)
    assert chunks[0][0] == offset
    assert b"".join(d for _, d in chunks) == DATA[offset:end]


def test_the_empty_range_at_the_end(service):
    assert fetch(service, sha256=SHA, offset=len(DATA)) == (len(DATA), 0, [])


@pytest.mark.parametrize("offset, length, error, words", [
    (-1, 0, InvalidRequest, "must not be negative"),
    (0, -1, InvalidRequest, "must not be negative"),
    (len(DATA) + 1, 0, OutOfRange, "past the end"),
    (10, len(DATA), OutOfRange, "past the end"),
])
def test_bad_ranges(service, offset, length, error, words):
    with pytest.raises(error, match=words):
        service.download(sha256=SHA, offset=offset, length=length)
    assert free_slots(service) == service.limits.max_transfers


def test_a_file_removed_since_the_scan_is_not_found(service):
    os.unlink(os.path.join(service.folder.root, "data.bin"))
    with pytest.raises(NotFound, match="was removed"):
        service.download(sha256=SHA)
    assert free_slots(service) == service.limits.max_transfers


def test_a_file_changed_since_the_scan_is_not_served(service):
    with open(os.path.join(service.folder.root, "data.bin"), "r+b") as f:
        f.write(b"tampered")  # same size, new mtime: the indexed sha256 would be a lie
    with pytest.raises(NotFound, match="changed since it was indexed"):
        service.download(sha256=SHA)
    assert free_slots(service) == service.limits.max_transfers


# -- transfer slots ----------------------------------------------------------------------


def free_slots(service):
    """How many transfers could start now (takes and gives back every free slot)."""
    # read from the semaphore itself: starting downloads to count them would hold files open
    taken = 0
    while service._slots.acquire(blocking=False):
        taken += 1
    for _ in range(taken):
        service._slots.release()
    return taken


def test_a_running_download_holds_a_slot_until_it_ends(make_service):
    service = make_service({"data.bin": DATA}, max_transfers=2)
    _, _, _, first = service.download(sha256=SHA)
    next(first)
    _, _, _, second = service.download(sha256=SHA)
    next(second)
    with pytest.raises(Busy, match=r"too many transfers in progress \(2\)"):
        service.download(sha256=SHA)
    list(first)  # read to the end
    assert free_slots(service) == 1
    second.close()  # the reader went away
    assert free_slots(service) == 2


def test_uploads_and_downloads_share_the_slots(make_service):
    service = make_service({"data.bin": DATA}, max_transfers=1)
    _, _, _, running = service.download(sha256=SHA)
    next(running)
    with pytest.raises(Busy):
        service.receive("new.bin", 3, sha(b"new"), iter([b"new"]))
    running.close()
    assert service.receive("new.bin", 3, sha(b"new"), iter([b"new"])).name == "new.bin"
    assert free_slots(service) == 1


def test_a_failed_upload_gives_its_slot_back(make_service):
    service = make_service({}, max_transfers=1)
    with pytest.raises(ChecksumMismatch):
        service.receive("x.bin", 3, sha(b"abc"), iter([b"xyz"]))
    assert free_slots(service) == 1


# -- uploads -----------------------------------------------------------------------------


def test_receive_stores_indexes_and_announces(make_service):
    stored = []
    service = make_service({}, on_stored=stored.append)
    data = os.urandom(150_000)
    entry = service.receive("in/new.bin", len(data), sha(data), iter([data[:70_000], data[70_000:]]))
    assert (entry.name, entry.size, entry.sha256) == ("in/new.bin", len(data), sha(data))
    with open(os.path.join(service.folder.root, "in", "new.bin"), "rb") as f:
        assert f.read() == data
    assert service.folder.by_name("in/new.bin") == entry
    assert stored == [entry]
    assert uploads_left(service) == []


def test_the_same_upload_again_succeeds_without_reading_the_data(service):
    stored = []
    service.on_stored = stored.append
    entry = service.receive("data.bin", len(DATA), SHA, never_read())
    assert entry.sha256 == SHA and stored == []


def test_an_unindexed_file_with_the_same_bytes_is_accepted(service):
    with open(os.path.join(service.folder.root, "late.bin"), "wb") as f:
        f.write(b"late")  # on disk, not scanned yet
    assert service.receive("late.bin", 4, sha(b"late"), iter([b"late"])).sha256 == sha(b"late")


@pytest.mark.parametrize("on_disk, indexed", [(b"data", True), (b"xxxx", False), (b"longer", False)],
                         ids=["indexed", "unindexed-same-size", "unindexed-other-size"])
def test_other_bytes_under_a_taken_name_are_refused(make_service, on_disk, indexed):
    service = make_service({"taken.bin": on_disk} if indexed else {})
    if not indexed:
        with open(os.path.join(service.folder.root, "taken.bin"), "wb") as f:
            f.write(on_disk)
    with pytest.raises(AlreadyExists, match="taken.bin"):
        service.receive("taken.bin", 4, sha(b"new!"), iter([b"new!"]))
    with open(os.path.join(service.folder.root, "taken.bin"), "rb") as f:
        assert f.read() == on_disk  # never overwritten
    assert uploads_left(service) == []


def test_a_directory_under_the_name_is_refused(service):
    with pytest.raises(AlreadyExists, match="not a regular file"):
        service.receive("docs", 1, sha(b"x"), never_read())


@pytest.mark.parametrize("limits, name, size, digest, data, error, words", [
    ({"accept_uploads": False}, "a.bin", 1, sha(b"a"), never_read(), UploadRejected, "accept_uploads"),
    ({}, "../a.bin", 1, sha(b"a"), never_read(), UnsafeName, "'..'"),
    ({}, ".p2p/session.json", 1, sha(b"a"), never_read(), UnsafeName, "work area"),
    ({}, "a.bin", 1, "ABC", never_read(), InvalidRequest, "64 lowercase hex"),
    ({}, "a.bin", -1, sha(b"a"), never_read(), InvalidRequest, "must not be negative"),
    ({"max_upload_bytes": 10}, "a.bin", 11, sha(b"a"), never_read(), QuotaExceeded, "up to 10 bytes"),
    ({}, "a.bin", 3, sha(b"abc"), iter([b"abd"]), ChecksumMismatch, "sha256 mismatch"),
    ({}, "a.bin", 3, sha(b"abc"), iter([b"ab"]), SizeMismatch, "expected 3 bytes, got 2"),
    ({}, "a.bin", 3, sha(b"abc"), iter([b"abcd"]), SizeMismatch, "expected 3 bytes, got 4"),
], ids=["uploads-off", "unsafe-name", "work-area", "bad-sha256", "negative-size", "over-quota",
        "wrong-bytes", "short", "long"])
def test_refused_uploads_leave_nothing(make_service, limits, name, size, digest, data, error, words):
    stored = []
    service = make_service({}, on_stored=stored.append, **limits)
    with pytest.raises(error, match=words):
        service.receive(name, size, digest, data)
    assert stored == [] and service.list_files() == []
    assert sorted(os.listdir(service.folder.root)) == [".p2p"]
    assert uploads_left(service) == []


def test_an_upload_larger_than_the_free_space_is_refused(make_service, monkeypatch):
    service = make_service({})
    monkeypatch.setattr(service.folder, "free_bytes", lambda: 100)  # the disk, not our code
    with pytest.raises(QuotaExceeded, match="only 100 bytes are free"):
        service.receive("a.bin", 101, sha(b"a"), never_read())


def test_an_upload_under_a_file_used_as_a_directory_is_invalid(service):
    with pytest.raises(InvalidRequest, match="cannot store"):
        service.receive("data.bin/inner.txt", 1, sha(b"x"), iter([b"x"]))
    assert uploads_left(service) == []
