"""What one download knows of itself and its holders: shared by the engine (peer_node.swarm) and
the displays that draw it (progress bars, --json), so those need not import the engine."""
from dataclasses import dataclass, field


class CancelToken:
    """Ask a running download to stop: cancel() only sets attributes, so a signal handler may call it."""

    def __init__(self):
        self.cancelled = False
        self.signum = None
        self.running = False  # True while a Swarm watches this token

    def cancel(self, signum=None):
        """Request the stop (thread-safe, signal-safe, idempotent)."""
        self.signum = signum
        self.cancelled = True


@dataclass(eq=False)
class HolderState:
    """One holder as this download sees it."""

    holder: object  # has peer_id and address
    state: str = "waiting"  # waiting, active, idle, busy, banned, stalled, failed
    reason: str = ""
    in_use: bool = False
    backoff_until: float = 0.0
    busy_answers: int = 0
    received: int = 0  # bytes it sent us, wasted ones included (written by its worker only)
    verified: int = 0  # bytes of its pieces that verified and were written
    first_byte: float = None
    # Since when it owes us bytes: survives a lane lost to an endgame copy while it was silent,
    # so a frozen holder meets the stall deadline even if it keeps being handed new lanes.
    owed_since: float = None

    @property
    def usable(self):
        """False once it is out of this download."""
        return self.state not in ("banned", "stalled", "failed")

    def rate(self, now):
        """Bytes per second it has delivered since its first byte (0 before)."""
        if self.first_byte is None or now <= self.first_byte:
            return 0.0
        return self.received / (now - self.first_byte)


@dataclass(frozen=True)
class SwarmProgress:
    """A snapshot for progress displays: bytes of this run, and each holder's state."""

    done: int  # bytes verified and written in this run
    total: int  # bytes this run has to fetch (resumed ones excluded)
    received: int  # bytes received in this run, wasted ones included
    holders: tuple  # (peer_id, state, verified bytes) per holder


@dataclass
class SwarmStats:
    """What a run did, for the result object."""

    fetched: int = 0
    holders: dict = field(default_factory=dict)  # peer_id -> {state, received, verified, reason}
    banned: dict = field(default_factory=dict)  # peer_id -> reason
    stalled: int = 0
    busy: int = 0
    failed_verification: int = 0
    sources: list = field(default_factory=list)
    failed: list = field(default_factory=list)
