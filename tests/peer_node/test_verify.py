"""Verify orders: re-hashing a copy, quarantining a bad one, withdrawing it (peer_node.verify, claims)."""
import hashlib
import logging
import os
import threading

import pytest

from peer_node.claims import ClaimKeeper
from peer_node.config import PeerConfig
from peer_node.errors import DirectoryError, DirectoryUnavailable, NotFound, UnsafeName
from peer_node.folder import SharedFolder
from peer_node.service import PeerService, ServiceLimits
from peer_node.verify import Verifier, check_copy, quarantine, quarantine_path
from tests.fixtures.peer import fill_folder, flip_bytes
from tests.integration.helpers import wait_until

PIECE = 64 * 1024
DATA = os.urandom(3 * PIECE + 100)
SHA = hashlib.sha256(DATA).hexdigest()


@pytest.fixture
def folder(tmp_path):
    root = fill_folder(str(tmp_path / "share"), {"film.bin": DATA, "docs/other.txt": b"other"})
    shared = SharedFolder(root, PIECE)
    shared.scan()
    return shared


def path_of(folder, name):
    return os.path.join(folder.root, *name.split("/"))


# -- check_copy ----------------------------------------------------------------------------

def test_a_copy_that_still_matches_is_ok(folder):
    assert check_copy(folder, folder.by_name("film.bin")).status == "ok"


def test_bytes_flipped_under_the_same_size_and_mtime_are_bad(folder):
    flip_bytes(path_of(folder, "film.bin"), [5])
    check = check_copy(folder, folder.by_name("film.bin"))
    assert check.status == "bad" and check.actual != SHA and len(check.actual) == 64


@pytest.mark.parametrize("edit", ["append", "touch"])
def test_a_copy_edited_since_it_was_indexed_is_changed_not_bad(folder, edit):
    path = path_of(folder, "film.bin")
    if edit == "append":
        with open(path, "ab") as f:
            f.write(b"more")
    else:
        st = os.stat(path)
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert check_copy(folder, folder.by_name("film.bin")).status == "changed"


def test_a_removed_copy_is_gone(folder):
    entry = folder.by_name("film.bin")
    os.unlink(path_of(folder, "film.bin"))
    assert check_copy(folder, entry).status == "gone"


def test_the_check_stops_when_asked_and_reads_through_the_throttle(folder):
    stop = threading.Event()
    asked = []

    def throttle(n):
        asked.append(n)
        if len(asked) == 2:
            stop.set()

    check = check_copy(folder, folder.by_name("film.bin"), throttle=throttle, stop=stop, read_size=PIECE)
    assert check.status == "stopped" and asked == [PIECE, PIECE]


# -- quarantine ----------------------------------------------------------------------------

def test_quarantine_moves_the_file_into_the_work_area_and_out_of_the_index(folder):
    entry = folder.by_name("docs/other.txt")
    dest = quarantine(folder, entry)
    assert dest == os.path.join(folder.root, ".p2p", "quarantine", f"{entry.sha256}-other.txt")
    assert open(dest, "rb").read() == b"other" and not os.path.exists(path_of(folder, "docs/other.txt"))
    assert [e.name for e in folder.entries()] == ["film.bin"]
    folder.scan()  # a rescan never finds it again: .p2p is reserved at every depth
    assert [e.name for e in folder.entries()] == ["film.bin"]
    with pytest.raises(UnsafeName):
        folder.resolve(os.path.relpath(dest, folder.root))
    with pytest.raises(NotFound):
        PeerService(folder, ServiceLimits()).download(sha256=entry.sha256)


def test_a_second_quarantine_of_the_same_name_keeps_the_first(folder):
    entry = folder.by_name("docs/other.txt")
    first = quarantine(folder, entry)
    fill_folder(folder.root, {"docs/other.txt": b"other"})
    folder.scan()
    second = quarantine(folder, folder.by_name("docs/other.txt"))
    assert second == first + ".1" and os.path.exists(first)


def test_a_long_name_is_shortened_in_the_quarantine_but_the_digest_is_kept(folder):
    name = "é" * 125 + ".bin"  # 254 bytes: with the digest in front it would not fit a component
    fill_folder(folder.root, {name: b"long"})
    folder.scan()
    entry = folder.by_name(name)
    base = os.path.basename(quarantine_path(folder, entry))
    assert base.startswith(entry.sha256 + "-") and len(base.encode()) <= 255
    base.encode().decode()  # cut on a character boundary


def test_quarantine_of_a_file_already_gone_is_not_found_and_unindexes_it(folder):
    entry = folder.by_name("film.bin")
    os.unlink(path_of(folder, "film.bin"))
    with pytest.raises(NotFound):
        quarantine(folder, entry)
    assert [e.name for e in folder.entries()] == ["docs/other.txt"]


