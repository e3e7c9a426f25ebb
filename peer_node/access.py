"""A client command's access to the network: its client session and the tickets it shows peers.

A client command (`p2p get`, `p2p put`, `p2p ticket`) logs in without a grpc_address: a
client session, which may ask for tickets and report but never makes the peer_id look live
(DESIGN.md, "Client sessions and identities"). Without an identity it asks anonymously,
which an open network's directory (--open-downloads) grants for downloads.
"""
import logging
import threading
import time

from peer_node.errors import P2PError, Unauthorized
from protos import tickets

log = logging.getLogger(__name__)

NEEDS_IDENTITY = ("give --peer-id and --secret (or P2P_PEER_ID and P2P_SECRET, or --config with a peer_id "
                  "and secret): the command logs in as a client, which never makes that peer look live")

#: a ticket is asked again when it has less than this many seconds left
RENEW_MARGIN_S = 60


def client_login(directory, peer_id, secret):
    """Open a client session on directory as peer_id when both are given; the login answer, or None."""
    if not (peer_id and secret):
        log.debug("no peer_id and secret: asking the directory anonymously")
        return None
    answer = directory.login(peer_id, secret)  # no grpc_address: a client session
    log.debug("client session as %s at %s", peer_id, directory.url)
    return answer


class TicketBook:
    """A current ticket for one file from the directory; call it for the ticket, renewed before it expires.

    A swarm download's workers call it from several threads, each time they open a call.
    """

    def __init__(self, directory, sha256, purpose=tickets.DOWNLOAD, holder=None, size=None,
                 clock=time.time, margin_s=RENEW_MARGIN_S):
        self.directory, self.sha256, self.purpose = directory, sha256, purpose
        self.holder, self.size = holder, size
        self._clock, self.margin_s = clock, margin_s
        self._lock = threading.Lock()
        self._ticket, self._expires_at = None, 0.0

    def __call__(self):
        """The ticket, asking the directory for one when there is none or it is about to expire."""
        with self._lock:
            now = self._clock()
            if self._ticket is None or now >= self._expires_at - self.margin_s:
                try:
                    ticket, expires_at = self.directory.ticket(self.sha256, self.purpose, self.holder, self.size)
                except Unauthorized as exc:
                    if self.directory.token:
                        raise
                    raise P2PError(f"the directory gives {self.purpose} tickets only to logged-in peers "
                                   f"({exc.detail or exc.title}): {NEEDS_IDENTITY}") from None
                # a short-lived ticket (under twice the margin) is used for half its life
                life = (expires_at or now + tickets.DEFAULT_TTL_S) - now
                self._ticket = ticket
                self._expires_at = now + life if life > 2 * self.margin_s else now + life / 2 + self.margin_s
            return self._ticket
