"""A local certificate authority for a test network: `p2p certs DIR` (cryptography, no openssl CLI).

One CA signs a certificate for the directory and one per peer. Every certificate names the
hosts it may be reached at (subject alternative names: 127.0.0.1, ::1 and localhost by
default, plus any given) and may serve as both a TLS server and a TLS client certificate, so
the same pair serves a peer's gRPC port and proves the peer when it dials another with mutual
TLS. Keys are ECDSA P-256 (fast handshakes) and are written with mode 0600.
"""
import datetime
import ipaddress
import os
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from peer_node.errors import P2PError

DEFAULT_HOSTS = ("127.0.0.1", "::1", "localhost")
DEFAULT_DAYS = 365
CA_NAME = "ca"
DIRECTORY_NAME = "directory"


@dataclass(frozen=True)
class Issued:
    """Where one certificate and its key were written."""

    name: str
    cert: str
    key: str


def _key():
    return ec.generate_private_key(ec.SECP256R1())


def _write(path, data, private=False):
    # A key never exists on disk with wider permissions, not even for an instant.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _pem_key(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _san(hosts):
    names = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(names)


def _name(common_name):
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "p2p-share test network"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_ca(days=DEFAULT_DAYS):
    """A new self-signed CA: (certificate, private key)."""
    key = _key()
    now = datetime.datetime.now(datetime.timezone.utc)
    name = _name("p2p-share local CA")
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def issue(ca_cert, ca_key, common_name, hosts=DEFAULT_HOSTS, days=DEFAULT_DAYS):
    """A certificate for common_name at hosts, signed by the CA, for server and client use."""
    key = _key()
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name)).issuer_name(ca_cert.subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_san(hosts), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                       critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return cert, key


def write_network(directory, peers, hosts=DEFAULT_HOSTS, days=DEFAULT_DAYS):
    """Write ca.pem, directory.pem and <peer>.pem (each with its -key.pem) into directory.

    Returns the Issued entries, the CA first. An existing CA key in directory is reused, so
    certificates for more peers can be added later; existing peer certificates are replaced.
    """
    os.makedirs(directory, exist_ok=True)
    ca_cert_path = os.path.join(directory, f"{CA_NAME}.pem")
    ca_key_path = os.path.join(directory, f"{CA_NAME}-key.pem")
    if os.path.exists(ca_cert_path) and os.path.exists(ca_key_path):
        try:
            with open(ca_cert_path, "rb") as f:
                ca_cert = x509.load_pem_x509_certificate(f.read())
            with open(ca_key_path, "rb") as f:
                ca_key = serialization.load_pem_private_key(f.read(), password=None)
        except (OSError, ValueError) as exc:
            raise P2PError(f"{ca_cert_path}: cannot reuse this CA: {exc}") from None
    else:
        ca_cert, ca_key = make_ca(days)
        _write(ca_key_path, _pem_key(ca_key), private=True)
        _write(ca_cert_path, ca_cert.public_bytes(serialization.Encoding.PEM))
    issued = [Issued(CA_NAME, ca_cert_path, ca_key_path)]
    for name in (DIRECTORY_NAME, *peers):
        cert, key = issue(ca_cert, ca_key, name, hosts, days)
        cert_path = os.path.join(directory, f"{name}.pem")
        key_path = os.path.join(directory, f"{name}-key.pem")
        _write(key_path, _pem_key(key), private=True)
        _write(cert_path, cert.public_bytes(serialization.Encoding.PEM))
        issued.append(Issued(name, cert_path, key_path))
    return issued
