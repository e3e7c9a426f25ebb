"""The local CA of `p2p certs`: certificates that real TLS handshakes accept, keys kept private."""
import os
import socket
import ssl
import stat
import threading

import pytest

from peer_node import certs


@pytest.fixture
def network(tmp_path):
    return {i.name: i for i in certs.write_network(str(tmp_path / "tls"), ["peer1", "peer2"])}


def _handshake(server_pair, client_pair, ca, server_hostname, require_client=True):
    """Run one TLS handshake over loopback; return the peer certificate the server saw (or raise)."""
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=ca)
    server_ctx.load_cert_chain(server_pair.cert, server_pair.key)
    server_ctx.verify_mode = ssl.CERT_REQUIRED if require_client else ssl.CERT_NONE
    client_ctx = ssl.create_default_context(cafile=ca)
    if client_pair is not None:
        client_ctx.load_cert_chain(client_pair.cert, client_pair.key)
    listener = socket.create_server(("127.0.0.1", 0))
    seen = {}

    def serve():
        conn, _ = listener.accept()
        try:
            with server_ctx.wrap_socket(conn, server_side=True) as tls:
                seen["peer"] = tls.getpeercert()
                tls.recv(1)
        except (ssl.SSLError, OSError) as exc:
            seen["error"] = exc

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        with socket.create_connection(listener.getsockname(), timeout=5) as raw:
            with client_ctx.wrap_socket(raw, server_hostname=server_hostname) as tls:
                tls.sendall(b"x")
    finally:
        thread.join(5)
        listener.close()
    return seen


@pytest.mark.parametrize("hostname", ["127.0.0.1", "localhost", "::1"])
def test_mutual_tls_between_two_peers_verifies_at_every_default_host(network, hostname):
    seen = _handshake(network["peer1"], network["peer2"], network["ca"].cert, hostname)
    subject = dict(part[0] for part in seen["peer"]["subject"])
    assert subject["commonName"] == "peer2"


def test_a_certificate_for_other_hosts_is_refused_by_hostname(tmp_path, network):
    other = certs.write_network(str(tmp_path / "tls"), [], hosts=("peer.example.org",))[1]
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(other, None, network["ca"].cert, "127.0.0.1", require_client=False)


def test_a_certificate_from_another_ca_is_refused(tmp_path, network):
    stranger = {i.name: i for i in certs.write_network(str(tmp_path / "other"), ["peer1"])}
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(stranger["peer1"], None, network["ca"].cert, "127.0.0.1", require_client=False)


def test_keys_are_private_and_the_ca_is_reused(tmp_path, network):
    for item in network.values():
        assert stat.S_IMODE(os.stat(item.key).st_mode) == 0o600
    ca_before = open(network["ca"].cert, "rb").read()
    again = {i.name: i for i in certs.write_network(str(tmp_path / "tls"), ["peer3"])}
    assert open(again["ca"].cert, "rb").read() == ca_before
    seen = _handshake(network["peer1"], again["peer3"], network["ca"].cert, "127.0.0.1")
    assert dict(p[0] for p in seen["peer"]["subject"])["commonName"] == "peer3"
