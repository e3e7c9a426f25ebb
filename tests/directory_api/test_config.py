"""directory_api.config: the settings dataclass, from a dict or from the environment."""
import pytest

from directory_api import create_app
from directory_api.config import ConfigError, DirectoryConfig


def test_defaults():
    cfg = DirectoryConfig()
    assert (cfg.database_url, cfg.lease_s, cfg.replication) == ("sqlite:///directory.db", 45.0, 2)
    assert cfg.deadline_s == 135.0 and cfg.plan_interval_s == 15.0 and cfg.secret_hash_method == "scrypt"
    assert DirectoryConfig(lease_s=2).deadline_s == 30.0


def test_from_env_reads_only_p2p_variables():
    cfg = DirectoryConfig.from_env({"P2P_DATABASE_URL": "sqlite:///x.db", "P2P_LEASE_S": "1.5",
                                    "P2P_REPLICATION": "3", "HOME": "/root"})
    assert (cfg.database_url, cfg.lease_s, cfg.replication) == ("sqlite:///x.db", 1.5, 3)
    assert DirectoryConfig.from_env({}) == DirectoryConfig()


@pytest.mark.parametrize("env", [
    {"P2P_LEASE_S": "soon"}, {"P2P_LEASE_S": "0"}, {"P2P_LEASE_S": "nan"}, {"P2P_REPLICATION": "0"},
    {"P2P_REPLICATION": "1.5"}, {"P2P_DATABASE_URL": "directory.db"},
])
def test_from_env_rejects_bad_values(env):
    with pytest.raises(ConfigError) as err:
        DirectoryConfig.from_env(env)
    assert next(iter(env)).replace("P2P_", "").lower()[:4] in str(err.value).lower()


@pytest.mark.parametrize("values", [
    {"lease": 3}, {"lease_s": -1}, {"lease_s": True}, {"replication": 0}, {"max_pending_per_peer": 0},
    {"replication_deadline_s": -1}, {"probe_timeout_s": 0},
])
def test_from_mapping_rejects_bad_values(values):
    with pytest.raises(ConfigError):
        DirectoryConfig.from_mapping(values)


def test_create_app_without_config_reads_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("P2P_DATABASE_URL", f"sqlite:///{tmp_path}/env.db")
    monkeypatch.setenv("P2P_LEASE_S", "3")
    monkeypatch.delenv("P2P_REPLICATION", raising=False)
    app = create_app()
    try:
        cfg = app.extensions["p2p"].config
        assert cfg.lease_s == 3 and cfg.replication == 2 and (tmp_path / "env.db").exists()
        assert app.extensions["p2p"].sweeper.running  # production default: sweeping on
    finally:
        app.extensions["p2p"].close()
