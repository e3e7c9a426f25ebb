"""Transport security: gRPC credentials from the [tls] settings, and one-line reasons for failed handshakes.

A peer serves TLS when `[tls] cert` and `key` are set (and requires a client certificate
signed by `[tls] ca` with `require_client_cert`); it dials other peers over TLS, verifying them
against `[tls] ca`, when that is set, presenting `[tls] client_cert`/`client_key` if given.
`[directory] ca` is what `requests` verifies an HTTPS directory against (else the system store).

Dialing trust is process-wide, like the system store `requests` uses: the entry point calls
use(cfg) once, and every PeerClient (and every DirectoryClient made without its own verify)
follows it; the swarm and the replication pushes create their clients deep inside.
"""
import logging
import socket
import ssl
from dataclasses import dataclass

import grpc

from peer_node.errors import ConfigError, TransportSecurityError

log = logging.getLogger(__name__)

PROBE_TIMEOUT = 1.0  # the diagnostic handshake after a failed dial: a loopback answer takes ms


@dataclass(frozen=True)
class Dial:
    """How this process dials peers over TLS: the CA it trusts and, for mutual TLS, its own pair."""

    ca: bytes
    ca_path: str
    client_cert: bytes = None
    client_key: bytes = None
    client_cert_path: str = None
    client_key_path: str = None

    def credentials(self):
        """grpc channel credentials that verify the peer against ca (and present our pair)."""
        return grpc.ssl_channel_credentials(self.ca, self.client_key, self.client_cert)


_process = {"dial": None, "directory_ca": None}


def _source(cfg):
    return cfg.source if cfg.source != "defaults" else "settings"


def _key(label):
    """'[tls] key' -> '[tls] key (P2P_TLS_KEY)': the value may have come from either."""
    section, key = label.strip("[").split("] ")
    env = "P2P_DIRECTORY_CA" if section == "directory" else f"P2P_TLS_{key.upper()}"
    return f"{label} ({env})"


def _read(cfg, field, label, kind):
    path = getattr(cfg, field)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise ConfigError(_source(cfg), _key(label), f"{path}: {exc.strerror or exc}") from None
    from cryptography import x509  # only a TLS config pays for the import
    from cryptography.hazmat.primitives import serialization

    try:
        if kind == "cert":
            x509.load_pem_x509_certificates(data)
        else:
            serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        what = "certificate" if kind == "cert" else "private key (unencrypted)"
        raise ConfigError(_source(cfg), _key(label),
                          f"{path}: not a PEM {what}: {str(exc).splitlines()[0]}") from None
    return data


def _pair(cfg, cert_field, key_field, section_key):
    cert, key = getattr(cfg, cert_field), getattr(cfg, key_field)
    if bool(cert) != bool(key):
        missing, given = (key_field, cert_field) if cert else (cert_field, key_field)
        raise ConfigError(_source(cfg), _key(f"[tls] {missing[4:]}"),
                          f"missing: [tls] {given[4:]} is set, and {section_key} needs both")
    if not cert:
        return None, None
    return (_read(cfg, cert_field, f"[tls] {cert_field[4:]}", "cert"),
            _read(cfg, key_field, f"[tls] {key_field[4:]}", "key"))


def dial_settings(cfg):
    """The Dial for cfg ([tls] ca set), or None: peers are dialed in plaintext."""
    client_cert, client_key = _pair(cfg, "tls_client_cert", "tls_client_key", "a client certificate")
    if not cfg.tls_ca:
        if client_cert:
            raise ConfigError(_source(cfg), _key("[tls] ca"),
                              "missing: a client certificate needs the CA to verify peers")
        return None
    ca = _read(cfg, "tls_ca", "[tls] ca", "cert")
    return Dial(ca, cfg.tls_ca, client_cert, client_key, cfg.tls_client_cert, cfg.tls_client_key)


def server_credentials(cfg):
    """grpc server credentials for cfg ([tls] cert and key set), or None: serve plaintext."""
    cert, key = _pair(cfg, "tls_cert", "tls_key", "serving TLS")
    if cfg.tls_require_client_cert and not (cert and cfg.tls_ca):
        raise ConfigError(_source(cfg), _key("[tls] require_client_cert"),
                          "needs [tls] cert, key and ca (the CA client certificates must come from)")
    if not cert:
        return None
    ca = _read(cfg, "tls_ca", "[tls] ca", "cert") if cfg.tls_require_client_cert else None
    return grpc.ssl_server_credentials([(key, cert)], root_certificates=ca,
                                       require_client_auth=bool(cfg.tls_require_client_cert))


