"""`python -m directory_api`: flags, environment, ready line, signals, init-db, bad settings."""
import signal
import subprocess
import sys

import pytest
import requests

from tests.procs import ROOT, ServerProcess, python_module
from tests.fixtures.directory import DIRECTORY_READY

pytestmark = pytest.mark.integration


def _clean(env):
    """os.environ without any variable the directory reads, plus env."""
    import os

    return {**{k: v for k, v in os.environ.items() if not k.startswith(("DIRECTORY_", "P2P_"))}, **(env or {})}


def run_cli(*args, env=None, timeout=30):
    full_env = _clean(env)
    return subprocess.run([sys.executable, "-m", "directory_api", *args], cwd=ROOT, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


def test_serves_and_stops_cleanly_on_sigterm(directory_proc):
    assert requests.get(f"{directory_proc.url}/api/v1/health", timeout=5).json() == {"status": "ok"}
    assert directory_proc.url.startswith("http://127.0.0.1:")
    assert sum("directory listening on" in line for line in directory_proc.lines) == 1
    assert directory_proc.stop() == 0
    assert "Traceback" not in directory_proc.output


def test_sigint_also_exits_zero(directory_factory):
    proc = directory_factory()
    proc.signal(signal.SIGINT)
    assert proc.proc.wait(10) == 0


def test_flags_reach_the_app(directory_factory):
    proc = directory_factory(lease=7, replication=3)
    assert requests.post(f"{proc.url}/api/v1/login", json={
        "peer_id": "a", "secret": "s", "grpc_address": "127.0.0.1:1"}, timeout=5).json()["lease_s"] == 7
    assert requests.get(f"{proc.url}/api/v1/replication", timeout=5).json()["target"] == 3


def test_environment_is_used_and_flags_win(tmp_path):
    env = _clean({"DIRECTORY_HOST": "127.0.0.1", "DIRECTORY_PORT": "0",
                  "DIRECTORY_DATABASE_URL": f"sqlite:///{tmp_path}/env.db", "DIRECTORY_LEASE_S": "9",
                  "DIRECTORY_REPLICATION": "4"})
    proc = ServerProcess(python_module("directory_api", "--replication", "1"), DIRECTORY_READY, env=env)
    try:
        url = proc.match.group(1)
        login = requests.post(f"{url}/api/v1/login", json={
            "peer_id": "a", "secret": "s", "grpc_address": "127.0.0.1:1"}, timeout=5).json()
        assert login["lease_s"] == 9
        assert requests.get(f"{url}/api/v1/replication", timeout=5).json()["target"] == 1
        assert (tmp_path / "env.db").exists()
    finally:
        assert proc.stop() == 0


def test_init_db(tmp_path):
    db = tmp_path / "init.db"
    r = run_cli("init-db", "--database", f"sqlite:///{db}")
    assert r.returncode == 0, r.stderr
    assert db.exists()


BAD_SETTINGS = [
    (["--lease", "0"], {}),
    (["--lease", "abc"], {}),
    (["--replication", "0"], {}),
    (["--port", "70000"], {}),
    (["--database", "nonsense"], {}),
    (["--database", "mysql://u@h/db"], {}),
    ([], {"DIRECTORY_LEASE_S": "-3"}),
    ([], {"DIRECTORY_REPLICATION": "two"}),
    ([], {"P2P_LEASE_S": "-3"}),
    (["--no-such-flag"], {}),
    (["init-db", "--database", "nonsense"], {}),
]


@pytest.mark.parametrize("args,env", BAD_SETTINGS)
def test_bad_settings_print_one_line(args, env, monkeypatch, capsys):
    from directory_api.__main__ import main

    import os

    for key in [k for k in os.environ if k.startswith(("DIRECTORY_", "P2P_"))]:
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(SystemExit) as exit_:
        main(["--port", "0", *args])
    assert exit_.value.code != 0
    out, err = capsys.readouterr()
    assert out == "" and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err


def test_deprecated_and_peer_variables_warn_one_line_each(tmp_path):
    proc = ServerProcess(python_module("directory_api", "--port", "0"), DIRECTORY_READY,
                         env=_clean({"P2P_DATABASE_URL": f"sqlite:///{tmp_path}/old.db", "P2P_PORT": "1"}))
    try:
        assert (tmp_path / "old.db").exists()
        warnings = "".join(line for line in proc.lines if "WARNING" in line)
        assert warnings.count("\n") == 2, proc.output
        assert "P2P_DATABASE_URL is deprecated: rename it DIRECTORY_DATABASE_URL" in warnings
        assert "P2P_PORT is a peer setting; the directory reads DIRECTORY_PORT; ignoring it" in warnings
    finally:
        assert proc.stop() == 0


def test_bad_setting_in_a_real_process():
    r = run_cli("--lease", "-1")
    assert r.returncode != 0 and r.stdout == ""
    assert len(r.stderr.strip().splitlines()) == 1 and "--lease" in r.stderr, r.stderr


def test_port_in_use_is_one_line(directory_proc):
    port = directory_proc.url.rsplit(":", 1)[1]
    r = run_cli("--port", port, "--database", "sqlite:///:memory:")
    assert r.returncode != 0 and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_help():
    r = run_cli("--help")
    assert r.returncode == 0 and "--replication" in r.stdout and "init-db" in r.stdout
