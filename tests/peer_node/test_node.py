"""PeerNode (what `p2p serve` runs) in this process, against a real directory process."""
import hashlib
import logging
import os

import pytest
import requests

from peer_node import session
from peer_node.client import PeerClient
from peer_node.errors import Unauthorized
from peer_node.folder import check_name
from peer_node.node import replica_name
from tests.fixtures.peer import UNREACHABLE_DIRECTORY
from tests.fixtures.tickets import Mint
from tests.integration.helpers import holders_of, live_peers, wait_until


def sha(data):
    return hashlib.sha256(data).hexdigest()


def peer_row(directory_url, peer_id):
    """The peer's entry in GET /peers, or None while it is not live."""
    rows = requests.get(f"{directory_url}/api/v1/peers", timeout=5).json()
    return next((p for p in rows if p["peer_id"] == peer_id), None)


def indexed(directory_url, peer_id):
    """{name: sha256} of what the directory lists for peer_id."""
    r = requests.get(f"{directory_url}/api/v1/peers/{peer_id}/files", timeout=5)
    return {f["name"]: f["sha256"] for f in r.json()["files"]} if r.ok else {}


def test_login_registers_the_advertised_address_and_records_the_session(directory_proc, node_factory):
    node = node_factory(directory_proc.url, peer_id="alice")
    row = wait_until(lambda: peer_row(directory_proc.url, "alice"))
    assert row["grpc_address"] == f"127.0.0.1:{node.port}" == node.address
    found = wait_until(lambda: session.read(node.config.folder))
    assert (found.url, found.peer_id, found.pid) == (directory_proc.url, "alice", os.getpid())
    assert found.token == node.directory.token


def test_the_folder_is_published(directory_proc, node_factory):
    node_factory(directory_proc.url, peer_id="alice", files={"a.txt": b"a", "docs/b.txt": b"b"})
    assert wait_until(lambda: indexed(directory_proc.url, "alice")) == {"a.txt": sha(b"a"),
                                                                         "docs/b.txt": sha(b"b")}


def test_heartbeats_keep_the_lease(directory_proc, node_factory):
    node_factory(directory_proc.url, peer_id="alice")
    first = wait_until(lambda: peer_row(directory_proc.url, "alice"))["last_seen"]
    # the directory's lease is 2 s: a peer beats every third of it
    second = wait_until(lambda: (row := peer_row(directory_proc.url, "alice"))
                        and row["last_seen"] > first and row["last_seen"], timeout=5)
    wait_until(lambda: peer_row(directory_proc.url, "alice")["last_seen"] > second, timeout=5)


def test_folder_changes_are_published_again(directory_proc, node_factory):
    node = node_factory(directory_proc.url, peer_id="alice", files={"a.txt": b"a"})
    wait_until(lambda: indexed(directory_proc.url, "alice") == {"a.txt": sha(b"a")})
    with open(os.path.join(node.config.folder, "new.txt"), "wb") as f:
        f.write(b"new")
    wait_until(lambda: indexed(directory_proc.url, "alice") == {"a.txt": sha(b"a"), "new.txt": sha(b"new")})
    os.unlink(os.path.join(node.config.folder, "a.txt"))
    with open(os.path.join(node.config.folder, "new.txt"), "wb") as f:
        f.write(b"changed")
    wait_until(lambda: indexed(directory_proc.url, "alice") == {"new.txt": sha(b"changed")})


def test_an_upload_is_published_at_once_not_at_the_next_rescan(directory_proc, node_factory, tmp_path):
    node = node_factory(directory_proc.url, peer_id="alice", rescan_interval=600)
    wait_until(lambda: peer_row(directory_proc.url, "alice"))
    src = tmp_path / "up.bin"
    src.write_bytes(b"uploaded")
    mint = Mint()
    node.keyring.learn(mint.key_dict)
    with PeerClient(node.address, ticket=mint.ticket(sha(b"uploaded"), "upload", aud="alice", size=8)) as c:
        c.upload(str(src), "in/up.bin", 8, sha(b"uploaded"))
    wait_until(lambda: indexed(directory_proc.url, "alice") == {"in/up.bin": sha(b"uploaded")}, timeout=5)


