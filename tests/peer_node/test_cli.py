"""The `p2p` command through click's CliRunner, against a real directory process and real peers."""
import hashlib
import json
import os
import subprocess
import sys

import pytest
import requests

import peer_node.cli as cli
from peer_node import session
from tests.fixtures.peer import UNREACHABLE_DIRECTORY
from tests.integration.helpers import holders_of, wait_until

DATA = os.urandom(50_000)
SHA = hashlib.sha256(DATA).hexdigest()
DATA_ENTRY = {"name": "data.bin", "size": len(DATA), "sha256": SHA}


@pytest.fixture
def directory(directory_factory):
    """A real directory with a 30 s lease: a peer that logged in over REST stays live for the whole test.

    An open network (--open-downloads), so `p2p get` without an identity gets its tickets.
    """
    return directory_factory(lease=30, extra_args=("--open-downloads",))


@pytest.fixture
def holder(directory, peer_factory):
    """A real `p2p serve` peer sharing data.bin."""
    proc = peer_factory(directory.url, files={"data.bin": DATA}, peer_id="holder")
    wait_until(lambda: holders_of(directory.url, SHA) == ["holder"], timeout=15)
    return proc


def rest_login(directory, peer_id, grpc_address, files=()):
    """Log a peer in over REST, as any implementation of the contract may; returns its token."""
    r = requests.post(f"{directory.url}/api/v1/login", timeout=5, json={
        "peer_id": peer_id, "secret": f"{peer_id}-secret", "grpc_address": grpc_address, "files": list(files)})
    assert r.status_code == 200, r.text
    return r.json()["token"]


@pytest.fixture
def dead_holders(directory, holder, closed_port):
    """Two peers listed as live holders of data.bin at an address where nothing listens.

    Their ids sort before "holder", so a download tries them first.
    """
    # two loopback addresses: a live peer's address is its own (another peer_id gets 409)
    for n, peer_id in enumerate(("dead1", "dead2"), 1):
        rest_login(directory, peer_id, f"127.0.0.{n}:{closed_port}", [DATA_ENTRY])
    assert holders_of(directory.url, SHA) == ["dead1", "dead2", "holder"]
    return ["dead1", "dead2"]


def peers_now(directory):
    """{peer_id: (grpc_address, last_seen)} of the live peers."""
    rows = requests.get(f"{directory.url}/api/v1/peers", timeout=5).json()
    return {p["peer_id"]: (p["grpc_address"], p["last_seen"]) for p in rows}


def write_ini(tmp_path, peer_id, directory_url):
    """A peerConfig.ini for peer_id (whose folder exists, with its work area); returns (path, folder)."""
    folder = tmp_path / f"{peer_id}-shared"
    (folder / ".p2p").mkdir(parents=True, exist_ok=True)
    ini = tmp_path / f"{peer_id}.ini"
    ini.write_text(f"[peer]\npeer_id = {peer_id}\nsecret = {peer_id}-secret\nfolder = {folder}\n"
                   f"[directory]\nurl = {directory_url}\n")
    return str(ini), str(folder)