def test_a_rescan_racing_with_a_quarantine_does_not_index_the_file_again(folder):
    entry = folder.by_name("film.bin")
    real_walk = folder._walk

    def walk_then_quarantine():
        yield from real_walk()
        quarantine(folder, entry)  # after the walk saw it, before the rescan commits

    folder._walk = walk_then_quarantine
    changes = folder.scan()
    assert [e.name for e in folder.entries()] == ["docs/other.txt"] and not changes.added


# -- the verifier ----------------------------------------------------------------------------

@pytest.fixture
def verifier(folder):
    calls = []
    v = Verifier(folder, lambda sha256, still_shared: calls.append((sha256, still_shared)))
    v.calls = calls
    v.start()
    yield v
    v.stop()


def test_a_failed_verify_order_quarantines_and_withdraws_with_one_warning(folder, verifier, caplog):
    flip_bytes(path_of(folder, "film.bin"), [PIECE + 1])
    with caplog.at_level(logging.WARNING, logger="peer_node.verify"):
        verifier.order([SHA])
        wait_until(lambda: verifier.calls, timeout=5)
    assert verifier.calls == [(SHA, False)]
    assert os.listdir(os.path.join(folder.work_dir, "quarantine")) == [f"{SHA}-film.bin"]
    [warning] = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert "film.bin no longer matches" in warning.getMessage() and ".p2p/quarantine" in warning.getMessage()


def test_a_passed_verify_order_changes_nothing_and_reports_nothing(folder, verifier):
    assert [c.status for c in verifier.verify(SHA)] == ["ok"]
    assert verifier.calls == [] and folder.by_name("film.bin")
    assert verifier.verify(SHA) == []  # a repeated order right after is not read again


def test_only_the_bad_one_of_two_copies_goes_and_the_entry_stays(folder, verifier):
    fill_folder(folder.root, {"copy.bin": DATA})
    folder.scan()
    flip_bytes(path_of(folder, "film.bin"), [0])
    assert sorted(c.status for c in verifier.verify(SHA)) == ["bad", "ok"]
    assert verifier.calls == [(SHA, True)] and [e.sha256 == SHA for e in folder.entries()].count(True) == 1


@pytest.mark.parametrize("order", [["not-a-digest"], ["A" * 64], [None], ["0" * 64]])
def test_bad_or_unknown_orders_are_ignored(folder, verifier, order):
    verifier.order(order)
    verifier.order([hashlib.sha256(b"other").hexdigest()])  # a real one after it still runs
    assert verifier.verify("0" * 64) == []
    wait_until(lambda: not verifier._queued, timeout=5)
    assert verifier.calls == [] and len(folder.entries()) == 2


# -- withdrawal through the directory session ----------------------------------------------------

class FakeDirectory:
    """Records delete_file calls; raises what it is told to."""

    def __init__(self, error=None):
        self.token = "t"
        self.error = error
        self.deleted = []

    def delete_file(self, peer_id, sha256):
        self.deleted.append((peer_id, sha256))
        if self.error is not None:
            raise self.error


@pytest.mark.parametrize("error, republished", [
    (None, False),
    (DirectoryError("http://d", 404, "Not Found"), False),
    (DirectoryError("http://d", 500, "Internal Server Error"), True),
    (DirectoryUnavailable(["http://d"], "ConnectionRefusedError"), True),
])
def test_a_quarantined_copy_is_deleted_from_the_index_or_republished(folder, error, republished):
    directory = FakeDirectory(error)
    again = []
    keeper = ClaimKeeper(PeerConfig(peer_id="me"), folder, directory, republish=lambda: again.append(1))
    keeper._quarantined(SHA, still_shared=False)
    assert directory.deleted == [("me", SHA)] and bool(again) is republished


def test_a_copy_left_under_another_name_is_republished_not_deleted(folder):
    directory, again = FakeDirectory(), []
    keeper = ClaimKeeper(PeerConfig(peer_id="me"), folder, directory, republish=lambda: again.append(1))
    keeper._quarantined(SHA, still_shared=True)
    assert directory.deleted == [] and again == [1]


def test_a_verify_order_in_a_heartbeat_answer_reaches_the_verifier(tmp_path):
    from peer_node.node import PeerNode

    root = fill_folder(str(tmp_path / "node"), {"film.bin": DATA})
    node = PeerNode(PeerConfig(peer_id="me", secret="s", folder=root, directory=("http://127.0.0.1:9",),
                               piece_size=PIECE))
    node.folder.scan()
    flip_bytes(path_of(node.folder, "film.bin"), [7])

    class Beating(FakeDirectory):
        def heartbeat(self, free_bytes=None, accept_uploads=None):
            return {"lease_s": 3, "replicate": [], "verify": [SHA]}

    node.directory = node.claims.directory = Beating()
    node.claims.start()
    try:
        node._beat()
        wait_until(lambda: node.directory.deleted, timeout=5)
    finally:
        node.claims.stop()
    assert node.directory.deleted == [("me", SHA)] and node.folder.entries() == []
