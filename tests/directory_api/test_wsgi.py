"""directory_api.wsgi: the entry gunicorn imports reads DIRECTORY_* and starts the background threads."""
import importlib
import logging
import sys

import pytest

from directory_api.errors import ConfigError

VARIABLES = ("DIRECTORY_HOST", "DIRECTORY_PORT", "DIRECTORY_DATABASE_URL", "DIRECTORY_LEASE_S",
             "DIRECTORY_REPLICATION", "DIRECTORY_REPLICATION_DEADLINE_S", "P2P_HOST", "P2P_PORT",
             "P2P_DATABASE_URL", "P2P_LEASE_S", "P2P_REPLICATION", "P2P_REPLICATION_DEADLINE_S")


@pytest.fixture
def environment(monkeypatch):
    """A process environment with none of the directory's variables, to set per test."""
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.fixture
def import_wsgi():
    """Import directory_api.wsgi afresh (as a gunicorn worker does); its app is closed at teardown."""
    imported = []

    def load():
        sys.modules.pop("directory_api.wsgi", None)
        module = importlib.import_module("directory_api.wsgi")
        imported.append(module)
        return module

    yield load
    for module in imported:
        module.app.extensions["p2p"].close()
    sys.modules.pop("directory_api.wsgi", None)


def test_the_module_app_reads_the_environment_and_runs_its_threads(environment, import_wsgi, tmp_path):
    environment.setenv("DIRECTORY_DATABASE_URL", f"sqlite:///{tmp_path}/wsgi.db")
    environment.setenv("DIRECTORY_LEASE_S", "3")
    ctx = import_wsgi().app.extensions["p2p"]
    assert ctx.config.lease_s == 3 and ctx.config.replication == 2 and (tmp_path / "wsgi.db").exists()
    assert ctx.leases.running and ctx.sweeper.running  # production default: sweeping on


def test_build_answers_requests(tmp_path, environment, import_wsgi):
    environment.setenv("DIRECTORY_DATABASE_URL", f"sqlite:///{tmp_path}/module.db")
    wsgi = import_wsgi()
    app = wsgi.build({"DIRECTORY_DATABASE_URL": f"sqlite:///{tmp_path}/built.db", "DIRECTORY_REPLICATION": "3"})
    try:
        assert app.test_client().get("/api/v1/replication").get_json()["target"] == 3
    finally:
        app.extensions["p2p"].close()


def test_deprecated_names_still_work_with_a_warning(tmp_path, environment, import_wsgi, caplog):
    environment.setenv("P2P_DATABASE_URL", f"sqlite:///{tmp_path}/old.db")
    with caplog.at_level(logging.WARNING, logger="directory_api.config"):
        ctx = import_wsgi().app.extensions["p2p"]
    assert ctx.config.database_url == f"sqlite:///{tmp_path}/old.db"
    assert "P2P_DATABASE_URL is deprecated: rename it DIRECTORY_DATABASE_URL" in caplog.text


def test_a_malformed_variable_stops_the_import(tmp_path, environment, import_wsgi):
    environment.setenv("DIRECTORY_DATABASE_URL", f"sqlite:///{tmp_path}/bad.db")
    environment.setenv("DIRECTORY_LEASE_S", "soon")
    with pytest.raises(ConfigError, match="DIRECTORY_LEASE_S: not a number"):
        import_wsgi()
    assert not (tmp_path / "bad.db").exists()
