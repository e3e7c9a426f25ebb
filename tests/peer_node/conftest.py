"""Fixtures the peer's unit tests share: a clean CLI runner, a ticket mint and a peer's admission."""
import os

import pytest
from click.testing import CliRunner

from peer_node.admission import Admission, Keyring
from tests.fixtures.tickets import Mint


@pytest.fixture
def runner(monkeypatch, tmp_path):
    """click's runner in an empty folder (no ./peerConfig.ini) with no P2P_* setting of ours."""
    monkeypatch.chdir(tmp_path)
    for var in list(os.environ):
        if var.startswith("P2P_"):
            monkeypatch.delenv(var)
    return CliRunner()


@pytest.fixture
def mint():
    """A directory's ticket key that signs real tickets."""
    return Mint()


@pytest.fixture
def admission(mint):
    """The admission of a peer "me" that knows mint's key."""
    keyring = Keyring()
    keyring.learn(mint.key_dict)
    return Admission("me", keyring)
