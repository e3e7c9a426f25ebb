"""The ticket-signing key: one per network, from a file, beside SQLite or in PostgreSQL."""
import os
import stat

import pytest

from directory_api.config import DirectoryConfig
from directory_api.errors import ConfigError
from directory_api.keys import load_signer
from directory_api.store import Store
from protos import tickets
from tests.fixtures.threads import run_together

SHA = "c" * 64


def _signer(db_url, **config):
    store = Store(db_url)
    store.create_schema()
    try:
        return load_signer(DirectoryConfig(database_url=db_url, **config), store)
    finally:
        store.dispose()


def test_a_signed_ticket_verifies_with_the_published_key(tmp_path):
    signer = _signer(f"sqlite:///{tmp_path}/d.db")
    ticket, expires = signer.issue("alice", SHA, tickets.UPLOAD, now=1000.0, aud="bob", size=5)
    public = signer.public()
    assert public["alg"] == "Ed25519" and public["kid"] == signer.kid
    keys = {public["kid"]: tickets.decode_public_key(public["public_key"])}
    claims = tickets.verify(ticket, keys, 1000.0, purpose=tickets.UPLOAD, sha256=SHA, me="bob", size=5)
    assert (claims.sub, claims.exp, expires) == ("alice", 1000 + tickets.DEFAULT_TTL_S, expires)


def test_sqlite_keeps_the_key_beside_the_database_private_and_reused(tmp_path):
    url = f"sqlite:///{tmp_path}/d.db"
    first = _signer(url)
    path = tmp_path / "d.db-ticket-key.pem"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert _signer(url).kid == first.kid  # a restart signs with the same key


def test_a_key_file_is_created_once_and_shared(tmp_path):
    path = str(tmp_path / "network.pem")
    one = _signer(f"sqlite:///{tmp_path}/a.db", ticket_key_file=path)
    other = _signer(f"sqlite:///{tmp_path}/b.db", ticket_key_file=path)
    assert one.kid == other.kid
    assert not (tmp_path / "a.db-ticket-key.pem").exists()


@pytest.mark.parametrize("content, words", [(b"not a key", "not a PEM private key"),
                                             (None, "must be an Ed25519 key")])
def test_a_bad_key_file_is_one_clear_error(tmp_path, content, words):
    path = tmp_path / "bad.pem"
    if content is None:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec

        content = ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=words):
        _signer(f"sqlite:///{tmp_path}/d.db", ticket_key_file=str(path))


def test_an_in_memory_database_gets_a_key_of_its_own():
    assert _signer("sqlite://").kid != _signer("sqlite://").kid


@pytest.mark.postgres
def test_postgresql_processes_starting_together_sign_with_one_key(pg_url):
    kids = []
    run_together(lambda: kids.append(_signer(pg_url).kid), 4)
    assert len(kids) == 4 and len(set(kids)) == 1


def test_processes_starting_together_on_one_key_file_all_read_the_same_whole_key(tmp_path):
    """The first start of several workers: one key wins, nobody reads a half-written file."""
    from directory_api.keys import _from_file

    for round_ in range(20):
        path = str(tmp_path / f"race-{round_}.pem")
        kids, errors = [], []

        def start():
            try:
                kids.append(tickets.key_id(_from_file(path).public_key()))
            except ConfigError as exc:
                errors.append(str(exc))

        run_together(start, 6)
        assert not errors, errors
        assert len(kids) == 6 and len(set(kids)) == 1
        assert not [name for name in os.listdir(tmp_path) if name.startswith(".")]  # no temporary left