def exited_pid():
    """The pid of a process that has exited and been reaped."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def warnings_about_reporting(output):
    return [line for line in output.splitlines() if "cannot report unreachable holders" in line]


# -- commands that need no directory ---------------------------------------------------------


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


def test_get_json_reports_the_swarm(runner, directory, holder, peer_factory, tmp_path):
    from tests.fixtures.peer import flip_bytes

    bad = peer_factory(directory.url, files={"data.bin": DATA}, peer_id="bad")
    wait_until(lambda: holders_of(directory.url, SHA) == ["bad", "holder"], timeout=15)
    flip_bytes(os.path.join(bad.folder, "data.bin"), [0])  # size and mtime kept: it still claims SHA
    result = runner.invoke(cli.main, ["get", SHA, "--out", str(tmp_path / "x"), "--json", "--parallel", "1",
                                      "--stall-timeout", "2", "--directory", directory.url])
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert answer["banned"] == {"bad": "piece 0 failed verification"}
    assert answer["sources"] == ["holder"] and answer["fetched"] == 2 * len(DATA)
    assert answer["holders"]["holder"]["verified"] == len(DATA) and answer["verified"] == "pieces"
    assert {"resumed_bytes", "stalled", "busy", "refetched", "created", "replaced"} <= set(answer)
    assert "holder bad" in result.stderr


def test_get_never_overwrites_unless_forced(runner, directory, holder, tmp_path):
    out = tmp_path / "mine.bin"
    out.write_bytes(b"my own notes")
    args = ["get", SHA, "--out", str(out), "--directory", directory.url]
    result = runner.invoke(cli.main, args)
    assert result.exit_code == 1 and result.output.count("\n") == 1
    assert "already exists with other content" in result.output and "--force" in result.output
    assert out.read_bytes() == b"my own notes"
    result = runner.invoke(cli.main, [*args, "--force"])
    assert result.exit_code == 0 and "replaced" in result.output and out.read_bytes() == DATA
    result = runner.invoke(cli.main, args)
    assert result.exit_code == 0 and "already holds data.bin" in result.output


def test_serve_config_errors_are_one_line(runner, tmp_path):
    result = runner.invoke(cli.main, ["serve", "--config", str(tmp_path / "missing.ini")])
    assert result.exit_code == 1 and "missing.ini" in result.output and "no such file" in result.output
    bad = tmp_path / "bad.ini"
    bad.write_text("[peer]\npeer_id = a\nsecret = s\nfolder = f\nport = x\n[directory]\nurl = http://d\n")
    result = runner.invoke(cli.main, ["serve", "--config", str(bad)])
    assert result.exit_code == 1 and "[peer] port" in result.output
    result = runner.invoke(cli.main, ["serve", "--peer-id", "a"])
    assert result.exit_code == 1 and "[peer] secret" in result.output and "missing" in result.output


# -- search, peers, get against the directory --------------------------------------------------


def test_search_and_peers(runner, directory, holder):
    out = runner.invoke(cli.main, ["search", "DATA", "--directory", directory.url]).output
    assert SHA in out and "data.bin" in out and "[holder]" in out
    parsed = json.loads(runner.invoke(cli.main, ["search", "data", "--directory", directory.url, "--json"]).stdout)
    assert [(r["sha256"], r["name"], [h["peer_id"] for h in r["holders"]]) for r in parsed] == [
        (SHA, "data.bin", ["holder"])]
    assert "no live peer shares" in runner.invoke(cli.main, ["search", "zzz", "--directory", directory.url]).output
    out = runner.invoke(cli.main, ["peers", "--directory", directory.url]).output
    assert f"holder  {holder.address}  files: 1  last seen:" in out
    listed = json.loads(runner.invoke(cli.main, ["peers", "--json", "--directory", directory.url]).stdout)
    assert [(p["peer_id"], p["grpc_address"]) for p in listed] == [("holder", holder.address)]


def test_get_by_name_and_by_hash(runner, directory, holder, tmp_path):
    result = runner.invoke(cli.main, ["get", "data.bin", "--directory", directory.url])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "data.bin").read_bytes() == DATA
    assert "saved data.bin" in result.output
    out = tmp_path / "copy.bin"
    result = runner.invoke(cli.main, ["get", SHA, "--out", str(out), "--json", "--directory", directory.url])
    answer = json.loads(result.stdout)
    assert answer["path"] == str(out) and answer["sha256"] == SHA and answer["sources"] == ["holder"]
    assert out.read_bytes() == DATA


def test_get_errors_are_one_line(runner, directory, holder):
    for args, words in [(["x.txt", "--directory", UNREACHABLE_DIRECTORY], "directory unreachable"),
                        (["nothing.txt", "--directory", directory.url], "no live peer shares a file named"),
                        (["0" * 64, "--directory", directory.url], "no file with sha256"),
                        (["../x", "--directory", directory.url], "unsafe file name")]:
        result = runner.invoke(cli.main, ["get", *args])
        assert result.exit_code == 1 and words in result.output, result.output
        assert result.output.count("\n") == 1 and "Traceback" not in result.output


# -- reporting unreachable holders: only through a running peer's session ----------------------


def test_get_without_config_cannot_report_and_says_so_once(runner, directory, dead_holders, tmp_path):
    before = peers_now(directory)
    result = runner.invoke(cli.main, ["get", SHA, "--out", str(tmp_path / "d.bin"), "--directory", directory.url])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "d.bin").read_bytes() == DATA
    [warning] = warnings_about_reporting(result.output)
    assert "give --config of a running peer" in warning
    assert peers_now(directory) == before  # nobody reported, nobody logged in


def test_get_with_the_config_of_a_stopped_peer_never_logs_in_as_it(runner, directory, dead_holders, tmp_path):
    ini, _ = write_ini(tmp_path, "f", directory.url)
    before = peers_now(directory)
    result = runner.invoke(cli.main, ["-v", "get", SHA, "--config", ini])
    assert result.exit_code == 0, result.output
    [warning] = warnings_about_reporting(result.output)
    assert "peer f is not running" in warning and "continuing the download" in warning
    assert peers_now(directory) == before  # f absent, nobody new, no lease touched


def test_a_stale_session_file_is_not_used(runner, directory, dead_holders, tmp_path):
    ini, folder = write_ini(tmp_path, "f", directory.url)
    # f crashed: its session file stays behind, with a token the directory still honours
    token = rest_login(directory, "f", "127.0.0.1:9")
    session.write(folder, directory.url, token, "f")
    path = session.session_path(folder)
    with open(path, encoding="utf-8") as f:
        record = json.load(f)
    record["pid"] = exited_pid()
    with open(path, "w", encoding="utf-8") as f:
        json.dump(record, f)
    before = peers_now(directory)
    result = runner.invoke(cli.main, ["get", SHA, "--config", ini])
    assert result.exit_code == 0, result.output
    assert "peer f is not running" in warnings_about_reporting(result.output)[0]
    assert peers_now(directory) == before


def test_get_reports_through_the_running_peer_session_without_renewing_it(runner, directory, dead_holders,
                                                                          tmp_path):
    ini, folder = write_ini(tmp_path, "f", directory.url)
    # f is running (this process): its session is live, and no heartbeat of f runs meanwhile
    session.write(folder, directory.url, rest_login(directory, "f", "127.0.0.1:9"), "f")
    before = peers_now(directory)
    result = runner.invoke(cli.main, ["-v", "get", SHA, "--config", ini])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "f-shared" / "data.bin").read_bytes() == DATA
    # the swarm may finish from the live holder before it dials every dead one
    reported = [d for d in dead_holders if f"reported {d} unreachable; directory says removed" in result.output]
    assert reported
    assert warnings_about_reporting(result.output) == []
    after = peers_now(directory)
    assert sorted(after) == sorted({"f", "holder", *dead_holders} - set(reported))
    assert after["f"] == before["f"]  # same address, same last_seen: the report renewed nothing


def test_a_session_with_another_directory_is_never_sent_elsewhere(runner, directory, dead_holders, tmp_path):
    ini, folder = write_ini(tmp_path, "f", directory.url)
    session.write(folder, "http://127.0.0.1:9", "token-of-another-directory", "f")
    before = peers_now(directory)
    result = runner.invoke(cli.main, ["get", SHA, "--config", ini])
    assert result.exit_code == 0, result.output
    [warning] = warnings_about_reporting(result.output)
    assert "logged in to http://127.0.0.1:9, not to " + directory.url in warning
    assert peers_now(directory) == before


def test_a_refused_session_is_one_warning_per_holder_and_the_download_goes_on(runner, directory,
                                                                             dead_holders, tmp_path):
    ini, folder = write_ini(tmp_path, "f", directory.url)
    session.write(folder, directory.url, "a-token-the-directory-never-issued", "f")
    before = peers_now(directory)
    result = runner.invoke(cli.main, ["get", SHA, "--config", ini])
    assert result.exit_code == 0, result.output
    refused = [line for line in result.output.splitlines() if "refused the session of peer f" in line]
    # The swarm may finish from the live holder before it dials every dead one: each dead holder
    # it met is one warning, and it met at least one.
    reported = [dead for line in refused for dead in dead_holders if f"report {dead} " in line]
    assert reported and len(reported) == len(set(reported)) == len(refused)
    assert peers_now(directory) == before
