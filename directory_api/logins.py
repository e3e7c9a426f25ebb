"""The failed-login limiter (issue 12): 429 with Retry-After past a few wrong secrets a minute.

Counted per peer_id (a guesser of one peer's secret) and per client address (a guesser of many),
in the database (store/logins.py: the p2p_login_failures table), so every directory process
serving that database enforces one count. A table of our own rather than Flask-Limiter: its
storages are memory (one count per process), Redis or Memcached (another service to run),
while this network's directory already shares one SQLite file or PostgreSQL database.

The limit is checked before the secret is hashed: a refused guess costs one indexed read, no
scrypt, so a brute force is neither a guessing lever nor a CPU lever.
"""
from __future__ import annotations

import math

from .errors import TooManyAttempts

WINDOW_S = 60.0  # the limits are failures per minute


def _keys(peer_id: str, address: str | None) -> list[str]:
    keys = [f"peer:{peer_id}"]
    if address:
        keys.append(f"addr:{address}")
    return keys


class LoginLimiter:
    """Counts failed logins of a directory (config.login_failures_*, 0 = no limit) in its store."""

    def __init__(self, config, store):
        """Bind the limits and the store that keeps the count."""
        self.per_peer = config.login_failures_per_minute
        self.per_address = config.login_failures_per_address
        self.store = store

    @property
    def enabled(self) -> bool:
        """False when both limits are 0."""
        return bool(self.per_peer or self.per_address)

    def check(self, peer_id: str, address: str | None, now: float) -> bool:
        """TooManyAttempts if peer_id or address is past its limit; True if they have failures to clear."""
        if not self.enabled:
            return False
        found = self.store.login_failures(_keys(peer_id, address), now - WINDOW_S)
        limits = {f"peer:{peer_id}": self.per_peer, f"addr:{address}": self.per_address}
        for key, times in found.items():
            limit = limits.get(key, 0)
            if limit and len(times) >= limit:
                # Allowed again once enough of the failures leave the window to be under the limit.
                wait = max(1, math.ceil(times[len(times) - limit] + WINDOW_S - now))
                what = f"peer {peer_id}" if key.startswith("peer:") else f"address {address}"
                raise TooManyAttempts(f"too many failed logins for {what}: try again in {wait} s", wait)
        return bool(found.get(f"peer:{peer_id}"))

    def failed(self, peer_id: str, address: str | None, now: float) -> None:
        """Count a wrong secret for peer_id from address."""
        if self.enabled:
            self.store.record_login_failure(_keys(peer_id, address), now)

    def succeeded(self, peer_id: str) -> None:
        """A right secret: peer_id's earlier failures no longer count against it."""
        self.store.clear_login_failures(f"peer:{peer_id}")

    def sweep(self, now: float) -> int:
        """Forget failures older than the window; returns how many."""
        return self.store.drop_old_login_failures(now - WINDOW_S)