def use(cfg):
    """Make cfg's dialing trust this process's default (PeerClient, DirectoryClient); returns the Dial."""
    dial = dial_settings(cfg)
    if cfg.directory_ca:  # requests would fail on it at the first call, with a traceback
        _read(cfg, "directory_ca", "[directory] ca", "cert")
    _process["dial"] = dial
    _process["directory_ca"] = cfg.directory_ca
    return dial


def reset():
    """Back to plaintext dialing and the system store (tests)."""
    _process["dial"], _process["directory_ca"] = None, None


def dialing():
    """The process's Dial (None: plaintext)."""
    return _process["dial"]


def directory_verify():
    """What requests verifies the directory with: the [directory] ca file, else True (system store)."""
    return _process["directory_ca"] or True


def channel(address, dial, options):
    """A grpc channel to address: TLS verified by dial, or plaintext when dial is None."""
    if dial is None:
        return grpc.insecure_channel(address, options=options)
    return grpc.secure_channel(address, dial.credentials(), options=options)


# -- one line on why a dial failed ---------------------------------------------------------

def explain(address, dial, detail):
    """A TransportSecurityError when a failed connection was a TLS mismatch, else None.

    detail is gRPC's status message of a call that could not connect. TLS failures on our
    side are named in it; a server that refuses the handshake just closes the socket, so then
    a short handshake of our own (only after a failure, never on the way of a working call)
    tells plaintext from TLS and a refused client certificate from a dead peer.
    """
    text = detail or ""
    if "failed to connect" not in text:
        return None  # the connection was up: a broken stream is not a handshake problem
    if dial is not None:
        if "WRONG_VERSION_NUMBER" in text or "PACKET_LENGTH_TOO_LONG" in text or "HTTP_REQUEST" in text:
            return TransportSecurityError(address, "answers in plaintext, not TLS (a peer without [tls] cert "
                                                   "and key?); we dial TLS because [tls] ca is set")
        if "CERTIFICATE_VERIFY_FAILED" in text or "CERTIFICATE_VERIFY" in text:
            return TransportSecurityError(address, f"its TLS certificate is not signed by our CA ([tls] ca "
                                                   f"{dial.ca_path}): a certificate from another CA?")
        if "Hostname Verification" in text or "not in peer certificate" in text:
            host = address.rsplit(":", 1)[0].strip("[]")
            return TransportSecurityError(address, f"its TLS certificate does not name {host} (make one that "
                                                   f"does: p2p certs DIR --host {host})")
    if "Socket closed" not in text and "Connection reset" not in text:
        return None
    verdict = _probe(address, dial)
    if verdict == "tls" and dial is None:
        return TransportSecurityError(address, "serves TLS and we dialed plaintext: set [tls] ca (P2P_TLS_CA) "
                                               "to the network's CA certificate", ours=True)
    if verdict == "refused" and dial is not None:
        if dial.client_cert is None:
            return TransportSecurityError(address, "requires a client certificate (mutual TLS): set [tls] "
                                                   "client_cert and client_key", ours=True)
        return TransportSecurityError(address, f"refused our client certificate ([tls] client_cert "
                                               f"{dial.client_cert_path}): not signed by its CA?", ours=True)
    return None


def _split(address):
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


def _probe(address, dial):
    """'tls' (a TLS server answered), 'refused' (it closed on us after the handshake), 'ok' or None."""
    try:
        host, port = _split(address)
        raw = socket.create_connection((host, port), timeout=PROBE_TIMEOUT)
    except (OSError, ValueError):
        return None
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # this handshake only learns what the server speaks
    ctx.set_alpn_protocols(["h2"])
    if dial is not None and dial.client_cert_path:
        try:
            ctx.load_cert_chain(dial.client_cert_path, dial.client_key_path)
        except (OSError, ssl.SSLError):
            return None
    try:
        with ctx.wrap_socket(raw, server_hostname=host) as conn:
            if dial is None:
                return "tls"
            # In TLS 1.3 the server checks our certificate after our side of the handshake is
            # done: a gRPC server that accepts it sends its HTTP/2 SETTINGS at once, one that
            # refuses it closes the connection.
            conn.settimeout(PROBE_TIMEOUT)
            try:
                return "ok" if conn.recv(1) else "refused"
            except ssl.SSLError:
                return "refused"
            except OSError:
                return None
    except (ssl.SSLError, OSError):
        return None
    finally:
        raw.close()

