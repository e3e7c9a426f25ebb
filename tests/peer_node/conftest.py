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


class WaitingClock:
    """Time that moves only when someone waits; wait() answers True once stop_at waits happened."""

    def __init__(self, now=1_000_000.0):
        self.now = now
        self.waits = []
        self.stop_at = None

    def __call__(self):
        return self.now

    def wait(self, seconds):
        self.waits.append(seconds)
        self.now += seconds
        return self.stop_at is not None and len(self.waits) >= self.stop_at


@pytest.fixture
def clock():
    """A WaitingClock: for code that takes clock() and wait(seconds)."""
    return WaitingClock()
