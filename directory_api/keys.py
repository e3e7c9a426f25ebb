"""The directory's ticket-signing key and the tickets it signs (the format is protos/tickets.py).

Every directory process of one network must sign with the same Ed25519 key, or a peer that
learnt one process's key would refuse tickets of another. Where the key comes from:

- ``ticket_key_file`` (``DIRECTORY_TICKET_KEY_FILE``): a PEM file, created with mode 0600 at the
  first start when it does not exist yet. Give every process the same file to keep the key out
  of the database.
- otherwise, with SQLite: ``<database>-ticket-key.pem`` beside the database file (a database in
  memory gets a key that lives as long as the process);
- otherwise, with PostgreSQL: a row of the database itself, stored by the first process that
  starts and read by every other one (store/keys.py).
"""
from __future__ import annotations

import logging
import os
import tempfile
import time
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.engine import make_url

from protos import tickets
from protos.tickets import Claims

from .errors import ConfigError

log = logging.getLogger(__name__)


def _pem(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _load(pem: bytes, where: str) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{where}: not a PEM private key: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"{where}: the ticket key must be an Ed25519 key")
    return key


def _from_file(path: str) -> Ed25519PrivateKey:
    """The key in path, written there first (0600, never replacing a file) when it is missing."""
    if not os.path.exists(path):
        _create(path)
    try:
        with open(path, "rb") as f:
            return _load(f.read(), f"ticket key {path}")
    except OSError as exc:
        raise ConfigError(f"ticket key {path}: cannot read it: {exc.strerror or exc}") from None


def _create(path: str) -> None:
    """Write a new key to path whole or not at all: processes starting together all read one key.

    The key is written and fsynced under a temporary name, then hard-linked to path; a link never
    replaces a file, so when two processes race exactly one key wins and nobody reads a half file.
    """
    folder = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.")  # mode 0600
    except OSError as exc:
        raise ConfigError(f"ticket key {path}: cannot create it: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(_pem(Ed25519PrivateKey.generate()))
            f.flush()
            os.fsync(f.fileno())
        os.link(tmp, path)
    except FileExistsError:
        return  # another process created it first: that key is the network's
    except OSError as exc:
        raise ConfigError(f"ticket key {path}: cannot create it: {exc.strerror or exc}") from None
    finally:
        try:
            os.unlink(tmp)
        except OSError:
            pass
    log.info("created the ticket-signing key %s", path)


def _sqlite_path(database_url: str) -> str | None:
    database = make_url(database_url).database
    if not database or database == ":memory:" or database.startswith("file::memory:"):
        return None
    return database + "-ticket-key.pem"


@dataclass(frozen=True)
class TicketSigner:
    """Signs transfer tickets with the directory's key; publishes the public half."""

    key: Ed25519PrivateKey
    ttl_s: float = tickets.DEFAULT_TTL_S

    @property
    def kid(self) -> str:
        """The public key's id, which every ticket names."""
        return tickets.key_id(self.key.public_key())

    def public(self) -> dict:
        """{kid, alg, public_key}: what GET /keys and the login answer carry."""
        return {"kid": self.kid, "alg": "Ed25519", "public_key": tickets.encode_public_key(self.key.public_key())}

    def issue(self, sub: str, sha256: str, purpose: str, now: float, aud: str | None = None,
              size: int | None = None) -> tuple[str, int]:
        """A signed ticket for one transfer and its expiry (integer seconds since the epoch)."""
        expires = int(now + self.ttl_s)
        claims = Claims(sub=sub, sha=sha256, pur=purpose, exp=expires, iat=int(now), kid=self.kid, aud=aud, size=size)
        return tickets.sign(claims, self.key), expires


def load_signer(config, store, ttl_s: float = tickets.DEFAULT_TTL_S) -> TicketSigner:
    """The signer for this directory: from the key file, beside the SQLite file, or from the database."""
    path = getattr(config, "ticket_key_file", None)
    if path:
        return TicketSigner(_from_file(path), ttl_s)
    if store.dialect == "sqlite":
        beside = _sqlite_path(config.database_url)
        key = _from_file(beside) if beside else Ed25519PrivateKey.generate()
        return TicketSigner(key, ttl_s)
    offered = Ed25519PrivateKey.generate()
    pem = store.ticket_key_pem(tickets.key_id(offered.public_key()), _pem(offered).decode("ascii"), time.time())
    return TicketSigner(_load(pem.encode("ascii"), "the ticket key stored in the database"), ttl_s)
