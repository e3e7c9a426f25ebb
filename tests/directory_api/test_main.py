"""`python -m directory_api` (directory_api.__main__) through click's runner: which setting wins, what it warns."""
import logging

import pytest
from click.testing import CliRunner

from directory_api import __main__ as cli_main
from directory_api.config import SETTINGS

# Every variable the directory reads or warns about, unset unless a test sets it.
UNSET = {name: None for s in SETTINGS for name in (s.env, s.deprecated_env, s.peer_env) if name}


@pytest.fixture
def served(monkeypatch):
    """Run the CLI with serve() replaced by a recorder; answers (result, [configs served])."""
    seen = []
    monkeypatch.setattr(cli_main, "serve", lambda cfg, dev=False: seen.append(cfg))

    def run(args=(), env=None):
        result = CliRunner().invoke(cli_main.cli, list(args), env={**UNSET, **(env or {})})
        return result, seen

    return run


def test_defaults(served):
    result, [cfg] = served()
    assert result.exit_code == 0, result.output
    assert (cfg.host, cfg.port, cfg.database_url, cfg.lease_s, cfg.replication) == (
        "127.0.0.1", 5000, "sqlite:///directory.db", 45.0, 2)


@pytest.mark.parametrize("args, env, expected", [
    (["--lease", "3"], {"DIRECTORY_LEASE_S": "4", "P2P_LEASE_S": "5"}, 3.0),
    ([], {"DIRECTORY_LEASE_S": "4", "P2P_LEASE_S": "5"}, 4.0),
    ([], {"P2P_LEASE_S": "5"}, 5.0),
    ([], {}, 45.0),
])
def test_flag_beats_directory_variable_beats_deprecated_beats_default(served, args, env, expected):
    result, [cfg] = served(args, env)
    assert result.exit_code == 0, result.output
    assert cfg.lease_s == expected


@pytest.mark.parametrize("args, env, expected", [
    (["--replication-deadline", "4"], {}, 4.0),
    ([], {"DIRECTORY_REPLICATION_DEADLINE_S": "6.5"}, 6.5),
    ([], {"P2P_REPLICATION_DEADLINE_S": "7.5"}, 7.5),
    (["--lease", "20"], {}, 60.0),  # default: max(30, 3 x lease)
])
def test_replication_deadline(served, args, env, expected):
    result, [cfg] = served(args, env)
    assert result.exit_code == 0, result.output
    assert cfg.deadline_s == expected


def test_every_setting_has_its_flag_and_variable(served):
    env = {"DIRECTORY_HOST": "::1", "DIRECTORY_PORT": "7001", "DIRECTORY_DATABASE_URL": "sqlite:///e.db",
           "DIRECTORY_LEASE_S": "9", "DIRECTORY_REPLICATION": "4", "DIRECTORY_REPLICATION_DEADLINE_S": "8"}
    result, [from_env] = served([], env)
    assert (from_env.host, from_env.port, from_env.database_url, from_env.lease_s, from_env.replication,
            from_env.deadline_s) == ("::1", 7001, "sqlite:///e.db", 9.0, 4, 8.0)
    flags = ["--host", "127.0.0.2", "--port", "7002", "--database", "sqlite:///f.db", "--lease", "10",
             "--replication", "5", "--replication-deadline", "11"]
    result, [_, from_flags] = served(flags, env)
    assert (from_flags.host, from_flags.port, from_flags.database_url, from_flags.lease_s, from_flags.replication,
            from_flags.deadline_s) == ("127.0.0.2", 7002, "sqlite:///f.db", 10.0, 5, 11.0)


def test_deprecated_variables_warn_once_each_naming_the_new_one(served, caplog):
    env = {"P2P_DATABASE_URL": "sqlite:///old.db", "P2P_REPLICATION": "3"}
    with caplog.at_level(logging.WARNING, logger="directory_api.config"):
        result, [cfg] = served([], env)
    assert (cfg.database_url, cfg.replication) == ("sqlite:///old.db", 3)
    assert [r.getMessage() for r in caplog.records] == [
        "P2P_DATABASE_URL is deprecated: rename it DIRECTORY_DATABASE_URL (the old name stops working in the next release)",
        "P2P_REPLICATION is deprecated: rename it DIRECTORY_REPLICATION (the old name stops working in the next release)",
    ]


@pytest.mark.parametrize("env, port, warned", [
    ({"P2P_PORT": "7000"}, 5000, ["P2P_PORT is a peer setting; the directory reads DIRECTORY_PORT; ignoring it"]),
    ({"P2P_PORT": "7000", "DIRECTORY_PORT": "7001"}, 7001, []),
])
def test_the_peers_port_is_ignored(served, caplog, env, port, warned):
    with caplog.at_level(logging.WARNING, logger="directory_api.config"):
        result, [cfg] = served([], env)
    assert cfg.port == port
    assert [r.getMessage() for r in caplog.records] == warned


def test_init_db_reads_the_database_setting(tmp_path):
    result = CliRunner().invoke(cli_main.cli, ["init-db"],
                                env={**UNSET, "DIRECTORY_DATABASE_URL": f"sqlite:///{tmp_path}/init.db"})
    assert result.exit_code == 0 and "schema ready" in result.output
    assert (tmp_path / "init.db").exists()


