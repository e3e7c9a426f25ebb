"""The failed-login limiter (issue 12): 429 with Retry-After past a few wrong secrets a minute.

Counted per peer_id (a guesser of one peer's secret) and per client address (a guesser of many),
in the database (store/logins.py: the p2p_login_failures table), so every directory process
serving that database enforces one count. A table of our own rather than Flask-Limiter: its
storages are memory (one count per process), Redis or Memcached (another service to run),
while this network's directory already shares one SQLite file or PostgreSQL database.

The limit is checked before the secret is hashed: a refused guess costs one short transaction,
no scrypt, so a brute force is neither a guessing lever nor a CPU lever. Each attempt counts
as a failure from that check until its secret proves right, so guesses sent in parallel cannot
slip past the limit together.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from .errors import TooManyAttempts

WINDOW_S = 60.0  # the limits are failures per minute


@dataclass
class Attempt:
    """One login under way: the keys it counts against and its rows in the store."""

    peer_key: str
    ids: list[int] = field(default_factory=list)


class LoginLimiter:
    """Counts failed logins of a directory (config.login_failures_*, 0 = no limit) in its store."""

    def __init__(self, config, store):
        """Bind the limits and the store that keeps the count."""
        self.per_peer = config.login_failures_per_minute
        self.per_address = config.login_failures_per_address
        self.store = store

    def begin(self, peer_id: str, address: str | None, now: float) -> Attempt:
        """Count this attempt (as a failure until succeeded); TooManyAttempts if peer_id or address is at its limit."""
        attempt = Attempt(f"peer:{peer_id}")
        limits = {}
        if self.per_peer:
            limits[attempt.peer_key] = self.per_peer
        if self.per_address and address:
            limits[f"addr:{address}"] = self.per_address
        if not limits:
            return attempt
        found, ids = self.store.begin_login(limits, now - WINDOW_S, now)
        if ids is not None:
            attempt.ids = ids
            return attempt
        for key, limit in limits.items():
            times = found[key]
            if len(times) >= limit:
                # Allowed again once enough failures leave the window to be under the limit.
                wait = max(1, math.ceil(times[len(times) - limit] + WINDOW_S - now))
                what = f"peer {peer_id}" if key == attempt.peer_key else f"address {address}"
                raise TooManyAttempts(f"too many failed logins for {what}: try again in {wait} s", wait)
        raise AssertionError("begin_login refused an attempt under every limit")  # pragma: no cover

    def succeeded(self, attempt: Attempt) -> None:
        """The secret was right: the attempt was no failure, and peer_id's earlier failures no longer count."""
        if attempt.ids:
            self.store.end_login(attempt.ids, clear_key=attempt.peer_key)
