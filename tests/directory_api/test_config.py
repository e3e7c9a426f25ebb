"""directory_api.config: the settings dataclass and the one table that fills it from flags and environment."""
import logging

import pytest

from directory_api import create_app
from directory_api.config import SETTINGS, DirectoryConfig, load_config
from directory_api.errors import ConfigError, DirectoryError


def test_defaults():
    cfg = DirectoryConfig()
    assert (cfg.host, cfg.port, cfg.database_url, cfg.lease_s, cfg.replication) == (
        "127.0.0.1", 5000, "sqlite:///directory.db", 45.0, 2)
    assert cfg.deadline_s == 135.0 and cfg.plan_interval_s == 15.0 and cfg.secret_hash_method == "scrypt"
    assert DirectoryConfig(lease_s=2).deadline_s == 30.0
    assert load_config({}, {}) == cfg


def test_every_setting_is_a_field_with_a_directory_variable_and_a_flag():
    fields = DirectoryConfig.__dataclass_fields__
    for setting in SETTINGS:
        assert setting.field in fields
        assert setting.env == "DIRECTORY_" + setting.env.removeprefix("DIRECTORY_")
        assert setting.flag.startswith("--") and setting.env in setting.help_text
    assert len({s.env for s in SETTINGS}) == len({s.flag for s in SETTINGS}) == len(SETTINGS)


def test_environment_names():
    cfg = load_config({}, {"DIRECTORY_HOST": "::1", "DIRECTORY_PORT": "7001",
                           "DIRECTORY_DATABASE_URL": "sqlite:///x.db", "DIRECTORY_LEASE_S": "1.5",
                           "DIRECTORY_REPLICATION": "3", "DIRECTORY_REPLICATION_DEADLINE_S": "6.5", "HOME": "/root"})
    assert (cfg.host, cfg.port, cfg.database_url, cfg.lease_s, cfg.replication, cfg.deadline_s) == (
        "::1", 7001, "sqlite:///x.db", 1.5, 3, 6.5)


@pytest.mark.parametrize("flags, env, expected", [
    ({"lease_s": "3"}, {"DIRECTORY_LEASE_S": "4", "P2P_LEASE_S": "5"}, 3.0),
    ({}, {"DIRECTORY_LEASE_S": "4", "P2P_LEASE_S": "5"}, 4.0),
    ({}, {"P2P_LEASE_S": "5"}, 5.0),
    ({}, {"DIRECTORY_LEASE_S": "", "P2P_LEASE_S": ""}, 45.0),  # empty means unset
    ({"lease_s": None}, {}, 45.0),
])
def test_precedence_flag_then_directory_variable_then_deprecated_then_default(flags, env, expected):
    assert load_config(flags, env).lease_s == expected


@pytest.mark.parametrize("old, new", [("P2P_DATABASE_URL", "DIRECTORY_DATABASE_URL"),
                                      ("P2P_LEASE_S", "DIRECTORY_LEASE_S"),
                                      ("P2P_REPLICATION", "DIRECTORY_REPLICATION"),
                                      ("P2P_REPLICATION_DEADLINE_S", "DIRECTORY_REPLICATION_DEADLINE_S")])
def test_deprecated_names_work_with_one_warning_naming_the_new_one(old, new, caplog):
    value = "sqlite:///old.db" if "URL" in old else "7"
    with caplog.at_level(logging.WARNING, logger="directory_api.config"):
        load_config({}, {old: value})
    assert [r.getMessage() for r in caplog.records] == [
        f"{old} is deprecated: rename it {new} (the old name stops working in the next release)"]


def test_a_deprecated_name_shadowed_by_the_new_one_says_it_is_ignored(caplog):
    with caplog.at_level(logging.WARNING, logger="directory_api.config"):
        assert load_config({}, {"P2P_LEASE_S": "5", "DIRECTORY_LEASE_S": "4"}).lease_s == 4.0
    assert [r.getMessage() for r in caplog.records] == [
        "P2P_LEASE_S is deprecated and ignored: DIRECTORY_LEASE_S is set"]


