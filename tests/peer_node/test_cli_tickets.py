"""`p2p get`, `p2p put` and `p2p ticket` ask for tickets in a client session (never a live-peer login),
against a fake directory that signs real tickets and in-process peers that check them."""
import hashlib
import json
import os

import pytest

import peer_node.cli as cli
from peer_node.admission import Admission, Keyring
from protos import tickets
from tests.fixtures.fake_directory import FakeDirectory

DATA = os.urandom(200_000)
SHA = hashlib.sha256(DATA).hexdigest()


@pytest.fixture
def fake():
    d = FakeDirectory()
    yield d
    d.close()


def checking_peer(inproc_peer_factory, fake, peer_id, files):
    """An in-process peer named peer_id that checks tickets with the fake directory's key, listed there."""
    keyring = Keyring()
    keyring.learn(fake.mint.key_dict)
    peer = inproc_peer_factory(files, admission=Admission(peer_id, keyring), min_free_bytes=0)
    fake.peers.append({"peer_id": peer_id, "grpc_address": peer.address})
    return peer


@pytest.fixture
def holder(inproc_peer_factory, fake):
    peer = checking_peer(inproc_peer_factory, fake, "holder", {"data.bin": DATA})
    entry = peer.folder.by_name("data.bin")
    fake.files[SHA] = {"sha256": SHA, "size": len(DATA), "names": ["data.bin"],
                       "holders": [{"peer_id": "holder", "grpc_address": peer.address}],
                       "piece_size": entry.piece_size, "pieces": list(entry.pieces)}
    return peer


def logins(fake):
    return [body for _, _, _, body in fake.calls("/login")]


def ticket_calls(fake):
    return [(auth, body) for _, _, auth, body in fake.calls("/tickets")]


def test_get_with_flags_logs_in_as_a_client_and_shows_the_ticket(runner, fake, holder, tmp_path):
    out = tmp_path / "got.bin"
    result = runner.invoke(cli.main, ["get", SHA, "--out", str(out), "--directory", fake.url,
                                      "--peer-id", "alice", "--secret", "alice-secret"])
    assert result.exit_code == 0, result.output
    assert out.read_bytes() == DATA
    assert logins(fake) == [{"peer_id": "alice", "secret": "alice-secret"}]  # no grpc_address: a client
    [(auth, body)] = ticket_calls(fake)
    assert auth.startswith("Bearer token-") and body == {"sha256": SHA, "purpose": "download"}


@pytest.mark.parametrize("how", ["env", "config"])
def test_get_takes_the_identity_from_the_environment_or_the_config(runner, fake, holder, tmp_path, how):
    args = ["get", SHA, "--out", str(tmp_path / "got.bin")]
    env = {}
    if how == "env":
        env = {"P2P_PEER_ID": "bob", "P2P_SECRET": "bob-secret", "P2P_DIRECTORY": fake.url}
    else:
        ini = tmp_path / "bob.ini"
        ini.write_text(f"[peer]\npeer_id = bob\nsecret = bob-secret\n[directory]\nurl = {fake.url}\n")
        args += ["--config", str(ini)]
    result = runner.invoke(cli.main, args, env=env)
    assert result.exit_code == 0, result.output
    assert logins(fake) == [{"peer_id": "bob", "secret": "bob-secret"}]


def test_anonymous_get_works_on_an_open_network(runner, holder, fake, tmp_path):
    fake.open_downloads = True
    result = runner.invoke(cli.main, ["get", SHA, "--out", str(tmp_path / "got.bin"), "--directory", fake.url])
    assert result.exit_code == 0, result.output
    assert logins(fake) == [] and [auth for auth, _ in ticket_calls(fake)] == [None]


def test_anonymous_get_on_a_closed_network_is_one_line(runner, holder, fake, tmp_path):
    result = runner.invoke(cli.main, ["get", SHA, "--out", str(tmp_path / "got.bin"), "--directory", fake.url])
    assert result.exit_code == 1 and result.output.count("\n") == 1
    assert "only to logged-in peers" in result.output and "--peer-id" in result.output
    assert not (tmp_path / "got.bin").exists()


def test_a_wrong_secret_is_one_line(runner, holder, fake, tmp_path):
    result = runner.invoke(cli.main, ["get", SHA, "--directory", fake.url, "--peer-id", "alice", "--secret", "no"])
    assert result.exit_code == 1 and result.output.count("\n") == 1 and "401" in result.output