def test_help_shows_each_variable_and_default():
    result = CliRunner().invoke(cli_main.cli, ["--help"], env=UNSET)
    assert result.exit_code == 0
    for setting in SETTINGS:
        assert setting.flag in result.output and setting.env in result.output
    assert "default: 45.0" in result.output and "init-db" in result.output


@pytest.mark.parametrize("args, env, named", [
    (["--lease", "0"], {}, "--lease"),
    (["--port", "http"], {}, "--port"),
    ([], {"DIRECTORY_REPLICATION": "two"}, "DIRECTORY_REPLICATION"),
    ([], {"P2P_LEASE_S": "-3"}, "P2P_LEASE_S"),
    (["init-db", "--database", "nonsense"], {}, "--database"),
])
def test_a_malformed_setting_is_one_line_naming_it(monkeypatch, capsys, args, env, named):
    for name in UNSET:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(cli_main, "serve", lambda cfg, dev=False: pytest.fail("must not serve"))
    with pytest.raises(SystemExit) as exit_:
        cli_main.main(args)
    out, err = capsys.readouterr()
    assert exit_.value.code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and err.startswith(f"p2p-directory: {named}: "), err


def test_dev_chooses_the_development_server_and_production_is_the_default(monkeypatch):
    seen = []
    monkeypatch.setattr(cli_main, "serve", lambda cfg, dev=False: seen.append((cfg.workers, cfg.threads, dev)))
    env = {**UNSET, "DIRECTORY_WORKERS": "3"}
    assert CliRunner().invoke(cli_main.cli, [], env=env).exit_code == 0
    assert CliRunner().invoke(cli_main.cli, ["--dev", "--threads", "4"], env=env).exit_code == 0
    assert seen == [(3, 8, False), (3, 4, True)]


@pytest.mark.parametrize("args, named", [(["--workers", "0"], "--workers"), (["--threads", "many"], "--threads"),
                                         (["--header-timeout", "-1"], "--header-timeout"),
                                         (["--metrics", "maybe"], "--metrics")])
def test_server_settings_are_checked(served, args, named):
    result, seen = served(args)
    assert result.exit_code != 0 and seen == []
    assert named in str(result.exception) or named in result.output


@pytest.mark.parametrize("args, env, expected", [([], {}, True), (["--metrics", "off"], {}, False),
                                                 ([], {"DIRECTORY_METRICS": "false"}, False),
                                                 (["--metrics", "on"], {"DIRECTORY_METRICS": "off"}, True)])
def test_metrics_switch(served, args, env, expected):
    result, [cfg] = served(args, env)
    assert result.exit_code == 0, result.output
    assert cfg.metrics is expected


@pytest.mark.parametrize("args, env, expected", [([], {}, False), (["--open-downloads"], {}, True),
                                                 (["--open-downloads", "off"], {}, False),
                                                 ([], {"DIRECTORY_OPEN_DOWNLOADS": "1"}, True),
                                                 (["--open-downloads", "--lease", "3"], {}, True)])
def test_open_downloads_switch(served, args, env, expected):
    result, [cfg] = served(args, env)
    assert result.exit_code == 0, result.output
    assert cfg.open_downloads is expected


@pytest.mark.parametrize("args, env, expected", [([], {}, 3600.0), (["--client-session", "60"], {}, 60.0),
                                                 ([], {"DIRECTORY_CLIENT_SESSION_S": "5"}, 5.0)])
def test_client_session_setting(served, args, env, expected):
    result, [cfg] = served(args, env)
    assert result.exit_code == 0, result.output
    assert cfg.client_session_s == expected


def test_forget_peer_releases_a_registered_peer_id(tmp_path):
    from directory_api.store import Store

    url = f"sqlite:///{tmp_path}/d.db"
    store = Store(url)
    store.create_schema()
    store.register_peer("alice", "hash", 1.0)
    result = CliRunner().invoke(cli_main.cli, ["forget-peer", "--database", url, "alice"], env=UNSET)
    assert result.exit_code == 0, result.output
    assert "forgot peer alice" in result.output
    assert store.secret_hash("alice") is None and store.register_peer("alice", "new", 2.0)
    store.dispose()


def test_forget_peer_of_an_unknown_id_is_one_line_and_fails(tmp_path, capsys):
    url = f"sqlite:///{tmp_path}/d.db"
    with pytest.raises(SystemExit) as exit_:
        cli_main.main(["forget-peer", "--database", url, "nobody"])
    assert exit_.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["p2p-directory: no peer 'nobody' is registered in this database"]


@pytest.mark.parametrize("args, env, expected", [
    ([], {}, (5, 20)), (["--login-failures-per-minute", "0"], {}, (0, 20)),
    ([], {"DIRECTORY_LOGIN_FAILURES_PER_MINUTE": "3", "DIRECTORY_LOGIN_FAILURES_PER_ADDRESS": "9"}, (3, 9)),
])
def test_login_failure_limits(served, args, env, expected):
    result, [cfg] = served(args, env)
    assert result.exit_code == 0, result.output
    assert (cfg.login_failures_per_minute, cfg.login_failures_per_address) == expected


@pytest.mark.parametrize("args", [["--login-failures-per-minute", "-1"], ["--login-failures-per-address", "x"]])
def test_login_failure_limits_are_checked(served, args):
    result, seen = served(args)
    assert result.exit_code != 0 and seen == []
    assert args[0] in str(result.exception) + result.output