@pytest.mark.parametrize("env, warned", [
    ({"P2P_PORT": "7000"}, ["P2P_PORT is a peer setting; the directory reads DIRECTORY_PORT; ignoring it"]),
    ({"P2P_HOST": "0.0.0.0"}, ["P2P_HOST is a peer setting; the directory reads DIRECTORY_HOST; ignoring it"]),
    ({"P2P_PORT": "7000", "DIRECTORY_PORT": "7001"}, []),
])
def test_the_peers_host_and_port_never_move_the_directory(env, warned, caplog):
    with caplog.at_level(logging.WARNING, logger="directory_api.config"):
        cfg = load_config({}, env)
    assert (cfg.host, cfg.port) == ("127.0.0.1", int(env.get("DIRECTORY_PORT", 5000)))
    assert [r.getMessage() for r in caplog.records] == warned


BAD = [
    ({}, {"DIRECTORY_LEASE_S": "soon"}, "DIRECTORY_LEASE_S: not a number: 'soon'"),
    ({}, {"DIRECTORY_LEASE_S": "0"}, "DIRECTORY_LEASE_S: must be a number > 0"),
    ({}, {"DIRECTORY_LEASE_S": "nan"}, "DIRECTORY_LEASE_S: must be a number > 0"),
    ({}, {"P2P_LEASE_S": "-3"}, "P2P_LEASE_S: must be a number > 0"),
    ({}, {"DIRECTORY_REPLICATION": "0"}, "DIRECTORY_REPLICATION: must be an integer >= 1"),
    ({}, {"DIRECTORY_REPLICATION": "1.5"}, "DIRECTORY_REPLICATION: not an integer"),
    ({}, {"DIRECTORY_DATABASE_URL": "directory.db"}, "DIRECTORY_DATABASE_URL: not a database URL"),
    ({}, {"DIRECTORY_PORT": "70000"}, "DIRECTORY_PORT: must be a port between 0 and 65535"),
    ({}, {"DIRECTORY_HOST": " "}, "DIRECTORY_HOST: is empty"),
    ({"lease_s": "abc"}, {}, "--lease: not a number: 'abc'"),
    ({"port": "-1"}, {}, "--port: must be a port"),
    ({"replication_deadline_s": "0"}, {}, "--replication-deadline: must be a number > 0"),
]


@pytest.mark.parametrize("flags, env, message", BAD)
def test_a_malformed_value_names_its_flag_or_variable(flags, env, message, caplog):
    with pytest.raises(ConfigError) as err:
        load_config(flags, {**env, "P2P_REPLICATION": "2"})
    assert str(err.value).startswith(message)
    assert "\n" not in str(err.value)
    assert caplog.records == []  # no deprecation chatter before the error line


def test_fields_limits_what_is_read():
    cfg = load_config({}, {"DIRECTORY_LEASE_S": "soon", "DIRECTORY_DATABASE_URL": "sqlite:///y.db"},
                      fields=("database_url",))
    assert cfg.database_url == "sqlite:///y.db" and cfg.lease_s == 45.0


@pytest.mark.parametrize("values", [
    {"lease": 3}, {"lease_s": -1}, {"lease_s": True}, {"replication": 0}, {"max_pending_per_peer": 0},
    {"replication_deadline_s": -1}, {"probe_timeout_s": 0}, {"port": 65536}, {"port": "5000"}, {"host": ""},
])
def test_from_mapping_rejects_bad_values(values):
    with pytest.raises(ConfigError):
        DirectoryConfig.from_mapping(values)


def test_config_error_is_a_directory_error():
    assert issubclass(ConfigError, DirectoryError)


def test_create_app_needs_a_config():
    with pytest.raises(TypeError):
        create_app()


def test_certfile_and_keyfile_go_together():
    from directory_api.config import DirectoryConfig
    from directory_api.errors import ConfigError

    with pytest.raises(ConfigError, match="certfile and keyfile go together"):
        DirectoryConfig(certfile="/x.pem")
    assert DirectoryConfig(certfile="/x.pem", keyfile="/k.pem").keyfile == "/k.pem"
