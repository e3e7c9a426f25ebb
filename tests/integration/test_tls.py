"""A TLS network end to end: `p2p certs`, three `p2p serve` peers over TLS, replication, `p2p get`,
stock grpcurl with -cacert, the directory's probe, and plaintext refused with one line.

The directory itself serves plain HTTP here (its HTTPS is --certfile/--keyfile under
gunicorn, tested with the directory); everything between peers and clients is TLS.
"""
import os
import subprocess
import sys

import pytest
import requests

from tests.integration.helpers import GRPCURL, clean_env, holders_of, sha, wait_until, write_config
from tests.procs import ROOT

pytestmark = pytest.mark.integration

DATA = os.urandom(300_000)
SHA = sha(DATA)
CLIENT = {"P2P_PEER_ID": "reader", "P2P_SECRET": "reader-secret"}  # the client session that asks the tickets


def run(*argv, cwd, env=None, timeout=60):
    """A command with the test's environment (no P2P_* of the user's) plus env."""
    return subprocess.run([str(a) for a in argv], cwd=cwd, env=clean_env(PYTHONPATH=str(ROOT), **(env or {})),
                          capture_output=True, text=True, timeout=timeout)


def p2p(*args, cwd, env=None):
    """`python -m peer_node args` as a user runs it."""
    return run(sys.executable, "-m", "peer_node", *args, cwd=cwd, env=env)


@pytest.fixture
def pki(tmp_path):
    """`p2p certs tls --peers 3`: the folder of the network's certificates."""
    done = p2p("certs", "tls", "--peers", "3", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    return tmp_path / "tls"


@pytest.fixture
def network(tmp_path, pki, directory_factory, peer_factory):
    """A directory (copies wanted: 2; its probe trusts the CA) and three TLS peers; peer1 shares data.bin."""
    directory = directory_factory(lease=2, replication=2,
                                  extra_args=("--peer-ca", pki / "ca.pem"))
    peers = []
    for n in (1, 2, 3):
        env = {"P2P_TLS_CERT": str(pki / f"peer{n}.pem"), "P2P_TLS_KEY": str(pki / f"peer{n}-key.pem"),
               "P2P_TLS_CA": str(pki / "ca.pem")}
        files = {"data.bin": DATA} if n == 1 else {}
        peers.append(peer_factory(directory.url, files=files, peer_id=f"peer{n}", env=env))
    for peer in peers:
        peer.wait_for_output(r"logged in to", timeout=20)
    return directory, peers


def test_replication_and_p2p_get_over_tls_and_plaintext_is_refused(tmp_path, pki, network):
    directory, (peer1, peer2, peer3) = network
    # replication: peer1 pushed a copy over TLS to one of the others
    holders = wait_until(lambda: len(holders_of(directory.url, SHA)) == 2 and holders_of(directory.url, SHA),
                         timeout=30)
    assert holders[0] == "peer1" and holders[1] in ("peer2", "peer3")
    backup = {"peer2": peer2, "peer3": peer3}[holders[1]]
    with open(os.path.join(backup.folder, "data.bin"), "rb") as f:
        assert f.read() == DATA

    tls_env = {"P2P_TLS_CA": str(pki / "ca.pem"), **CLIENT}
    done = p2p("get", SHA, "--out", tmp_path / "copy.bin", "--directory", directory.url, cwd=tmp_path, env=tls_env)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "copy.bin").read_bytes() == DATA

    # a client without the CA dials plaintext: one line that says the holders serve TLS
    done = p2p("get", SHA, "--out", tmp_path / "plain.bin", "--directory", directory.url, cwd=tmp_path, env=CLIENT)
    assert done.returncode == 1 and not (tmp_path / "plain.bin").exists()
    lines = [line for line in done.stderr.strip().splitlines() if not line.startswith("plain.bin: ")]  # progress
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("Error: peer 127.0.0.1:")
    assert "serves TLS and we dialed plaintext: set [tls] ca (P2P_TLS_CA)" in lines[0]
    done = p2p("ls", peer1.address, cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"Error: peer {peer1.address}: serves TLS and we dialed plaintext: set [tls] ca (P2P_TLS_CA) "
        "to the network's CA certificate"]
    # and one that trusts another CA is told so
    other = p2p("certs", "other", "--peers", "0", cwd=tmp_path)
    assert other.returncode == 0, other.stderr
    done = p2p("ls", peer1.address, cwd=tmp_path, env={"P2P_TLS_CA": str(tmp_path / "other" / "ca.pem")})
    assert done.returncode == 1 and len(done.stderr.strip().splitlines()) == 1
    assert "its TLS certificate is not signed by our CA" in done.stderr


