"""A real `p2p serve` with `--metrics-port`: its metrics server answers and counts what it served."""
import hashlib
import socket

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from peer_node.client import PeerClient
from peer_node.errors import P2PError
from tests.fixtures.fake_directory import FakeDirectory
from tests.integration.helpers import p2p

pytestmark = pytest.mark.integration

DATA = b"counted bytes " * 5000


def samples(url):
    text = requests.get(url, timeout=5).text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_a_peers_metrics_port_serves_and_counts(peer_factory):
    fake = FakeDirectory()  # gives the peer the key of the ticket below
    peer = peer_factory(fake.url, files={"data.bin": DATA}, args=("--metrics-port", "0"))
    url = peer.wait_for_output(r"metrics on (http://\S+/metrics)", timeout=10).group(1)
    peer.wait_for_output(r"logged in to", timeout=15)
    before = samples(url)
    assert before[("p2p_peer_bytes_sent_total", ())] == 0
    assert before[("p2p_peer_transfers_active", (("direction", "send"),))] == 0
    with PeerClient(peer.address, ticket=fake.mint.ticket(hashlib.sha256(DATA).hexdigest())) as client:
        received = b"".join(bytes(data) for _, data in client.download(name="data.bin"))
        with pytest.raises(P2PError):
            list(client.download(name="missing.bin"))
    assert received == DATA
    after = samples(url)
    assert after[("p2p_peer_bytes_sent_total", ())] == len(DATA)
    assert after[("p2p_peer_refusals_total", (("code", "NOT_FOUND"),))] == 1
    assert after[("p2p_peer_pieces_failed_total", ())] == 0
    fake.close()


def test_metrics_are_off_by_default(peer_factory):
    peer = peer_factory(files={"data.bin": DATA})
    assert "metrics on" not in peer.output


def test_a_taken_metrics_port_is_one_line(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        (tmp_path / "f").mkdir()
        done = p2p("serve", "--peer-id", "m", "--secret", "s", "--port", "0", "--folder", tmp_path / "f",
                   "--directory", "http://127.0.0.1:9", "--metrics-port", port, cwd=tmp_path, timeout=30)
    assert done.returncode == 1
    assert f"cannot serve metrics on 127.0.0.1:{port}" in done.stderr and "Traceback" not in done.stderr
