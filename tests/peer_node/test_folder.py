"""Unit tests for peer_node.folder: safe names, scanning, hash cache, atomic writes."""
import hashlib
import os

import pytest

from peer_node.errors import AlreadyExists, ChecksumMismatch, NotFound, SizeMismatch, UnsafeName
from peer_node.folder import SharedFolder, check_name, place_atomically
from tests.names import HOSTILE_NAMES



@pytest.mark.parametrize("name,reason", HOSTILE_NAMES)
def test_hostile_names_are_refused(name, reason):
    with pytest.raises(UnsafeName) as err:
        check_name(name)
    assert reason in str(err.value)


@pytest.mark.parametrize("name", ["a.txt", "sub/dir/b.bin", "x" * 255, ".hidden", "a..b", "é.txt"])
def test_ordinary_names_pass(name):
    assert check_name(name) == name


@pytest.mark.parametrize("name,reason", HOSTILE_NAMES)
def test_resolve_refuses_hostile_names(tmp_path, name, reason):
    folder = SharedFolder(str(tmp_path / "share"))
    with pytest.raises(UnsafeName):
        folder.resolve(name)


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
    assert all(not e.name.startswith(".p2p") for e in folder.entries())
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
