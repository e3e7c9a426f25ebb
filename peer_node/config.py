"""Peer settings, read once at the entry point: flag > P2P_* environment > peerConfig.ini > default."""
import configparser
import os
import re
from dataclasses import dataclass, fields

from peer_node.errors import ConfigError
from protos.rules import DEFAULT_PIECE_SIZE, MIN_PIECE_SIZE, PEER_ID_RULE, is_peer_id

DEFAULT_CONFIG_FILE = "peerConfig.ini"
MiB = 1024 * 1024
GiB = 1024 * MiB
MAX_CHUNK_SIZE = 8 * MiB
# gRPC message limits sit a little above the largest chunk so framing never trips them
MAX_MESSAGE_BYTES = MAX_CHUNK_SIZE + 64 * 1024

_SIZE_RE = re.compile(r"^\s*(\d+)\s*([kmgt]?)(i?b)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def parse_size(text):
    """Bytes from '1048576', '1MiB', '512k', '2 GB' (binary units); ValueError otherwise."""
    m = _SIZE_RE.match(str(text))
    if not m:
        raise ValueError(f"{text!r} is not a size (try 1048576 or 1MiB)")
    return int(m.group(1)) * _UNITS[m.group(2).lower()]


def parse_bool(text):
    """True/False from the usual spellings; ValueError otherwise."""
    value = str(text).strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{text!r} is not a boolean (use true or false)")


def parse_port(text):
    """A TCP port number 0..65535 (0 = any free port)."""
    port = int(str(text).strip())
    if not 0 <= port <= 65535:
        raise ValueError(f"{port} is not a port (0..65535)")
    return port


def parse_urls(text):
    """One or more comma-separated http(s) URLs, trailing slashes dropped."""
    urls = tuple(u.strip().rstrip("/") for u in str(text).split(",") if u.strip())
    if not urls:
        raise ValueError("no URL given")
    for url in urls:
        if not re.match(r"^https?://[^/\s]+", url):
            raise ValueError(f"{url!r} is not an http:// or https:// URL")
    return urls


def parse_peer_id(text):
    """A peer id as the contract defines it (protos/rules.py)."""
    value = str(text).strip()
    if not is_peer_id(value):
        raise ValueError(f"{value!r} must be {PEER_ID_RULE}")
    return value


def parse_nonempty(text):
    """Any non-empty string."""
    value = str(text).strip()
    if not value:
        raise ValueError("is empty")
    return value


def _ranged(parse, low, high=None):
    def check(text):
        value = parse(text)
        if value < low or (high is not None and value > high):
            bound = f"between {low} and {high}" if high is not None else f"at least {low}"
            raise ValueError(f"{value} is out of range (must be {bound})")
        return value
    return check


# field -> (section, key, parser, default); default None + required means "must be given"
_SETTINGS = {
    "peer_id": ("peer", "peer_id", parse_peer_id, None),
    "secret": ("peer", "secret", parse_nonempty, None),
    "host": ("peer", "host", parse_nonempty, "127.0.0.1"),
    "port": ("peer", "port", parse_port, 50051),
    "folder": ("peer", "folder", parse_nonempty, None),
    "advertise": ("peer", "advertise", parse_nonempty, None),
    "directory": ("directory", "url", parse_urls, None),
    # transport security (peer_node/tls.py): PEM files; relative paths are relative to the file
    "tls_cert": ("tls", "cert", parse_nonempty, None),
    "tls_key": ("tls", "key", parse_nonempty, None),
    "tls_ca": ("tls", "ca", parse_nonempty, None),
    "tls_client_cert": ("tls", "client_cert", parse_nonempty, None),
    "tls_client_key": ("tls", "client_key", parse_nonempty, None),
    "tls_require_client_cert": ("tls", "require_client_cert", parse_bool, False),
    "directory_ca": ("directory", "ca", parse_nonempty, None),
    "chunk_size": ("transfer", "chunk_size", _ranged(parse_size, 1024, MAX_CHUNK_SIZE), MiB),
    "piece_size": ("transfer", "piece_size", _ranged(parse_size, MIN_PIECE_SIZE), DEFAULT_PIECE_SIZE),
    "parallel_sources": ("transfer", "parallel_sources", _ranged(int, 1, 16), 4),
    "stall_timeout": ("transfer", "stall_timeout", _ranged(float, 0.1, 3600), 10.0),
    "upload_rate_limit": ("transfer", "upload_rate_limit", _ranged(parse_size, 0), 0),
    "max_upload_bytes": ("transfer", "max_upload_bytes", _ranged(parse_size, 0), 4 * GiB),
    "accept_uploads": ("transfer", "accept_uploads", parse_bool, True),
    "rescan_interval": ("transfer", "rescan_interval", _ranged(float, 0.1), 5.0),
    "max_transfers": ("transfer", "max_transfers", _ranged(int, 1, 256), 8),
    # None: no metrics server; 0: any free port (the log says which)
    "metrics_port": ("metrics", "port", parse_port, None),
    # free disk space an upload must leave behind (the peer's own disk is not the network's)
    "min_free_bytes": ("transfer", "min_free_bytes", _ranged(parse_size, 0), GiB),
    # seconds an Upload may take to send its header (a stranger's open stream holds a thread)
    "header_timeout": ("transfer", "header_timeout", _ranged(float, 0.1, 3600), 5.0),
    # false only for a closed test bench: then anyone may download and upload
    "require_tickets": ("transfer", "require_tickets", parse_bool, True),
}
SERVE_REQUIRED = ("peer_id", "secret", "folder", "directory")
_PATHS = {"folder", "tls_cert", "tls_key", "tls_ca", "tls_client_cert", "tls_client_key", "directory_ca"}


def env_name(field_name):
    """The environment variable for a setting, e.g. P2P_CHUNK_SIZE; the URL is P2P_DIRECTORY."""
    return "P2P_" + field_name.upper()


@dataclass(frozen=True)
class PeerConfig:
    """Every setting of a peer, already parsed and checked."""

    peer_id: str = None
    secret: str = None
    host: str = "127.0.0.1"
    port: int = 50051
    folder: str = None
    advertise: str = None
    directory: tuple = None
    tls_cert: str = None
    tls_key: str = None
    tls_ca: str = None
    tls_client_cert: str = None
    tls_client_key: str = None
    tls_require_client_cert: bool = False
    directory_ca: str = None
    chunk_size: int = MiB
    piece_size: int = DEFAULT_PIECE_SIZE
    parallel_sources: int = 4
    stall_timeout: float = 10.0
    upload_rate_limit: int = 0
    max_upload_bytes: int = 4 * GiB
    accept_uploads: bool = True
    rescan_interval: float = 5.0
    max_transfers: int = 8
    metrics_port: int = None
    min_free_bytes: int = GiB
    header_timeout: float = 5.0
    require_tickets: bool = True
    source: str = "defaults"

    @property
    def bind_address(self):
        """host:port for the gRPC server to bind."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def load_config(path=None, flags=None, env=None, required=(), default_path=DEFAULT_CONFIG_FILE):
    """Build a PeerConfig from flags, environment and file; ConfigError names file, key, problem.

    path: an explicit config file (must exist); without it default_path is read when present.
    flags: {field: value} from the command line, None values meaning "not given".
    required: fields that must end up set (serve needs peer_id, secret, folder, directory).
    """
    env = os.environ if env is None else env
    flags = {k: v for k, v in (flags or {}).items() if v is not None}
    parser = configparser.ConfigParser(interpolation=None)
    source = None
    if path is None and os.environ.get("P2P_CONFIG") and env is os.environ:
        path = os.environ["P2P_CONFIG"]
    if path is not None:
        source = str(path)
        if not os.path.isfile(path):
            raise ConfigError(source, "(file)", "no such file")
    elif default_path and os.path.isfile(default_path):
        source = default_path
    if source is not None:
        try:
            with open(source, encoding="utf-8") as f:
                parser.read_file(f)
        except (OSError, UnicodeDecodeError, configparser.Error) as exc:
            raise ConfigError(source, "(file)", str(exc).splitlines()[0]) from None
    values = {}
    for name, (section, key, parse, default) in _SETTINGS.items():
        if name in flags:
            where, what, raw = "command line", f"--{name.replace('_', '-')}", flags[name]
        elif env.get(env_name(name)):
            where, what, raw = "environment", env_name(name), env[env_name(name)]
        elif source is not None and parser.has_option(section, key):
            where, what, raw = source, f"[{section}] {key}", parser.get(section, key)
        else:
            values[name] = default
            continue
        try:
            values[name] = parse(raw)
        except (ValueError, TypeError) as exc:
            raise ConfigError(where, what, str(exc)) from None
        if name in _PATHS and where == source:
            # a relative path in the file means relative to the file, not to the cwd
            values[name] = os.path.join(os.path.dirname(os.path.abspath(source)), values[name])
    for name in required:
        if values.get(name) is None:
            section, key, _, _ = _SETTINGS[name]
            raise ConfigError(
                source or "(no config file)", f"[{section}] {key}",
                f"missing (set it in the file, in {env_name(name)} or with --{name.replace('_', '-')})",
            )
    if values["folder"] is not None:
        values["folder"] = os.path.abspath(values["folder"])
    return PeerConfig(source=source or "defaults", **values)


def field_names():
    """Names of every PeerConfig setting (for documentation and tests)."""
    return [f.name for f in fields(PeerConfig) if f.name != "source"]
