"""The directory's settings: one frozen dataclass, filled once at an entry point.

``SETTINGS`` is the one table of what an operator sets: each row gives a field of
``DirectoryConfig`` its flag, its environment variable, its parser and its help, once; the
default is the dataclass field's. ``python -m directory_api`` generates its click options from
the table and the WSGI entry reads the environment through it (``load_config``), so both
understand the same names and print the same errors. Precedence: flag > ``DIRECTORY_*``
variable > deprecated ``P2P_*`` variable > default.

The directory's variables start with ``DIRECTORY_``; the peer's start with ``P2P_``. The old
directory-only names (``P2P_DATABASE_URL``, ``P2P_LEASE_S``, ``P2P_REPLICATION``,
``P2P_REPLICATION_DEADLINE_S``) still work for this release, with a warning; ``P2P_HOST`` and
``P2P_PORT`` are the peer's and are ignored, with a warning, so that a shell exporting them for
a peer does not move the directory.
"""
from __future__ import annotations

import dataclasses
import logging
import math
import os
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping

from .errors import ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DirectoryConfig:
    """Everything the directory reads once at start; nothing else reads the environment."""

    host: str = "127.0.0.1"
    port: int = 5000
    database_url: str = "sqlite:///directory.db"
    lease_s: float = 45.0
    replication: int = 2
    # None means "derived from the lease" (see the properties below).
    replication_deadline_s: float | None = None
    replication_interval_s: float | None = None
    max_pending_per_peer: int = 4
    max_plans_per_heartbeat: int = 16
    probe_timeout_s: float = 1.0
    sweep: bool = True
    # Heartbeats renew leases in memory; each process writes them every lease_flush_s in one
    # transaction (0: every heartbeat writes its own).
    lease_flush_s: float = 0.05
    sweep_interval_s: float | None = None
    dead_after_leases: float = 10.0
    # Seconds between two heartbeats of life of this process (its clock beside the database's).
    process_beat_s: float = 5.0
    max_body_bytes: int = 8 * 1024 * 1024
    max_files_per_call: int = 100_000
    # werkzeug generate_password_hash method; tests pick a cheap one to stay fast.
    secret_hash_method: str = "scrypt"
    # The production server (python -m directory_api; see serving.py): gunicorn processes,
    # threads in each, and the seconds a client may take to send a request's line and headers
    # (and, after them, for each read of its body) before it is dropped.
    workers: int = 2
    threads: int = 8
    header_timeout_s: float = 10.0
    # GET /metrics and the per-request counters (off: neither, for benchmarks to compare).
    metrics: bool = True
    # The PEM file of the Ed25519 key transfer tickets are signed with (created when missing);
    # None: beside the SQLite file, or kept in the PostgreSQL database (see keys.py).
    ticket_key_file: str | None = None
    # issue 12: seconds a client session (a login without grpc_address) lasts.
    client_session_s: float = 3600.0
    # issue 12: download tickets for anyone who asks (a public network); uploads always need a session.
    open_downloads: bool = False
    # issue 12: failed logins a minute past which a login is refused (429), per peer_id and per
    # client address, across every process of the database (logins.py); 0: no limit.
    login_failures_per_minute: int = 5
    login_failures_per_address: int = 20
    # issue 12: HTTPS with this certificate (PEM, chain allowed) and its private key; None: plain HTTP.
    certfile: str | None = None
    keyfile: str | None = None
    # issue 12: the CA that signed the peers' gRPC certificates: the health probe then dials over TLS
    # (with peer_cert/peer_key as its client certificate, for peers that ask for one).
    peer_ca: str | None = None
    peer_cert: str | None = None
    peer_key: str | None = None
    # Audits of unproven claims (audits.py): how many the network hands out a minute (0: none),
    # and the least seconds between two audits of one claim.
    audits_per_minute: int = 60
    audit_interval_s: float = 3600.0

    def __post_init__(self):
        if not isinstance(self.host, str) or not self.host.strip():
            raise ConfigError(f"host: must be a host name or address, got {self.host!r}")
        if isinstance(self.port, bool) or not isinstance(self.port, int) or not 0 <= self.port <= 65535:
            raise ConfigError(f"port: must be an integer between 0 and 65535, got {self.port!r}")
        _positive("lease_s", self.lease_s)
        if not isinstance(self.replication, int) or isinstance(self.replication, bool) or self.replication < 1:
            raise ConfigError(f"replication: must be an integer >= 1, got {self.replication!r}")
        if not isinstance(self.database_url, str) or "://" not in self.database_url:
            raise ConfigError(f"database_url: not a database URL: {self.database_url!r}")
        for name in ("replication_deadline_s", "replication_interval_s", "sweep_interval_s", "lease_flush_s"):
            value = getattr(self, name)
            if value is not None:
                _non_negative(name, value)
        _positive("probe_timeout_s", self.probe_timeout_s)
        _positive("dead_after_leases", self.dead_after_leases)
        _positive("process_beat_s", self.process_beat_s)
        _positive("header_timeout_s", self.header_timeout_s)
        if not isinstance(self.metrics, bool):
            raise ConfigError(f"metrics: must be true or false, got {self.metrics!r}")
        _positive("client_session_s", self.client_session_s)
        if not isinstance(self.open_downloads, bool):
            raise ConfigError(f"open_downloads: must be true or false, got {self.open_downloads!r}")
        if (self.certfile is None) != (self.keyfile is None):
            raise ConfigError("certfile and keyfile go together: give both for HTTPS, or neither")
        if (self.peer_cert is None) != (self.peer_key is None):
            raise ConfigError("peer_cert and peer_key go together: give both for mutual TLS, or neither")
        if self.peer_cert is not None and self.peer_ca is None:
            raise ConfigError("peer_cert needs peer_ca: a client certificate is only sent over TLS")
        for name in ("login_failures_per_minute", "login_failures_per_address"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ConfigError(f"{name}: must be an integer >= 0, got {value!r}")
        if isinstance(self.audits_per_minute, bool) or not isinstance(self.audits_per_minute, int) \
                or not 0 <= self.audits_per_minute <= 60_000:
            raise ConfigError(f"audits_per_minute: must be an integer between 0 and 60000, "
                              f"got {self.audits_per_minute!r}")
        _positive("audit_interval_s", self.audit_interval_s)
        for name in ("max_pending_per_peer", "max_plans_per_heartbeat", "max_body_bytes", "max_files_per_call",
                     "workers", "threads"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{name}: must be an integer >= 1, got {value!r}")

    @property
    def deadline_s(self) -> float:
        """Seconds a planned copy may stay pending before it is dropped and planned again."""
        if self.replication_deadline_s is not None:
            return self.replication_deadline_s
        return max(30.0, 3 * self.lease_s)

    @property
    def plan_interval_s(self) -> float:
        """Least seconds between two planning rounds for one holder (keeps heartbeats cheap)."""
        if self.replication_interval_s is not None:
            return self.replication_interval_s
        return self.lease_s / 3

    @property
    def sweep_every_s(self) -> float:
        """Seconds between two background sweeps."""
        if self.sweep_interval_s is not None:
            return max(self.sweep_interval_s, 0.05)
        return max(self.lease_s, 1.0)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> "DirectoryConfig":
        """Build a config from a dict of field names; unknown keys are an error."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown setting(s): {', '.join(unknown)}")
        return cls(**dict(values))


# -- parsers: text from a flag or a variable -> value, ValueError saying what is wrong ----------


def parse_host(raw: str) -> str:
    """A host name or address to bind."""
    if not raw.strip():
        raise ValueError("is empty")
    return raw.strip()


def parse_port(raw: str) -> int:
    """A TCP port 0..65535 (0 = any free port)."""
    port = _int(raw)
    if not 0 <= port <= 65535:
        raise ValueError(f"must be a port between 0 and 65535, got {port}")
    return port


def parse_database_url(raw: str) -> str:
    """An SQLAlchemy URL (scheme://...)."""
    if "://" not in raw:
        raise ValueError(f"not a database URL: {raw!r} (try sqlite:///directory.db)")
    return raw


def parse_path(raw: str) -> str:
    """A file path (made absolute, so every process of a network reads the same file)."""
    if not raw.strip():
        raise ValueError("is empty")
    return os.path.abspath(raw.strip())


def parse_seconds(raw: str) -> float:
    """A number of seconds > 0."""
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"not a number: {raw!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"must be a number > 0, got {raw!r}")
    return value


def parse_copies(raw: str) -> int:
    """A count of copies >= 1."""
    value = _int(raw)
    if value < 1:
        raise ValueError(f"must be an integer >= 1, got {value}")
    return value


def parse_count(raw: str) -> int:
    """A count of processes or threads, 1..256."""
    value = _int(raw)
    if not 1 <= value <= 256:
        raise ValueError(f"must be an integer between 1 and 256, got {value}")
    return value


def parse_rate(raw: str) -> int:
    """A count a minute, 0..60000 (0 = off)."""
    value = _int(raw)
    if not 0 <= value <= 60_000:
        raise ValueError(f"must be an integer between 0 and 60000, got {value}")
    return value


def parse_switch(raw: str) -> bool:
    """on/off (also true/false, yes/no, 1/0)."""
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"must be on or off, got {raw!r}")


def parse_limit(raw: str) -> int:
    """A limit: an integer >= 0 (0 = no limit)."""
    value = _int(raw)
    if value < 0:
        raise ValueError(f"must be an integer >= 0, got {value}")
    return value


def _int(raw: str) -> int:
    try:
        return int(raw.strip())
    except ValueError:
        raise ValueError(f"not an integer: {raw!r}") from None


@dataclass(frozen=True)
class Setting:
    """One operator setting: a DirectoryConfig field with its flag, variable, parser and help."""

    field: str
    flag: str
    env: str
    parse: Callable[[str], Any]
    metavar: str
    help: str
    default_help: str | None = None  # shown instead of the default when the default is derived
    deprecated_env: str | None = None  # the old name, still read for one release
    peer_env: str | None = None  # the peer's variable of the same meaning: ignored here

    @property
    def default(self) -> Any:
        """The dataclass default of this field."""
        return DirectoryConfig.__dataclass_fields__[self.field].default

    @property
    def help_text(self) -> str:
        """The --help line: what it is, its variable and its default."""
        default = self.default_help or str(self.default)
        return f"{self.help} [env: {self.env}; default: {default}]"


SETTINGS: tuple[Setting, ...] = (
    Setting("host", "--host", "DIRECTORY_HOST", parse_host, "HOST", "address to bind",
            peer_env="P2P_HOST"),
    Setting("port", "--port", "DIRECTORY_PORT", parse_port, "PORT", "port to bind (0 = any free port)",
            peer_env="P2P_PORT"),
    Setting("database_url", "--database", "DIRECTORY_DATABASE_URL", parse_database_url, "URL",
            "SQLAlchemy URL (sqlite:///... or postgresql+psycopg://...)", deprecated_env="P2P_DATABASE_URL"),
    Setting("lease_s", "--lease", "DIRECTORY_LEASE_S", parse_seconds, "SECONDS",
            "lease in seconds: a peer is live while last_seen + lease >= now", deprecated_env="P2P_LEASE_S"),
    Setting("replication", "--replication", "DIRECTORY_REPLICATION", parse_copies, "N",
            "copies wanted of each file (1 = off)", deprecated_env="P2P_REPLICATION"),
    Setting("replication_deadline_s", "--replication-deadline", "DIRECTORY_REPLICATION_DEADLINE_S",
            parse_seconds, "SECONDS", "seconds a planned copy may take before it is planned again",
            default_help="max(30, 3 x lease)", deprecated_env="P2P_REPLICATION_DEADLINE_S"),
    Setting("workers", "--workers", "DIRECTORY_WORKERS", parse_count, "N",
            "server processes (gunicorn workers; not with --dev)"),
    Setting("threads", "--threads", "DIRECTORY_THREADS", parse_count, "N",
            "request threads in each server process (not with --dev)"),
    Setting("header_timeout_s", "--header-timeout", "DIRECTORY_HEADER_TIMEOUT_S", parse_seconds, "SECONDS",
            "seconds a client may take to send its request line and headers, and each read of its body"),
    Setting("ticket_key_file", "--ticket-key-file", "DIRECTORY_TICKET_KEY_FILE", parse_path, "PEM",
            "Ed25519 key that signs transfer tickets (created if missing); give every directory process "
            "of a network the same one", default_help="beside the SQLite file, or in the PostgreSQL database"),
    Setting("metrics", "--metrics", "DIRECTORY_METRICS", parse_switch, "on|off",
            "serve GET /metrics and count requests", default_help="on"),
    Setting("client_session_s", "--client-session", "DIRECTORY_CLIENT_SESSION_S", parse_seconds, "SECONDS",
            "seconds a client session (a login without grpc_address) lasts"),
    Setting("open_downloads", "--open-downloads", "DIRECTORY_OPEN_DOWNLOADS", parse_switch, "on|off",
            "give download tickets without a session (a public network; uploads always need one)",
            default_help="off"),
    Setting("login_failures_per_minute", "--login-failures-per-minute", "DIRECTORY_LOGIN_FAILURES_PER_MINUTE",
            parse_limit, "N", "failed logins a minute of one peer_id before 429 (0 = no limit)"),
    Setting("login_failures_per_address", "--login-failures-per-address",
            "DIRECTORY_LOGIN_FAILURES_PER_ADDRESS", parse_limit, "N",
            "failed logins a minute from one client address before 429 (0 = no limit)"),
    Setting("certfile", "--certfile", "DIRECTORY_CERTFILE", parse_path, "PEM",
            "serve HTTPS with this certificate (with --keyfile)", default_help="none: plain HTTP"),
    Setting("keyfile", "--keyfile", "DIRECTORY_KEYFILE", parse_path, "PEM",
            "the private key of --certfile", default_help="none"),
    Setting("peer_ca", "--peer-ca", "DIRECTORY_PEER_CA", parse_path, "PEM",
            "CA of the peers' gRPC certificates: the health probe dials peers over TLS", default_help="plaintext"),
    Setting("peer_cert", "--peer-cert", "DIRECTORY_PEER_CERT", parse_path, "PEM",
            "client certificate the probe shows peers that ask for one (with --peer-key)", default_help="none"),
    Setting("peer_key", "--peer-key", "DIRECTORY_PEER_KEY", parse_path, "PEM",
            "the private key of --peer-cert", default_help="none"),
    Setting("audits_per_minute", "--audits-per-minute", "DIRECTORY_AUDITS_PER_MINUTE", parse_rate, "N",
            "audits of unproven file claims handed out a minute across the network (0 = none)"),
    Setting("audit_interval_s", "--audit-interval", "DIRECTORY_AUDIT_INTERVAL_S", parse_seconds, "SECONDS",
            "least seconds between two audits of one unproven claim"),
)
SETTINGS_BY_FIELD = {s.field: s for s in SETTINGS}


def load_config(flags: Mapping[str, str | None] | None = None, environ: Mapping[str, str] | None = None,
                fields: Iterable[str] | None = None, **fixed: Any) -> DirectoryConfig:
    """The config from flags ({field: text or None}), the environment and the defaults.

    fields: only these settings of the table are read (init-db needs only the database).
    fixed: other DirectoryConfig fields, as values. A malformed value raises ConfigError
    naming the flag or variable; warnings about deprecated or ignored variables are logged
    once the config is known to be good.
    """
    flags, environ = flags or {}, environ or {}
    wanted = set(SETTINGS_BY_FIELD if fields is None else fields)
    values: dict[str, Any] = dict(fixed)
    warnings: list[str] = []
    for setting in SETTINGS:
        if setting.field not in wanted:
            continue
        raw, source = _pick(setting, flags, environ, warnings)
        if raw is None:
            continue
        try:
            values[setting.field] = setting.parse(raw)
        except ValueError as exc:
            raise ConfigError(f"{source}: {exc}") from None
    config = DirectoryConfig(**values)
    for warning in warnings:
        log.warning("%s", warning)
    return config


def _pick(setting: Setting, flags: Mapping[str, str | None], environ: Mapping[str, str],
          warnings: list[str]) -> tuple[str | None, str | None]:
    """The text that wins for one setting and where it came from (flag or variable name)."""
    flag, current = flags.get(setting.field), environ.get(setting.env) or None
    if setting.peer_env and environ.get(setting.peer_env) and current is None:
        warnings.append(f"{setting.peer_env} is a peer setting; the directory reads {setting.env}; ignoring it")
    old = (environ.get(setting.deprecated_env) or None) if setting.deprecated_env else None
    if old is not None:
        if flag is None and current is None:
            warnings.append(f"{setting.deprecated_env} is deprecated: rename it {setting.env} "
                            f"(the old name stops working in the next release)")
        else:
            winner = setting.flag if flag is not None else setting.env
            warnings.append(f"{setting.deprecated_env} is deprecated and ignored: {winner} is set")
    if flag is not None:
        return flag, setting.flag
    if current is not None:
        return current, setting.env
    if old is not None:
        return old, setting.deprecated_env
    return None, None


def _positive(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{name}: must be a number > 0, got {value!r}")


def _non_negative(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ConfigError(f"{name}: must be a number >= 0, got {value!r}")
