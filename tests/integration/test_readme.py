"""The README cannot rot: every fenced block marked `checked` runs against a live system here.

A block whose info string is `sh checked` (or `bash checked`, `shell checked`) is run, in document
order, by `bash -euo pipefail` in one scratch folder shared by all blocks, with a directory and two
peers started by this test and these variables exported:

    DIR, P2P_DIRECTORY   the directory's base URL, http://127.0.0.1:PORT (the API is under $DIR/api/v1)
    PEER1, PEER2         the peers' gRPC addresses, 127.0.0.1:PORT
    PEER1_ID, PEER2_ID   their peer ids
    SHA, NAME            sha256 and name of a file peer1 shares (hello.txt)
    PEER_ID, SECRET      a REST-only peer that each block may use, already registered
    TOKEN                a fresh bearer token of PEER_ID, issued just before the block runs
    PATH                 starts with the virtualenv's bin/, so `p2p`, `grpcurl` and `python` work

A block fails the test when any command in it exits non-zero. P2P_README overrides the file to check.
"""
import hashlib
import json
import os
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.procs import ROOT, ServerProcess, python_module

README = Path(os.environ.get("P2P_README") or ROOT / "README.md")
SHELLS = {"sh", "bash", "shell"}
BLOCK_TIMEOUT = 90
REST_PEER_ID = "readme-rest-peer"
REST_SECRET = "readme-rest-secret"
HELLO = b"Hello from the README test: this file is shared by peer1.\n"


def checked_blocks(text):
    """[(line, info, body)] of the fenced blocks whose info string carries the word `checked`."""
    blocks = []
    fence = None  # (marker char, length, info, first line number, body lines) of the open block
    for number, line in enumerate(text.splitlines(keepends=True), 1):
        stripped = line.strip()
        if fence is None:
            opening = re.match(r"^ {0,3}(`{3,}|~{3,})(.*)$", line.rstrip("\n"))
            if opening and not (opening[1][0] == "`" and "`" in opening[2]):
                fence = (opening[1][0], len(opening[1]), opening[2].strip(), number, [])
        elif re.fullmatch(re.escape(fence[0]) + "{%d,}" % fence[1], stripped):
            if "checked" in fence[2].split():
                blocks.append((fence[3], fence[2], "".join(fence[4])))
            fence = None
        else:
            fence[4].append(line)
    return blocks


def _load_blocks():
    if not README.exists():
        return [], f"{README} does not exist yet"
    blocks = checked_blocks(README.read_text())
    if not blocks:
        return [], f"{README.name} has no checked blocks yet (mark one with ```sh checked)"
    return blocks, None


BLOCKS, SKIP_REASON = _load_blocks()


def test_checked_blocks_are_found_and_others_ignored():
    """Only fences whose info string has the word `checked` are picked, with their line numbers."""
    text = (
        "# Title\n\n```sh\necho not checked\n```\n\n"
        "```sh checked\ncurl -fsS \"$DIR/api/v1/health\"\n```\n\n"
        "````\nnested ``` stays text\n````\n\n"
        "```bash checked\np2p peers\np2p search hello\n```\n"
        "```text\nchecked in prose only\n```\n"
    )
    assert checked_blocks(text) == [
        (7, "sh checked", 'curl -fsS "$DIR/api/v1/health"\n'),
        (15, "bash checked", "p2p peers\np2p search hello\n"),
    ]


def _api(url, method="GET", body=None, token=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(req, timeout=10) as answer:
        raw = answer.read()
        return json.loads(raw) if raw else None


def _start(args, ready, env, cwd):
    """A ServerProcess that must have printed its ready line; else fail with its output."""
    proc = ServerProcess(args, ready, env=env, cwd=cwd)
    if proc.match is None:
        proc.stop()
        pytest.fail(f"{' '.join(proc.args)} exited before it was ready:\n{proc.output}")
    return proc


@pytest.fixture(scope="module")
def live_system(tmp_path_factory):
    """A directory and two peers on free loopback ports, and a function giving each block its env."""
    base = tmp_path_factory.mktemp("readme")
    # The servers and the blocks run in scratch folders (so no ./peerConfig.ini is picked up);
    # PYTHONPATH makes this checkout's packages importable from there.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("P2P_", "DIRECTORY_"))}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    started = []
    try:
        directory = _start(
            python_module("directory_api", "--host", "127.0.0.1", "--port", "0",
                          "--database", f"sqlite:///{base}/directory.db", "--lease", "60", "--replication", "1"),
            r"directory listening on (http://\S+)", env, base)
        started.append(directory)
        url = directory.match.group(1).rstrip("/")
        peers = {}
        for n, (name, data) in enumerate([("hello.txt", HELLO), ("notes.txt", b"peer2's own notes\n" * 50)], 1):
            folder = base / f"peer{n}"
            folder.mkdir()
            (folder / name).write_bytes(data)
            peer_id = f"readme-peer{n}"
            proc = _start(
                python_module("peer_node", "serve", "--peer-id", peer_id, "--secret", f"secret-{n}",
                              "--host", "127.0.0.1", "--port", "0", "--folder", folder, "--directory", url),
                rf"peer {peer_id} serving on (\S+:\d+)", env, base)
            started.append(proc)
            proc.wait_for_output(r"logged in to", timeout=30)
            peers[n] = (peer_id, proc.match.group(1))
        work = base / "work"
        work.mkdir()
        sha = hashlib.sha256(HELLO).hexdigest()
        fixed = {
            **env,
            "DIR": url, "P2P_DIRECTORY": url,
            "PEER1": peers[1][1], "PEER2": peers[2][1], "PEER1_ID": peers[1][0], "PEER2_ID": peers[2][0],
            "SHA": sha, "NAME": "hello.txt",
            "PEER_ID": REST_PEER_ID, "SECRET": REST_SECRET,
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        }

        def block_env():
            """The block's environment, with a freshly issued TOKEN for PEER_ID."""
            login = _api(f"{url}/api/v1/login", "POST",
                         {"peer_id": REST_PEER_ID, "secret": REST_SECRET, "grpc_address": "127.0.0.1:1"})
            return {**fixed, "TOKEN": login["token"]}

        yield work, block_env, started
    finally:
        for proc in reversed(started):
            proc.stop()


@pytest.mark.integration
@pytest.mark.parametrize(
    "block", BLOCKS or [None],
    ids=[f"{README.name}:{line}" for line, _, _ in BLOCKS] or ["no-checked-blocks"])
def test_readme_block_runs(block, request):
    """One checked README block exits 0 against the live system."""
    if block is None:
        print(f"skipping: {SKIP_REASON}")
        pytest.skip(SKIP_REASON)
    line, info, body = block
    words = info.split()
    if not words or words[0] not in SHELLS:
        pytest.fail(f"{README.name}:{line}: a checked block must be a shell block (```sh checked), got ```{info}")
    work, block_env, started = request.getfixturevalue("live_system")
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", body], cwd=work, env=block_env(),
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=BLOCK_TIMEOUT)
    print(f"$ # {README.name}:{line}\n{done.stdout}{done.stderr}")
    if done.returncode != 0:
        logs = "\n".join(f"--- {' '.join(p.args[2:4])} output (tail) ---\n" + "".join(p.lines[-20:])
                         for p in started)
        pytest.fail(f"{README.name}:{line} exited {done.returncode}\n--- block ---\n{body}"
                    f"--- stdout ---\n{done.stdout[-4000:]}\n--- stderr ---\n{done.stderr[-4000:]}\n{logs}")
