"""Unit tests for peer_node.folder: safe names, scanning, hash cache, atomic writes."""
import hashlib
import os

import pytest

from peer_node.errors import AlreadyExists, ChecksumMismatch, NotFound, SizeMismatch, UnsafeName
from peer_node.folder import SharedFolder, place_atomically
from peer_node.service import PeerService
from tests.fixtures.peer import fill_folder
from tests.names import PARTIAL

# The name verdicts themselves (check_name, resolve) are in tests/test_names_agree.py.


def test_symlink_out_of_folder_is_refused_and_not_shared(tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_text("secret")
    root = tmp_path / "share"
    root.mkdir()
    (root / "ok.txt").write_text("fine")
    os.symlink(outside, root / "leak.txt")
    os.symlink(tmp_path, root / "updir")
    os.symlink(root / "ok.txt", root / "alias.txt")  # points inside: allowed
    folder = SharedFolder(str(root))
    folder.scan()
    assert [e.name for e in folder.entries()] == ["alias.txt", "ok.txt"]
    with pytest.raises(UnsafeName, match="outside"):
        folder.resolve("leak.txt")
    with pytest.raises(UnsafeName, match="outside"):
        folder.resolve("updir/outside.txt")


def test_scan_finds_added_changed_removed_and_skips_work_area(tmp_path):
    root = tmp_path / "share"
    root.mkdir()
    (root / "a.txt").write_bytes(b"a")
    (root / "sub").mkdir()
    (root / "sub" / "b.txt").write_bytes(b"bb")
    folder = SharedFolder(str(root), piece_size=64 * 1024)
    changes = folder.scan()
    assert sorted(e.name for e in changes.added) == ["a.txt", "sub/b.txt"]
    assert folder.by_name("sub/b.txt").sha256 == hashlib.sha256(b"bb").hexdigest()
    assert not folder.scan()  # nothing changed
    (root / "a.txt").write_bytes(b"changed")
    os.utime(root / "a.txt", ns=(1, 1))
    (root / "sub" / "b.txt").unlink()
    (root / "c.txt").write_bytes(b"c")
    changes = folder.scan()
    assert [e.name for e in changes.added] == ["c.txt"]
    assert [e.name for e in changes.changed] == ["a.txt"]
    assert [e.name for e in changes.removed] == ["sub/b.txt"]
    assert not [e.name for e in folder.entries() if ".p2p" in e.name]
    with pytest.raises(NotFound):
        folder.by_sha256("0" * 64)


def test_hash_cache_avoids_rehashing(tmp_path, monkeypatch):
    root = tmp_path / "share"
    root.mkdir()
    (root / "a.txt").write_bytes(b"a" * 1000)
    SharedFolder(str(root)).scan()
    import peer_node.folder as folder_mod

    def boom(*a, **k):
        raise AssertionError("re-hashed an unchanged file")

    monkeypatch.setattr(folder_mod, "hash_file", boom)
    again = SharedFolder(str(root))
    assert [e.name for e in again.scan().added] == ["a.txt"]
    assert again.by_name("a.txt").sha256 == hashlib.sha256(b"a" * 1000).hexdigest()


def test_incoming_file_commits_only_when_verified(tmp_path):
    folder = SharedFolder(str(tmp_path / "share"), piece_size=4)
    data = b"0123456789"
    sha = hashlib.sha256(data).hexdigest()
    with folder.incoming("dir/new.bin", len(data), sha) as inc:
        inc.write(data[:5])
        inc.write(data[5:])
        entry = inc.commit()
    assert entry.pieces == [hashlib.sha256(data[i:i + 4]).hexdigest() for i in (0, 4, 8)]
    assert (tmp_path / "share" / "dir" / "new.bin").read_bytes() == data
    assert folder.by_name("dir/new.bin").sha256 == sha
    with pytest.raises(ChecksumMismatch):
        with folder.incoming("bad.bin", len(data), "0" * 64) as inc:
            inc.write(data)
            inc.commit()
    with pytest.raises(SizeMismatch):
        with folder.incoming("short.bin", 20, sha) as inc:
            inc.write(data)
            inc.commit()
    with pytest.raises(SizeMismatch):
        with folder.incoming("long.bin", 5, sha) as inc:
            inc.write(data)
    assert sorted(os.listdir(tmp_path / "share")) == [".p2p", "dir"]
    assert os.listdir(folder.tmp_dir) == []


def test_place_atomically_never_overwrites_different_content(tmp_path):
    dest = tmp_path / "dest"
    dest.write_bytes(b"original")
    tmp = tmp_path / "tmp"
    tmp.write_bytes(b"other")
    with pytest.raises(AlreadyExists):
        place_atomically(str(tmp), str(dest), hashlib.sha256(b"other").hexdigest())
    assert dest.read_bytes() == b"original" and not tmp.exists()
    tmp.write_bytes(b"original")
    assert place_atomically(str(tmp), str(dest), hashlib.sha256(b"original").hexdigest()) is False
    tmp.write_bytes(b"new")
    assert place_atomically(str(tmp), str(tmp_path / "fresh"), hashlib.sha256(b"new").hexdigest())
    assert (tmp_path / "fresh").read_bytes() == b"new"


# files under a work area (or named like one) at several depths, in any case
WORK_AREA_FILES = [".p2p/partial/" + PARTIAL, "sub/.p2p/partial/" + PARTIAL, "a/b/.p2p/tmp/upload-1",
                   "c/.p2p", "deep/.P2P/x", "deep/.p2p/.p2p/y"]


def test_work_areas_at_every_depth_are_never_indexed(tmp_path):
    files = {name: b"partial bytes" for name in WORK_AREA_FILES}
    files.update({"sub/kept.txt": b"kept", "sub/.p2p2/near-miss": b"n"})
    root = fill_folder(str(tmp_path / "share"), files)
    # links into a work area, as a file and as a folder
    os.symlink(os.path.join(root, "sub", ".p2p", "partial", PARTIAL), os.path.join(root, "sub", "link.part"))
    os.symlink(os.path.join(root, "sub", ".p2p"), os.path.join(root, "area"))
    folder = SharedFolder(root)
    folder.scan()
    assert [e.name for e in folder.entries()] == ["sub/.p2p2/near-miss", "sub/kept.txt"]
    for name in ("sub/link.part", "area/partial/" + PARTIAL):
        with pytest.raises(UnsafeName, match="work area"):
            folder.resolve(name)


@pytest.mark.parametrize("name", ["sub/.p2p/partial/" + PARTIAL, "sub/.p2p/x", "area/x", "area/partial/x"])
def test_uploads_never_land_in_a_work_area(tmp_path, name):
    root = fill_folder(str(tmp_path / "share"), {"sub/.p2p/partial/" + PARTIAL: b"partial"})
    os.symlink(os.path.join(root, "sub", ".p2p"), os.path.join(root, "area"))
    folder = SharedFolder(root)
    data = b"uploaded"
    with pytest.raises(UnsafeName, match="work area"):
        folder.incoming(name, len(data), hashlib.sha256(data).hexdigest())
    with pytest.raises(UnsafeName, match="work area"):
        PeerService(folder).receive(name, len(data), hashlib.sha256(data).hexdigest(), iter([data]))
    assert sorted(os.listdir(os.path.join(root, "sub", ".p2p"))) == ["partial"]
    assert os.listdir(folder.tmp_dir) == []