@pytest.mark.parametrize("by_holder", [False, True])
def test_put_asks_an_upload_ticket_for_the_peer_at_the_address(runner, inproc_peer_factory, fake, tmp_path, by_holder):
    target = checking_peer(inproc_peer_factory, fake, "target", {})
    src = tmp_path / "up.bin"
    src.write_bytes(DATA)
    args = ["put", str(src), target.address, "--name", "in/up.bin", "--directory", fake.url,
            "--peer-id", "alice", "--secret", "alice-secret"] + (["--holder", "target"] if by_holder else [])
    result = runner.invoke(cli.main, args)
    assert result.exit_code == 0, result.output
    assert "uploaded in/up.bin" in result.output
    assert target.folder.by_name("in/up.bin").sha256 == SHA
    [(auth, body)] = ticket_calls(fake)
    assert body == {"sha256": SHA, "purpose": "upload", "holder": "target", "size": len(DATA)}
    assert logins(fake) == [{"peer_id": "alice", "secret": "alice-secret"}]


@pytest.mark.parametrize("args,expected", [
    ([], "--peer-id and --secret"),
    (["--peer-id", "alice", "--secret", "alice-secret", "--holder", "nobody"], "another peer"),
])
def test_put_refusals_are_one_line(runner, inproc_peer_factory, fake, tmp_path, args, expected):
    target = checking_peer(inproc_peer_factory, fake, "target", {})
    src = tmp_path / "up.bin"
    src.write_bytes(b"x")
    result = runner.invoke(cli.main, ["put", str(src), target.address, "--directory", fake.url, *args])
    assert result.exit_code == 1 and result.output.count("\n") == 1 and expected in result.output
    assert target.folder.entries() == []


def test_put_to_an_address_the_directory_does_not_list(runner, fake, tmp_path):
    src = tmp_path / "up.bin"
    src.write_bytes(b"x")
    result = runner.invoke(cli.main, ["put", str(src), "127.0.0.1:9", "--directory", fake.url,
                                      "--peer-id", "alice", "--secret", "alice-secret"])
    assert result.exit_code == 1 and "no live peer is listed at 127.0.0.1:9" in result.output


def test_put_without_a_directory_to_a_checking_peer_says_what_to_do(runner, inproc_peer_factory, fake, tmp_path):
    target = checking_peer(inproc_peer_factory, fake, "target", {})
    src = tmp_path / "up.bin"
    src.write_bytes(b"x")
    result = runner.invoke(cli.main, ["put", str(src), target.address])
    assert result.exit_code == 1 and "only with a ticket" in result.output


def test_ticket_prints_a_ticket_the_peer_accepts(runner, fake, holder):
    result = runner.invoke(cli.main, ["ticket", SHA, "--directory", fake.url, "--peer-id", "alice",
                                      "--secret", "alice-secret"])
    assert result.exit_code == 0, result.output
    text = result.output.strip()
    claims = holder.service.admit(tickets.bearer(text), tickets.DOWNLOAD)
    assert claims.sub == "alice" and claims.sha == SHA
    assert logins(fake) == [{"peer_id": "alice", "secret": "alice-secret"}]


def test_ticket_for_an_upload_as_json(runner, fake):
    result = runner.invoke(cli.main, ["ticket", SHA, "--purpose", "upload", "--holder", "target", "--size", "5",
                                      "--json", "--directory", fake.url, "--peer-id", "a", "--secret", "a-secret"])
    assert result.exit_code == 0, result.output
    answer = json.loads(result.output)
    assert set(answer) == {"ticket", "expires_at"} and isinstance(answer["expires_at"], int)
    assert ticket_calls(fake)[0][1] == {"sha256": SHA, "purpose": "upload", "holder": "target", "size": 5}


@pytest.mark.parametrize("args,expected", [
    (["nothex"], "64 lowercase hex"),
    ([SHA, "--purpose", "upload"], "--holder"),
    ([SHA, "--purpose", "upload", "--holder", "t"], "--peer-id and --secret"),
    ([SHA], "only to logged-in peers" if False else "refused a ticket"),
])
def test_ticket_refusals(runner, fake, args, expected):
    result = runner.invoke(cli.main, ["ticket", *args, "--directory", fake.url])
    assert result.exit_code != 0 and expected in result.output and "Traceback" not in result.output


def test_get_of_a_file_already_there_asks_no_ticket(runner, holder, fake, tmp_path):
    out = tmp_path / "got.bin"
    out.write_bytes(DATA)
    result = runner.invoke(cli.main, ["get", SHA, "--out", str(out), "--directory", fake.url])
    assert result.exit_code == 0 and "already holds" in result.output
    assert ticket_calls(fake) == []