def test_the_directory_probe_finds_a_tls_peer_alive(network):
    directory, (peer1, _, _) = network
    # a reporter with a session of its own says peer1 is unreachable; the TLS probe says otherwise
    login = requests.post(f"{directory.url}/api/v1/login", timeout=5, json={
        "peer_id": "reporter", "secret": "reporter-secret", "grpc_address": "127.0.0.1:9"})
    assert login.status_code == 200, login.text
    answer = requests.post(f"{directory.url}/api/v1/peers/peer1/unreachable", json={}, timeout=10,
                           headers={"Authorization": f"Bearer {login.json()['token']}"})
    assert answer.ok and answer.json()["status"] == "alive", answer.text


@pytest.mark.skipif(not os.access(GRPCURL, os.X_OK), reason=f"grpcurl not installed at {GRPCURL} (make venv)")
def test_stock_grpcurl_with_the_ca(tmp_path, pki, network):
    directory, (peer1, _, _) = network
    ca = str(pki / "ca.pem")
    listed = run(GRPCURL, "-cacert", ca, peer1.address, "list", cwd=tmp_path)
    assert listed.returncode == 0 and "p2p.v1.P2PService" in listed.stdout, listed.stderr
    health = run(GRPCURL, "-cacert", ca, peer1.address, "grpc.health.v1.Health/Check", cwd=tmp_path)
    assert health.returncode == 0 and "SERVING" in health.stdout, health.stderr
    files = run(GRPCURL, "-cacert", ca, "-d", "{}", peer1.address, "p2p.v1.P2PService/ListFiles", cwd=tmp_path)
    assert files.returncode == 0 and SHA in files.stdout, files.stderr
    ticket = p2p("ticket", SHA, "--directory", directory.url, cwd=tmp_path, env=CLIENT).stdout.strip()
    got = run(GRPCURL, "-cacert", ca, "-H", f"authorization: Bearer {ticket}", "-d",
              f'{{"sha256": "{SHA}", "offset": 1, "length": 2}}', peer1.address, "p2p.v1.P2PService/Download",
              cwd=tmp_path)
    assert got.returncode == 0 and '"offset": "1"' in got.stdout, got.stderr
    plain = run(GRPCURL, "-plaintext", peer1.address, "list", cwd=tmp_path)
    assert plain.returncode != 0
    untrusted = run(GRPCURL, peer1.address, "list", cwd=tmp_path)  # the system store knows no such CA
    assert untrusted.returncode != 0 and "certificate" in untrusted.stderr


def test_mutual_tls_peer_refuses_callers_without_a_client_certificate(tmp_path, pki, directory_factory,
                                                                      peer_factory):
    directory = directory_factory(lease=2, extra_args=(
        "--peer-ca", pki / "ca.pem", "--peer-cert", pki / "directory.pem", "--peer-key", pki / "directory-key.pem"))
    server_env = {"P2P_TLS_CERT": str(pki / "peer1.pem"), "P2P_TLS_KEY": str(pki / "peer1-key.pem"),
                  "P2P_TLS_CA": str(pki / "ca.pem"), "P2P_TLS_REQUIRE_CLIENT_CERT": "true"}
    peer = peer_factory(directory.url, files={"data.bin": DATA}, peer_id="peer1", env=server_env)
    peer.wait_for_output(r"logged in to", timeout=20)
    ca_only = {"P2P_TLS_CA": str(pki / "ca.pem")}
    done = p2p("ls", peer.address, cwd=tmp_path, env=ca_only)
    assert done.returncode == 1 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "requires a client certificate (mutual TLS): set [tls] client_cert and client_key" in done.stderr
    mutual = {**ca_only, "P2P_TLS_CLIENT_CERT": str(pki / "peer2.pem"), "P2P_TLS_CLIENT_KEY": str(pki / "peer2-key.pem")}
    done = p2p("ls", peer.address, cwd=tmp_path, env=mutual)
    assert done.returncode == 0 and "data.bin" in done.stdout, done.stderr
    (tmp_path / "note.txt").write_bytes(b"a note over mutual TLS\n")
    done = p2p("put", tmp_path / "note.txt", peer.address, "--directory", directory.url, cwd=tmp_path,
               env={**mutual, **CLIENT})
    assert done.returncode == 0, done.stderr
    assert (open(os.path.join(peer.folder, "note.txt"), "rb").read()) == b"a note over mutual TLS\n"
    if os.access(GRPCURL, os.X_OK):
        listed = run(GRPCURL, "-cacert", pki / "ca.pem", "-cert", pki / "peer2.pem", "-key", pki / "peer2-key.pem",
                     peer.address, "list", cwd=tmp_path)
        assert listed.returncode == 0 and "p2p.v1.P2PService" in listed.stdout, listed.stderr
    # the directory's probe presents its own certificate of the network, so peer1 stays listed
    login = requests.post(f"{directory.url}/api/v1/login", timeout=5, json={
        "peer_id": "reporter", "secret": "reporter-secret", "grpc_address": "127.0.0.1:9"})
    answer = requests.post(f"{directory.url}/api/v1/peers/peer1/unreachable", json={}, timeout=10,
                           headers={"Authorization": f"Bearer {login.json()['token']}"})
    assert answer.ok and answer.json()["status"] == "alive", answer.text


