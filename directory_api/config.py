"""The directory's settings: one small dataclass, filled from a dict (tests) or the environment."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Mapping

DEFAULT_DATABASE_URL = "sqlite:///directory.db"
DEFAULT_LEASE_S = 45.0
DEFAULT_REPLICATION = 2


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names the key and what is wrong."""


@dataclass(frozen=True)
class DirectoryConfig:
    """Everything the directory reads once at start; nothing else reads the environment."""

    database_url: str = DEFAULT_DATABASE_URL
    lease_s: float = DEFAULT_LEASE_S
    replication: int = DEFAULT_REPLICATION
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
    max_body_bytes: int = 8 * 1024 * 1024
    max_files_per_call: int = 100_000
    # werkzeug generate_password_hash method; tests pick a cheap one to stay fast.
    secret_hash_method: str = "scrypt"

    def __post_init__(self):
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
        for name in ("max_pending_per_peer", "max_plans_per_heartbeat", "max_body_bytes", "max_files_per_call"):
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

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> "DirectoryConfig":
        """Build a config from P2P_DATABASE_URL, P2P_LEASE_S, P2P_REPLICATION and P2P_REPLICATION_DEADLINE_S."""
        values: dict[str, Any] = {}
        if environ.get("P2P_DATABASE_URL"):
            values["database_url"] = environ["P2P_DATABASE_URL"]
        if environ.get("P2P_LEASE_S"):
            values["lease_s"] = _parse_float("P2P_LEASE_S", environ["P2P_LEASE_S"])
        if environ.get("P2P_REPLICATION"):
            values["replication"] = _parse_int("P2P_REPLICATION", environ["P2P_REPLICATION"])
        if environ.get("P2P_REPLICATION_DEADLINE_S"):
            values["replication_deadline_s"] = _parse_float(
                "P2P_REPLICATION_DEADLINE_S", environ["P2P_REPLICATION_DEADLINE_S"])
        return cls(**values)


def _parse_float(name: str, raw: str) -> float:
    try:
        return float(raw)
    except ValueError:
        raise ConfigError(f"{name}: not a number: {raw!r}") from None


def _parse_int(name: str, raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name}: not an integer: {raw!r}") from None


def _positive(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{name}: must be a number > 0, got {value!r}")


def _non_negative(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ConfigError(f"{name}: must be a number >= 0, got {value!r}")
