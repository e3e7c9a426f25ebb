"""directory_api.store.removals: why peers left, recorded once, newest first, the newest few kept."""
import pytest

from directory_api.store import removals as removals_module
from directory_api.store.removals import LEASE_LAPSED, LOGOUT, UNREACHABLE
from tests.directory_api.store.helpers import NOW, add_peer

LEASE = 10.0


def lapses(store, now):
    """Run the sweep's recording at time now (live while last_seen >= now - LEASE)."""
    return store.record_lapsed(now - LEASE, LEASE, now - 100 * LEASE)


def test_a_removal_is_recorded_and_read_back_newest_first(store):
    store.record_removal("a", LOGOUT, NOW)
    store.record_removal("b", UNREACHABLE, NOW + 1)
    assert store.recent_removals() == [
        {"peer_id": "b", "reason": UNREACHABLE, "at": NOW + 1},
        {"peer_id": "a", "reason": LOGOUT, "at": NOW},
    ]
    assert store.recent_removals(limit=1) == [{"peer_id": "b", "reason": UNREACHABLE, "at": NOW + 1}]


def test_an_unknown_reason_is_refused(store):
    with pytest.raises(ValueError, match="unknown removal reason"):
        store.record_removal("a", "bored", NOW)


def test_a_lapsed_lease_is_recorded_once_at_the_moment_it_lapsed(store):
    add_peer(store, "quiet", last_seen=NOW)
    add_peer(store, "beating", last_seen=NOW + 20)
    assert lapses(store, NOW + LEASE) == 0  # still live: last_seen + lease >= now
    assert lapses(store, NOW + 25) == 1
    assert lapses(store, NOW + 26) == 0  # the same lapse, asked again (or by another process)
    assert store.recent_removals() == [{"peer_id": "quiet", "reason": LEASE_LAPSED, "at": NOW + LEASE}]


def test_a_peer_that_logged_out_or_was_reported_is_not_also_a_lapse(store):
    add_peer(store, "left", last_seen=NOW)
    add_peer(store, "reported", last_seen=NOW)
    with store.write() as conn:
        store.end_session("left", NOW - 50, conn=conn)
        store.record_removal("left", LOGOUT, NOW + 1, conn=conn)
    store.record_removal("reported", UNREACHABLE, NOW + 2)  # its token is still set
    assert lapses(store, NOW + 30) == 0
    assert [r["reason"] for r in store.recent_removals()] == [UNREACHABLE, LOGOUT]


def test_a_peer_that_comes_back_and_lapses_again_is_recorded_again(store):
    add_peer(store, "flaky", last_seen=NOW)
    assert lapses(store, NOW + 30) == 1
    store.start_session("flaky", "tok-2", "127.0.0.1:9999", NOW + 40)
    assert lapses(store, NOW + 45) == 0
    assert lapses(store, NOW + 60) == 1
    assert [r["at"] for r in store.recent_removals()] == [NOW + 40 + LEASE, NOW + LEASE]


def test_only_the_newest_are_kept(store, monkeypatch):
    monkeypatch.setattr(removals_module, "KEEP", 3)
    for i in range(5):
        store.record_removal(f"p{i}", LOGOUT, NOW + i)
    assert [r["peer_id"] for r in store.recent_removals()] == ["p4", "p3", "p2"]
