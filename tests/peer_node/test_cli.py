"""The `p2p` command through click's CliRunner (the directory is faked; peers are in-process)."""
import hashlib
import json
import os

import pytest
from click.testing import CliRunner

import peer_node.cli as cli
from peer_node.errors import DirectoryUnavailable

DATA = os.urandom(50_000)
SHA = hashlib.sha256(DATA).hexdigest()


@pytest.fixture
def runner(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # no ./peerConfig.ini here
    for var in list(os.environ):
        if var.startswith("P2P_"):
            monkeypatch.delenv(var)
    return CliRunner()


class FakeDirectory:
    holders = []

    def __init__(self, urls, timeout=5.0):
        self.urls = urls
        self.token = None

    def search(self, q, limit=None):
        return [{"sha256": SHA, "name": "data.bin", "size": len(DATA), "holders": self.holders}]

    def file(self, sha):
        return {"sha256": SHA, "size": len(DATA), "names": ["data.bin"], "holders": self.holders,
                "piece_size": 64 * 1024, "pieces": [SHA]}  # one piece: the whole file

    def peers(self):
        return [{"peer_id": "a", "grpc_address": "h:1", "last_seen": "now", "files": 1}]


@pytest.fixture
def fake_directory(monkeypatch):
    monkeypatch.setattr(cli, "DirectoryClient", FakeDirectory)
    return FakeDirectory


def test_help_lists_every_command(runner):
    result = runner.invoke(cli.main, ["--help"])
    for name in ("serve", "search", "get", "ls", "put", "peers"):
        assert name in result.output
    assert "Download a file" in runner.invoke(cli.main, ["get", "--help"]).output


def test_ls_and_put(runner, inproc_peer_factory, tmp_path):
    peer = inproc_peer_factory({"a.txt": b"aaa"})
    result = runner.invoke(cli.main, ["ls", peer.address])
    assert result.exit_code == 0 and "a.txt" in result.output
    src = tmp_path / "up.bin"
    src.write_bytes(DATA)
    result = runner.invoke(cli.main, ["put", str(src), peer.address, "--name", "dir/up.bin"])
    assert result.exit_code == 0, result.output
    assert "uploaded dir/up.bin" in result.output
    listed = json.loads(runner.invoke(cli.main, ["ls", peer.address, "--json"]).output)
    assert {"name": "dir/up.bin", "size": len(DATA), "sha256": SHA} in listed
    bad = runner.invoke(cli.main, ["put", str(src), peer.address, "--name", "../x"])
    assert bad.exit_code == 1 and "unsafe file name" in bad.output and "Traceback" not in bad.output


def test_put_to_peer_that_refuses(runner, inproc_peer_factory, tmp_path):
    peer = inproc_peer_factory({}, accept_uploads=False)
    src = tmp_path / "up.bin"
    src.write_bytes(b"x")
    result = runner.invoke(cli.main, ["put", str(src), peer.address])
    assert result.exit_code == 1 and "does not accept uploads" in result.output


def test_ls_unreachable_peer_is_one_line(runner):
    result = runner.invoke(cli.main, ["ls", "127.0.0.1:9"])
    assert result.exit_code == 1
    assert result.output.count("\n") == 1 and "unavailable" in result.output


def test_client_commands_need_a_directory(runner):
    result = runner.invoke(cli.main, ["search", "x"])
    assert result.exit_code == 1 and "[directory] url" in result.output


def test_search_peers_json(runner, fake_directory):
    fake_directory.holders = [{"peer_id": "a", "grpc_address": "h:1"}]
    out = runner.invoke(cli.main, ["search", "data", "--directory", "http://d"]).output
    assert SHA in out and "data.bin" in out and "[a]" in out
    parsed = json.loads(runner.invoke(cli.main, ["search", "data", "--directory", "http://d", "--json"]).output)
    assert parsed[0]["sha256"] == SHA
    assert "last seen" in runner.invoke(cli.main, ["peers", "--directory", "http://d"]).output
    assert json.loads(runner.invoke(cli.main, ["peers", "--json", "--directory", "http://d"]).output)[0]["peer_id"] == "a"


def test_get_by_name_and_hash(runner, fake_directory, inproc_peer_factory, tmp_path):
    peer = inproc_peer_factory({"data.bin": DATA})
    fake_directory.holders = [{"peer_id": "dead", "grpc_address": "127.0.0.1:9"},
                              {"peer_id": "p", "grpc_address": peer.address}]
    result = runner.invoke(cli.main, ["get", "data.bin", "--directory", "http://d"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "data.bin").read_bytes() == DATA
    assert "saved data.bin" in result.output and "no peer credentials" in result.output
    out = tmp_path / "copy.bin"
    result = runner.invoke(cli.main, ["get", SHA, "--out", str(out), "--json", "--directory", "http://d"])
    answer = json.loads(result.stdout)
    assert answer["path"] == str(out) and answer["sha256"] == SHA and out.read_bytes() == DATA


def test_get_json_reports_the_swarm(runner, fake_directory, inproc_peer_factory, tmp_path):
    good = inproc_peer_factory({"data.bin": DATA})
    bad = inproc_peer_factory({"data.bin": DATA})
    from tests.fixtures.peer import flip_bytes

    flip_bytes(bad.folder.resolve("data.bin"), [0])
    fake_directory.holders = [{"peer_id": "bad", "grpc_address": bad.address},
                              {"peer_id": "good", "grpc_address": good.address}]
    result = runner.invoke(cli.main, ["get", SHA, "--out", str(tmp_path / "x"), "--json", "--parallel", "1",
                                      "--stall-timeout", "2", "--directory", "http://d"])
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert answer["banned"] == {"bad": "piece 0 failed verification"}
    assert answer["sources"] == ["good"] and answer["fetched"] == 2 * len(DATA)
    assert answer["holders"]["good"]["verified"] == len(DATA) and answer["verified"] == "pieces"
    assert {"resumed_bytes", "stalled", "busy", "refetched", "created", "replaced"} <= set(answer)
    assert "holder bad" in result.stderr and "not reported to the directory yet" in result.stderr


def test_get_never_overwrites_unless_forced(runner, fake_directory, inproc_peer_factory, tmp_path):
    peer = inproc_peer_factory({"data.bin": DATA})
    fake_directory.holders = [{"peer_id": "p", "grpc_address": peer.address}]
    out = tmp_path / "mine.bin"
    out.write_bytes(b"my own notes")
    result = runner.invoke(cli.main, ["get", SHA, "--out", str(out), "--directory", "http://d"])
    assert result.exit_code == 1 and result.output.count("\n") == 1
    assert "already exists with other content" in result.output and "--force" in result.output
    assert out.read_bytes() == b"my own notes"
    result = runner.invoke(cli.main, ["get", SHA, "--out", str(out), "--force", "--directory", "http://d"])
    assert result.exit_code == 0 and "replaced" in result.output and out.read_bytes() == DATA
    result = runner.invoke(cli.main, ["get", SHA, "--out", str(out), "--directory", "http://d"])
    assert result.exit_code == 0 and "already holds data.bin" in result.output


def test_get_errors_are_one_line(runner, monkeypatch, tmp_path):
    class Down(FakeDirectory):
        def search(self, q, limit=None):
            raise DirectoryUnavailable(self.urls)

    monkeypatch.setattr(cli, "DirectoryClient", Down)
    result = runner.invoke(cli.main, ["get", "x.txt", "--directory", "http://d"])
    assert result.exit_code == 1 and "directory unreachable" in result.output
    assert "Traceback" not in result.output


def test_serve_config_errors_are_one_line(runner, tmp_path):
    result = runner.invoke(cli.main, ["serve", "--config", str(tmp_path / "missing.ini")])
    assert result.exit_code == 1 and "missing.ini" in result.output and "no such file" in result.output
    bad = tmp_path / "bad.ini"
    bad.write_text("[peer]\npeer_id = a\nsecret = s\nfolder = f\nport = x\n[directory]\nurl = http://d\n")
    result = runner.invoke(cli.main, ["serve", "--config", str(bad)])
    assert result.exit_code == 1 and "[peer] port" in result.output
    result = runner.invoke(cli.main, ["serve", "--peer-id", "a"])
    assert result.exit_code == 1 and "[peer] secret" in result.output and "missing" in result.output


def test_progress_bar_on_tty_and_plain_lines_otherwise():
    import io

    from peer_node.progress import Progress, human_size

    tty = io.StringIO()
    bar = Progress("f.bin", stream=tty, tty=True)
    for done in range(0, 10 * 2**20 + 1, 2**20):
        bar.update(done, 10 * 2**20)
    text = tty.getvalue()
    assert "\r[" in text and "100.0%" in text and "/s" in text and "ETA" in text
    assert text.endswith("\n")
    plain = io.StringIO()
    bar = Progress("f.bin", stream=plain, tty=False)
    for done in range(0, 1001, 1):
        bar.update(done, 1000)
    lines = plain.getvalue().splitlines()
    assert 10 <= len(lines) <= 11 and "\r" not in plain.getvalue()
    assert human_size(1536) == "1.5 KiB" and human_size(3) == "3 B"
