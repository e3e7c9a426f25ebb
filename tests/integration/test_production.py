"""The README's production command: the directory under gunicorn gthread, started for real."""
import hashlib
import shutil
from pathlib import Path

import pytest
import requests

from tests.procs import ROOT, ServerProcess

GUNICORN = Path(shutil.which("gunicorn") or ROOT / ".venv" / "bin" / "gunicorn")


@pytest.fixture
def gunicorn_directory(tmp_path):
    """`gunicorn -w 2 -k gthread --threads 8 'directory_api:create_app()'` on a free loopback port."""
    if not GUNICORN.exists():
        pytest.fail(f"gunicorn is not installed at {GUNICORN}: run make venv")
    proc = ServerProcess(
        [GUNICORN, "-w", "2", "-k", "gthread", "--threads", "8", "-b", "127.0.0.1:0",
         # one control socket per user by default: two servers at once would fight over it
         "--no-control-socket", "directory_api:create_app()"],
        r"Listening at: (http://\S+)",
        env={"P2P_DATABASE_URL": f"sqlite:///{tmp_path}/directory.db", "P2P_LEASE_S": "30"},
    )
    proc.url = proc.match.group(1) + "/api/v1"
    yield proc
    assert proc.stop() == 0, proc.output


def test_gunicorn_serves_one_network_across_workers(gunicorn_directory):
    """A login, an index and a search land in the shared database whichever worker answers."""
    api = gunicorn_directory.url
    gunicorn_directory.wait_for_output(r"Booting worker", timeout=10)
    token = requests.post(f"{api}/login", json={
        "peer_id": "prod-peer", "secret": "s3cret", "grpc_address": "127.0.0.1:50051",
    }, timeout=10).json()["token"]
    digest = hashlib.sha256(b"quarterly report").hexdigest()
    put = requests.put(f"{api}/peers/prod-peer/files", headers={"Authorization": f"Bearer {token}"},
                       json={"files": [{"name": "reports/q3.pdf", "size": 16, "sha256": digest}]}, timeout=10)
    assert put.status_code == 200, put.text
    # Enough requests that both workers answer some of them.
    for _ in range(20):
        found = requests.get(f"{api}/files", params={"q": "Q3.PDF"}, timeout=10).json()["results"]
        assert [r["sha256"] for r in found] == [digest]
        assert found[0]["holders"] == [{"peer_id": "prod-peer", "grpc_address": "127.0.0.1:50051"}]


def test_gunicorn_errors_are_problem_json(gunicorn_directory):
    """Under gunicorn as under the dev server, an unknown route is problem+json, not an HTML page."""
    answer = requests.get(f"{gunicorn_directory.url}/no-such-thing", timeout=10)
    assert answer.status_code == 404
    assert answer.headers["Content-Type"].startswith("application/problem+json")
    assert answer.json()["status"] == 404
