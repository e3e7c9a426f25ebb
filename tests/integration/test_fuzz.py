"""Schemathesis against a live directory: generated from its own OpenAPI document, every answer
must be in that document (status, content type, schema) and none a server error.

A bounded run with a fixed seed in `make test`; `make fuzz` runs more examples
(P2P_FUZZ_EXAMPLES). Schemathesis logs in itself (a real token, fetched again whenever an answer
is 401, e.g. after it fuzzed /logout), follows the document's links (login -> heartbeat/PUT/POST
with that token, search -> file detail), and aims most path peer_ids at its own peer, so the
owner-only operations get past 403.
"""
import json
import os
import subprocess
import sys
import time

import pytest

from tests.fixtures.directory import DIRECTORY_READY
from tests.procs import ROOT, ServerProcess

pytestmark = pytest.mark.integration

SEED = 42
EXAMPLES = int(os.environ.get("P2P_FUZZ_EXAMPLES", "12"))
CONFIG = """
hooks = "tests.integration.fuzz_hooks"

[auth.dynamic.openapi.bearer]
path = "/login"
payload = {{ peer_id = "fuzzer", secret = "fuzz-secret", grpc_address = "127.0.0.1:1" }}
extract_selector = "/token"
retry_on = [401]

[dictionaries.our_peer]
values = ["fuzzer"]

[dictionaries.our_file]
values = ["{sha}"]

[parameters]
"path.peer_id" = {{ dictionary = "our_peer", probability = 0.7 }}
"path.sha256" = {{ dictionary = "our_file", probability = 0.5 }}
"""


# The directory's own serve(), with the cheap secret hash the in-process tests use: a fuzz run
# logs in a few hundred times, and scrypt (0.15 s a login) would take most of the minute; no
# failed-login limit, as the fuzzer guesses at the secrets of the peer_ids it registered itself.
SERVE = ("from directory_api.__main__ import serve; from directory_api.config import DirectoryConfig; "
         "serve(DirectoryConfig(host='127.0.0.1', port=0, database_url={db!r}, lease_s=600, replication=2, "
         "secret_hash_method='pbkdf2:sha256:1000', login_failures_per_minute=0, "
         "login_failures_per_address=0))")


@pytest.fixture
def directory(tmp_path):
    """A real directory process for the fuzzer (SQLite in tmp_path, R = 2, long lease)."""
    proc = ServerProcess([sys.executable, "-c", SERVE.format(db=f"sqlite:///{tmp_path}/fuzz.db")], DIRECTORY_READY)
    proc.url = proc.match.group(1)
    yield proc
    proc.stop()


def test_schemathesis_finds_no_server_error_and_nothing_outside_the_document(directory, tmp_path):
    # one file the fuzzer's peer shares, so file detail and delete reach their logic too
    from peer_node.directory import DirectoryClient
    from tests.fixtures.directory import entry

    seeded = entry("fuzz-seed.txt", n="fuzz-seed")
    client = DirectoryClient(directory.url)
    client.login("fuzzer", "fuzz-secret", "127.0.0.1:1", files=[seeded])
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG.format(sha=seeded["sha256"]))
    report = tmp_path / "report.json"
    args = [str(ROOT / ".venv" / "bin" / "schemathesis"), "--config-file", str(config), "run",
            f"{directory.url}/api/v1/openapi.json", "--checks", "all", "--seed", str(SEED),
            "--max-examples", str(EXAMPLES), "--workers", "1", "--request-timeout", "10",
            "--report", "json", "--report-json-path", str(report)]
    start = time.monotonic()
    done = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(ROOT), "NO_COLOR": "1"})
    elapsed = time.monotonic() - start
    output = done.stdout + done.stderr
    assert report.exists(), output[-5000:]
    figures = json.loads(report.read_text())
    cases = figures["test_cases"]
    print(f"\nschemathesis {figures['schemathesis_version']}, seed {SEED}, {EXAMPLES} examples an operation: "
          f"{cases['generated']} cases in {elapsed:.0f} s, {len(figures['failures'])} failure kinds, "
          f"{len(figures['errors'])} errors; phases {figures['phases']}")
    assert figures["failures"] == [], output[-8000:]
    assert figures["errors"] == [], output[-8000:]
    assert figures["operations"]["tested"] == figures["operations"]["total"] >= 13
    assert done.returncode == 0, output[-5000:]
    assert "Traceback" not in "".join(directory.lines), directory.output[-5000:]
