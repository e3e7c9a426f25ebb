"""`p2p get` reports corrupt and verified holders through a running peer's session.

The holders are real in-process gRPC peers; the directory is a stub HTTP server (below the
layer under test) that serves the file record and records the reports.
"""
import hashlib
import json
import logging
import os

import pytest
from click.testing import CliRunner

import peer_node.cli as cli
from peer_node import session
from peer_node.transfer import DownloadResult
from tests.fixtures.peer import flip_bytes
from tests.fixtures.stub_directory import StubDirectory, stub_directory

PIECE = 64 * 1024
DATA = os.urandom(8 * PIECE + 5)
SHA = hashlib.sha256(DATA).hexdigest()


@pytest.fixture
def stub(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    for var in list(os.environ):
        if var.startswith("P2P_"):
            monkeypatch.delenv(var)
    with stub_directory() as url:
        yield url


@pytest.fixture
def swarm(stub, inproc_peer_factory):
    """Holders good (peer id "good") and bad (its first piece rotted), as the stub lists them."""
    good = inproc_peer_factory({"data.bin": DATA})
    bad = inproc_peer_factory({"data.bin": DATA})
    flip_bytes(os.path.join(bad.folder.root, "data.bin"), [3])
    entry = good.folder.by_name("data.bin")
    StubDirectory.record = {"sha256": SHA, "size": len(DATA), "names": ["data.bin"],
                            "piece_size": entry.piece_size, "pieces": entry.pieces,
                            "holders": [{"peer_id": "bad", "grpc_address": bad.address},
                                        {"peer_id": "good", "grpc_address": good.address}]}
    return good, bad


def running_peer(tmp_path, directory_url, peer_id="me"):
    """The ini of a peer this process 'runs' (its live session file names us); returns its path."""
    folder = tmp_path / f"{peer_id}-shared"
    (folder / ".p2p").mkdir(parents=True)
    session.write(str(folder), directory_url, "peer-token", peer_id)
    ini = tmp_path / f"{peer_id}.ini"
    ini.write_text(f"[peer]\npeer_id = {peer_id}\nsecret = s\nfolder = {folder}\n[directory]\nurl = {directory_url}\n")
    return str(ini)


def get(*args):
    return CliRunner().invoke(cli.main, ["get", SHA, "--json", *args])


def test_a_banned_holder_is_reported_corrupt_and_the_good_one_verified_once(stub, swarm, tmp_path):
    result = get("--config", running_peer(tmp_path, stub), "--parallel", "1")  # bad first, then good
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert list(answer["banned"]) == ["bad"] and answer["sources"] == ["good"]
    assert sorted(StubDirectory.reports) == [(f"/api/v1/peers/bad/files/{SHA}/corrupt", "Bearer peer-token"),
                                             (f"/api/v1/peers/good/files/{SHA}/verified", "Bearer peer-token")]
    assert "cannot report" not in result.stderr


def test_without_a_session_a_clean_download_says_nothing_about_reporting(stub, swarm, tmp_path):
    StubDirectory.record["holders"] = StubDirectory.record["holders"][1:]  # only the good holder
    result = get("--out", str(tmp_path / "x.bin"), "--directory", stub)
    assert result.exit_code == 0, result.output
    assert StubDirectory.reports == [] and "report" not in result.stderr


def test_without_a_session_a_bad_holder_is_one_warning(stub, swarm, tmp_path):
    result = get("--out", str(tmp_path / "x.bin"), "--directory", stub, "--parallel", "1")
    assert result.exit_code == 0, result.output
    assert list(json.loads(result.stdout)["banned"]) == ["bad"]
    assert StubDirectory.reports == [] and result.stderr.count("cannot report") == 1


@pytest.mark.parametrize("status, level", [(404, "INFO"), (500, "INFO")])
def test_a_refused_verified_report_is_no_warning(stub, swarm, tmp_path, status, level):
    StubDirectory.record["holders"] = StubDirectory.record["holders"][1:]
    StubDirectory.report_status = status
    result = CliRunner().invoke(cli.main, ["-v", "get", SHA, "--config", running_peer(tmp_path, stub)])
    assert result.exit_code == 0, result.output
    assert [line for line in result.stderr.splitlines() if "report good" in line and level in line]
    assert "WARNING" not in result.stderr


class Recorder:
    """A DirectoryClient stand-in for the reporter's unit tests."""

    def __init__(self):
        self.calls = []

    def report_verified(self, peer_id, sha256):
        self.calls.append(("verified", peer_id, sha256))

    def report_corrupt(self, peer_id, sha256):
        self.calls.append(("corrupt", peer_id, sha256))


def reporter_with(recorder, peer_id="me"):
    from peer_node.config import PeerConfig

    reporter = cli._reporter(PeerConfig(peer_id=peer_id, directory=("http://d",)))
    reporter._connect = lambda: (recorder, None)
    return reporter


def test_verified_skips_banned_holders_ourselves_and_repeats(caplog):
    recorder = Recorder()
    reporter = reporter_with(recorder)
    result = DownloadResult("/x", "x", 1, SHA, sources=["a", "b", "me"], banned={"b": "piece 3 failed verification"})
    with caplog.at_level(logging.INFO):
        reporter.verified(result)
        reporter.verified(result)  # once per holder per download
    assert recorder.calls == [("verified", "a", SHA)]


def test_a_peer_never_reports_itself_corrupt():
    from peer_node.transfer import Holder

    recorder = Recorder()
    reporter = reporter_with(recorder)
    reporter.corrupt(Holder("me", "127.0.0.1:1"), SHA)
    reporter.corrupt(Holder("other", "127.0.0.1:2"), SHA)
    assert recorder.calls == [("corrupt", "other", SHA)]