def test_a_holder_with_another_networks_certificate_is_skipped(tmp_path, pki, network, peer_factory):
    directory, (_, peer2, _) = network
    other = p2p("certs", "other", "--peers", "1", cwd=tmp_path)
    assert other.returncode == 0, other.stderr
    theirs = tmp_path / "other"
    # sorts first among the holders, so the download tries it before the honest ones
    impostor = peer_factory(directory.url, files={"data.bin": DATA}, peer_id="aaa-impostor", env={
        "P2P_TLS_CERT": str(theirs / "peer1.pem"), "P2P_TLS_KEY": str(theirs / "peer1-key.pem"),
        "P2P_TLS_CA": str(theirs / "ca.pem")})
    wait_until(lambda: "aaa-impostor" in holders_of(directory.url, SHA), timeout=20)
    # through the session of running peer2, so the failed holder is reported to the directory
    config = write_config(tmp_path / "peer2.ini", peer2, directory.url)
    done = p2p("get", SHA, "--out", tmp_path / "copy.bin", "--config", config, "--parallel", "1",
               cwd=tmp_path, env={"P2P_TLS_CA": str(pki / "ca.pem")})
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "copy.bin").read_bytes() == DATA
    assert f"holder aaa-impostor ({impostor.address}) failed: its TLS certificate is not signed by our CA" \
        in done.stderr
    # the directory's probe (verifying against the network's CA, or plaintext) finds no peer of ours there
    wait_until(lambda: "aaa-impostor" not in holders_of(directory.url, SHA), timeout=10)


def test_peers_and_clients_verify_an_https_directory_against_directory_ca(tmp_path, pki, peer_factory):
    from tests.procs import ServerProcess, python_module

    directory = ServerProcess(python_module(
        "directory_api", "--host", "127.0.0.1", "--port", "0", "--database", f"sqlite:///{tmp_path}/d.db",
        "--lease", "2", "--workers", "1", "--certfile", pki / "directory.pem", "--keyfile", pki / "directory-key.pem",
        "--peer-ca", pki / "ca.pem"), r"directory listening on (https?://\S+)")
    try:
        url = "https://" + directory.match.group(1).split("://", 1)[1]
        trust = {"P2P_TLS_CA": str(pki / "ca.pem"), "P2P_DIRECTORY_CA": str(pki / "ca.pem"), **CLIENT}
        peer = peer_factory(url, files={"data.bin": DATA}, peer_id="peer1", env={
            **trust, "P2P_TLS_CERT": str(pki / "peer1.pem"), "P2P_TLS_KEY": str(pki / "peer1-key.pem")})
        peer.wait_for_output(r"logged in to", timeout=20)
        done = p2p("get", SHA, "--out", tmp_path / "copy.bin", "--directory", url, cwd=tmp_path, env=trust)
        assert done.returncode == 0, done.stderr
        assert (tmp_path / "copy.bin").read_bytes() == DATA
        done = p2p("peers", "--directory", url, cwd=tmp_path)  # the system store does not know our CA
        assert done.returncode == 1 and len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert "did not verify" in done.stderr and "[directory] ca" in done.stderr
    finally:
        directory.stop()