def test_stop_logs_out_and_forgets_the_session(directory_proc, node_factory):
    node = node_factory(directory_proc.url, peer_id="alice", files={"a.txt": b"a"})
    wait_until(lambda: holders_of(directory_proc.url, sha(b"a")) == ["alice"])
    node.stop()
    # at once, not after a lease: the logout took the peer and its files out of search
    assert live_peers(directory_proc.url) == []
    assert holders_of(directory_proc.url, sha(b"a")) == []
    assert not os.path.exists(session.session_path(node.config.folder))


def test_a_refused_session_is_forgotten_and_replaced_by_a_new_login(directory_proc, node_factory):
    node = node_factory(directory_proc.url, peer_id="alice")
    old = wait_until(lambda: session.read(node.config.folder)).token
    # the session ends behind the peer's back (as when a directory loses its database)
    r = requests.post(f"{directory_proc.url}/api/v1/logout", json={},
                      headers={"Authorization": f"Bearer {old}"}, timeout=5)
    assert r.status_code == 204
    new = wait_until(lambda: (s := session.read(node.config.folder)) and s.token != old and s, timeout=5)
    assert new.token == node.directory.token
    wait_until(lambda: peer_row(directory_proc.url, "alice"))


def test_a_wrong_secret_at_the_first_login_is_fatal(directory_proc, node_factory, closed_port):
    r = requests.post(f"{directory_proc.url}/api/v1/login", timeout=5, json={
        "peer_id": "alice", "secret": "the owner's secret", "grpc_address": f"127.0.0.1:{closed_port}"})
    assert r.status_code == 200
    node = node_factory(directory_proc.url, peer_id="alice")
    fatal = wait_until(lambda: node.fatal, timeout=10)
    assert isinstance(fatal, Unauthorized) and fatal.status == 401
    assert session.read(node.config.folder) is None
    assert peer_row(directory_proc.url, "alice")["grpc_address"] == f"127.0.0.1:{closed_port}"


def test_without_a_directory_the_peer_serves_and_records_no_session(node_factory, caplog):
    caplog.set_level(logging.WARNING, logger="peer_node.node")
    node = node_factory(UNREACHABLE_DIRECTORY, files={"a.txt": b"a"})
    wait_until(lambda: "directory unreachable" in caplog.text, timeout=10)
    with PeerClient(node.address) as c:
        assert [f.name for f in c.list_files()] == ["a.txt"]
    assert session.read(node.config.folder) is None


def test_a_replication_order_is_pushed_to_the_backup(directory_factory, node_factory):
    directory = directory_factory(replication=2)
    backup = node_factory(directory.url, peer_id="backup")
    wait_until(lambda: peer_row(directory.url, "backup"))
    node_factory(directory.url, peer_id="owner", files={"doc.txt": b"keep two copies"})
    wait_until(lambda: holders_of(directory.url, sha(b"keep two copies")) == ["backup", "owner"], timeout=15)
    with open(os.path.join(backup.config.folder, "doc.txt"), "rb") as f:
        assert f.read() == b"keep two copies"


def test_stop_twice_is_harmless(directory_proc, node_factory):
    node = node_factory(directory_proc.url, peer_id="alice")
    wait_until(lambda: peer_row(directory_proc.url, "alice"))
    node.stop(grace=0)
    node.stop(grace=0)
    assert live_peers(directory_proc.url) == []


@pytest.mark.parametrize("name, expected", [
    ("notes.txt", "notes.abababababab.txt"),
    ("a/b/report.pdf", "a/b/report.abababababab.pdf"),
    ("README", "README.abababababab"),
    (".profile", ".profile.abababababab"),
    ("x" * 255, "x" * 242 + ".abababababab"),  # a component stays within 255 bytes
    ("é" * 127 + ".txt", "é" * 119 + ".abababababab.txt"),  # cut on a character, never inside one
])
def test_replica_name(name, expected):
    assert replica_name(name, "ab" * 32) == expected
    check_name(expected)
