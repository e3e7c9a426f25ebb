"""directory_api.store.logins: failed logins counted in the database, exactly, across connections."""
from concurrent.futures import ThreadPoolExecutor

from tests.directory_api.store.helpers import NOW

LIMITS = {"peer:a": 3, "addr:1.2.3.4": 10}


def test_an_attempt_counts_until_it_is_struck_off(store):
    found, ids = store.begin_login(LIMITS, NOW - 60, NOW)
    assert found == {"peer:a": [], "addr:1.2.3.4": []} and len(ids) == 2
    assert store.login_failures(list(LIMITS), NOW - 60)["peer:a"] == [NOW]
    store.end_login(ids, clear_key="peer:a")
    assert store.login_failures(list(LIMITS), NOW - 60) == {"peer:a": [], "addr:1.2.3.4": []}


def test_at_the_limit_nothing_more_is_recorded(store):
    for i in range(3):
        assert store.begin_login(LIMITS, NOW - 60, NOW + i)[1] is not None
    found, ids = store.begin_login(LIMITS, NOW - 60, NOW + 3)
    assert ids is None and found["peer:a"] == [NOW, NOW + 1, NOW + 2] and len(found["addr:1.2.3.4"]) == 3
    assert store.begin_login(LIMITS, NOW + 0.5, NOW + 3)[1] is not None  # the oldest left the window
    assert store.drop_old_login_failures(NOW + 1.5) == 4  # 2 rows an attempt, the first two attempts


def test_concurrent_attempts_never_pass_the_limit_together(store):
    def attempt(_):
        return store.begin_login({"peer:a": 3}, NOW - 60, NOW)[1] is not None

    with ThreadPoolExecutor(8) as pool:
        assert sum(pool.map(attempt, range(24))) == 3
