"""A client command's tickets: asked once, renewed before they expire, a refusal that says what to do."""
import pytest

from peer_node.access import TicketBook, client_login
from peer_node.errors import P2PError, Unauthorized


class Clock:
    def __init__(self, now=1000.0):
        self.now = now

    def __call__(self):
        return self.now


class FakeDirectory:
    url = "http://directory"

    def __init__(self, ttl=300, token=None, refuse=False):
        self.ttl, self.token, self.refuse = ttl, token, refuse
        self.asked, self.logins = [], []
        self.clock = None

    def ticket(self, sha256, purpose, holder, size):
        self.asked.append((sha256, purpose, holder, size))
        if self.refuse:
            raise Unauthorized(self.url, 401, "Unauthorized", "log in first")
        return f"ticket-{len(self.asked)}", int(self.clock()) + self.ttl

    def login(self, peer_id, secret):
        self.logins.append((peer_id, secret))
        self.token = "t"
        return {"token": "t"}


def test_a_ticket_is_kept_until_a_minute_before_it_expires():
    clock = Clock()
    d = FakeDirectory()
    d.clock = clock
    book = TicketBook(d, "a" * 64, clock=clock)
    assert book() == "ticket-1" and book() == "ticket-1"
    clock.now += 239
    assert book() == "ticket-1"
    clock.now += 1
    assert book() == "ticket-2"
    assert d.asked == [("a" * 64, "download", None, None)] * 2


def test_a_short_lived_ticket_is_renewed_at_half_its_life():
    clock = Clock()
    d = FakeDirectory(ttl=60)
    d.clock = clock
    book = TicketBook(d, "a" * 64, "upload", holder="b", size=5, clock=clock)
    assert book() == "ticket-1"
    clock.now += 29
    assert book() == "ticket-1"
    clock.now += 1
    assert book() == "ticket-2" and d.asked[-1] == ("a" * 64, "upload", "b", 5)


def test_an_anonymous_refusal_says_how_to_log_in():
    d = FakeDirectory(refuse=True)
    d.clock = Clock()
    with pytest.raises(P2PError, match="only to logged-in peers.*--peer-id and --secret"):
        TicketBook(d, "a" * 64)()


def test_a_refusal_of_a_session_is_the_directory_error():
    d = FakeDirectory(refuse=True, token="t")
    d.clock = Clock()
    with pytest.raises(Unauthorized):
        TicketBook(d, "a" * 64)()


@pytest.mark.parametrize("peer_id,secret,logged_in", [("a", "s", True), ("a", None, False), (None, "s", False),
                                                      (None, None, False)])
def test_client_login_only_with_both(peer_id, secret, logged_in):
    d = FakeDirectory()
    assert (client_login(d, peer_id, secret) is not None) is logged_in
    assert d.logins == ([(peer_id, secret)] if logged_in else [])
