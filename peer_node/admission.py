"""Who may move bytes through this peer: the directory's keys and the ticket check (no grpc here).

A peer serves a Download or accepts an Upload only for the holder of a ticket the directory
signed (DESIGN.md, "Transfer tickets"; the format is protos/tickets.py). The check is offline:
the directory's public key is learnt from the login answer (`directory_key`) and, when a ticket
names a key id this peer does not know (the directory's key changed), refreshed from
GET /api/v1/keys, at most once per `refresh_every` seconds, so a stranger sending tickets with
made-up key ids cannot make the peer call the directory per transfer.

The servicer calls Admission.admit() before anything else of a transfer (before a transfer
slot is taken, before an Upload's header is awaited) and Admission.match() once it knows the
file: a ticket for another file or another size is refused there.
"""
import logging
import threading
import time

from peer_node.errors import TicketRefused, TicketRequired
from protos import tickets

log = logging.getLogger(__name__)

#: at most this many directory keys are kept (a rotation keeps the old key for a while)
MAX_KEYS = 8
#: seconds between two fetches of GET /keys caused by unknown key ids
REFRESH_EVERY_S = 30.0

MISSING = ("this peer serves files only with a ticket: ask the directory (POST /api/v1/tickets, "
           "or `p2p ticket SHA256`) and send it as gRPC metadata \"authorization: Bearer <ticket>\"")


class Keyring:
    """The directory's public keys by key id; learn() adds, refresh() asks the directory again.

    fetch() returns the directory's key list ([{kid, alg, public_key}], GET /keys); it is
    called at most once per refresh_every seconds, by one thread at a time.
    """

    def __init__(self, fetch=None, refresh_every=REFRESH_EVERY_S, max_keys=MAX_KEYS, clock=time.monotonic):
        self._fetch = fetch
        self.refresh_every = refresh_every
        self.max_keys = max_keys
        self._clock = clock
        self._keys = {}                      # kid -> Ed25519PublicKey, oldest first
        self._lock = threading.Lock()
        self._fetching = threading.Lock()
        self._last_fetch = None

    def keys(self):
        """A snapshot {kid: public key} for protos.tickets.verify."""
        with self._lock:
            return dict(self._keys)

    def learn(self, key):
        """Add one key dict ({kid, alg, public_key}); False (and a warning) when it is not a usable key."""
        try:
            if key.get("alg", "Ed25519") != "Ed25519":
                raise ValueError(f"algorithm {key.get('alg')!r} is not Ed25519")
            public = tickets.decode_public_key(key["public_key"])
            kid = key.get("kid") or tickets.key_id(public)
            if kid != tickets.key_id(public):
                raise ValueError(f"key id {kid!r} does not name this key")
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            log.warning("ignoring a directory key that is not usable: %s", exc)
            return False
        with self._lock:
            self._keys.pop(kid, None)
            self._keys[kid] = public
            while len(self._keys) > self.max_keys:
                self._keys.pop(next(iter(self._keys)))
        return True

    def refresh(self):
        """Ask the directory for its keys unless that was done recently; True when new keys came."""
        if self._fetch is None:
            return False
        if not self._fetching.acquire(blocking=False):
            return False  # another thread is asking right now: its answer comes for everyone
        try:
            now = self._clock()
            if self._last_fetch is not None and now - self._last_fetch < self.refresh_every:
                return False
            self._last_fetch = now
            before = set(self.keys())
            try:
                found = self._fetch() or []
            except Exception as exc:  # the directory may be down: the known keys stay
                log.warning("could not refresh the directory's keys: %s", exc)
                return False
            for key in found:
                self.learn(key)
            return bool(set(self.keys()) - before)
        finally:
            self._fetching.release()


class Admission:
    """Checks the ticket of each Download and Upload for the peer named me."""

    def __init__(self, me, keyring, clock=time.time, leeway_s=tickets.DEFAULT_LEEWAY_S):
        self.me = me
        self.keyring = keyring
        self._clock = clock
        self.leeway_s = leeway_s

    def admit(self, authorization, purpose):
        """The Claims of the ticket in an authorization metadata value, valid for purpose and this peer.

        Checks signature, expiry, purpose and target; the file and size are checked by match().
        TicketRequired when there is none, TicketRefused saying why when it is not good.
        """
        ticket = tickets.from_bearer(authorization)
        if ticket is None:
            raise TicketRequired(MISSING)
        if len(ticket) > tickets.MAX_TICKET_CHARS:
            raise TicketRefused("not a ticket: too long")
        kid = tickets.peek(ticket).get("kid")
        if isinstance(kid, str) and kid not in self.keyring.keys():
            self.keyring.refresh()
        # the file is matched later (a Download may name it by name, an Upload's header comes later)
        try:
            return tickets.verify(ticket, self.keyring.keys(), self._clock(), purpose=purpose, sha256=None,
                                  me=self.me, leeway_s=self.leeway_s)
        except tickets.TicketError as exc:
            raise TicketRefused(str(exc)) from None

    def match(self, claims, sha256, size=None):
        """Refuse (TicketRefused) a ticket for another file, or an upload ticket for another size."""
        try:
            if claims.sha != sha256:
                raise tickets.WrongTicket("sha", sha256, claims.sha)
            if size is not None and claims.size is not None and claims.size != size:
                raise tickets.WrongTicket("size", size, claims.size)
        except tickets.WrongTicket as exc:
            raise TicketRefused(str(exc)) from None
        return claims
