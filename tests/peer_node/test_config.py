"""Unit tests for peer_node.config: precedence, parsing, one-line errors."""
import pytest

from peer_node.config import SERVE_REQUIRED, load_config, parse_size
from peer_node.errors import ConfigError

INI = """\
[peer]
peer_id = alice
secret = s3cret
port = 6000
folder = shared

[directory]
url = http://a:5000, http://b:5000/

[transfer]
chunk_size = 512KiB
accept_uploads = false
"""


@pytest.fixture
def ini(tmp_path):
    path = tmp_path / "peerConfig.ini"
    path.write_text(INI)
    return path


def test_file_values_and_defaults(ini, tmp_path):
    cfg = load_config(str(ini), env={}, required=SERVE_REQUIRED)
    assert (cfg.peer_id, cfg.secret, cfg.port, cfg.host) == ("alice", "s3cret", 6000, "127.0.0.1")
    assert cfg.folder == str(tmp_path / "shared")  # relative to the file
    assert cfg.directory == ("http://a:5000", "http://b:5000")
    assert cfg.chunk_size == 512 * 1024 and cfg.accept_uploads is False
    assert cfg.piece_size == 4 * 1024 * 1024 and cfg.parallel_sources == 4 and cfg.stall_timeout == 10.0
    assert cfg.rescan_interval == 5.0 and cfg.max_upload_bytes == 4 * 1024**3
    assert cfg.min_free_bytes == 1024**3 and cfg.header_timeout == 5.0 and cfg.require_tickets is True


def test_precedence_flag_over_env_over_file(ini):
    env = {"P2P_PORT": "7000", "P2P_PEER_ID": "bob"}
    cfg = load_config(str(ini), flags={"port": "8000", "peer_id": None}, env=env)
    assert cfg.port == 8000 and cfg.peer_id == "bob"
    assert load_config(str(ini), env=env).port == 7000
    assert load_config(str(ini), env={"P2P_STALL_TIMEOUT": "2.5"}).stall_timeout == 2.5
    assert load_config(str(ini), flags={"stall_timeout": 1.0}, env={"P2P_STALL_TIMEOUT": "2.5"}).stall_timeout == 1.0


def test_missing_file_names_file(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_config(str(tmp_path / "nope.ini"), env={})
    assert "nope.ini" in str(err.value) and "no such file" in str(err.value)


def test_missing_required_key_names_key(tmp_path):
    path = tmp_path / "c.ini"
    path.write_text("[peer]\npeer_id = a\n")
    with pytest.raises(ConfigError) as err:
        load_config(str(path), env={}, required=SERVE_REQUIRED)
    msg = str(err.value)
    assert "c.ini" in msg and "[peer] secret" in msg and "missing" in msg and "\n" not in msg


@pytest.mark.parametrize("section,key,value,problem", [
    ("peer", "port", "seventy", "invalid literal"),
    ("peer", "port", "70000", "not a port"),
    ("peer", "peer_id", "has space", "letters"),
    ("directory", "url", "ftp://x", "http"),
    ("transfer", "chunk_size", "lots", "not a size"),
    ("transfer", "chunk_size", "64MiB", "out of range"),
    ("transfer", "accept_uploads", "maybe", "not a boolean"),
    ("transfer", "rescan_interval", "0", "out of range"),
    ("transfer", "stall_timeout", "soon", "could not convert"),
    ("transfer", "stall_timeout", "0", "out of range"),
])
def test_malformed_value_names_file_key_problem(tmp_path, section, key, value, problem):
    path = tmp_path / "c.ini"
    path.write_text(f"[{section}]\n{key} = {value}\n")
    with pytest.raises(ConfigError) as err:
        load_config(str(path), env={})
    msg = str(err.value)
    assert "c.ini" in msg and f"[{section}] {key}" in msg and problem in msg


def test_malformed_env_and_flag_are_named(ini):
    with pytest.raises(ConfigError, match="P2P_CHUNK_SIZE"):
        load_config(str(ini), env={"P2P_CHUNK_SIZE": "x"})
    with pytest.raises(ConfigError, match="--port"):
        load_config(str(ini), flags={"port": "x"}, env={})


def test_unparsable_file(tmp_path):
    path = tmp_path / "c.ini"
    path.write_text("no section here\n")
    with pytest.raises(ConfigError, match="c.ini"):
        load_config(str(path), env={})


def test_default_file_is_optional(tmp_path):
    cfg = load_config(None, env={}, default_path=str(tmp_path / "absent.ini"))
    assert cfg.directory is None and cfg.source == "defaults"


@pytest.mark.parametrize("text,value", [("10", 10), ("1KiB", 1024), ("2m", 2 * 1024**2),
                                        ("1 GiB", 1024**3), ("3MB", 3 * 1024**2)])
def test_parse_size(text, value):
    assert parse_size(text) == value


def test_example_config_at_top_level_loads():
    from tests.procs import ROOT
    cfg = load_config(str(ROOT / "peerConfig.ini"), env={}, required=SERVE_REQUIRED)
    assert cfg.peer_id and cfg.directory


def test_the_example_config_shows_every_default_it_sets():
    """Each setting peerConfig.ini writes out has its default value (copying it changes nothing)."""
    import configparser

    from peer_node.config import _SETTINGS, PeerConfig
    from tests.procs import ROOT
    example = configparser.ConfigParser(interpolation=None)
    example.read(ROOT / "peerConfig.ini")
    cfg = load_config(str(ROOT / "peerConfig.ini"), env={})
    written = {field for field, (section, key, _, _) in _SETTINGS.items() if example.has_option(section, key)}
    defaults = PeerConfig()
    examples = {"peer_id", "secret", "folder", "directory"}  # no default: the example's own values
    differ = {f: (getattr(cfg, f), getattr(defaults, f)) for f in written - examples
              if getattr(cfg, f) != getattr(defaults, f)}
    assert not differ
    assert {"max_upload_bytes", "min_free_bytes", "header_timeout", "require_tickets"} <= written


def test_metrics_port_is_off_unless_set(ini):
    assert load_config(str(ini), env={}).metrics_port is None
    ini.write_text(INI + "\n[metrics]\nport = 9101\n")
    assert load_config(str(ini), env={}).metrics_port == 9101
    assert load_config(str(ini), env={"P2P_METRICS_PORT": "0"}).metrics_port == 0
    assert load_config(str(ini), flags={"metrics_port": "9200"}, env={"P2P_METRICS_PORT": "0"}).metrics_port == 9200
    with pytest.raises(ConfigError, match=r"P2P_METRICS_PORT"):
        load_config(str(ini), env={"P2P_METRICS_PORT": "99999"})
