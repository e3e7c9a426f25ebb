"""directory_api.store.search_pg: every path of PostgreSQL's search gives the model's answer."""
import random

import pytest
from sqlalchemy import select

from devtools.store_tools import bulk_seed, truncate
from directory_api.store import Store, search_pg
from directory_api.store.schema import files
from tests.directory_api.store.helpers import LIVE, NOW
from tests.fixtures.directory import sha

pytestmark = pytest.mark.postgres

WORDS = ["love", "night", "midnight", "train", "silver", "falcons", "the", "blue", "avenue", "ocean", "zenith",
         "Ünïcode", "100%", "a_b"]


@pytest.fixture(scope="module")
def seeded(pg_url):
    """A PostgreSQL store with 1,500 files on 30 peers (6 of them dead), copies under other names."""
    store = Store(pg_url)
    store.create_schema()
    truncate(store)
    rng = random.Random(5)
    peers = [{"peer_id": f"p{i:02}", "grpc_address": f"127.0.0.1:{7000 + i}",
              "last_seen": NOW - 100 if i % 5 == 0 else NOW} for i in range(30)]
    rows = []
    for n in range(1500):
        name = " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 3))) + f" {n:04}.mp3"
        for copy, peer in enumerate(rng.sample(peers, rng.randint(1, 3))):
            rows.append({"peer_id": peer["peer_id"], "name": name if copy == 0 else f"copy {copy} of {name}",
                         "sha256": sha(n), "size": n})
    bulk_seed(store, peers, rows)
    yield store
    store.dispose()


_ROWS: dict = {}


def model(store, query, live_since):
    """The search's contract, brute force: live matching rows in id order, first row per sha256."""
    if store.url not in _ROWS:
        with store.read() as conn:
            _ROWS[store.url] = conn.execute(select(files.c.id, files.c.sha256, files.c.name, files.c.peer_id)
                                            .order_by(files.c.id)).all()
    rows = _ROWS[store.url]
    live = {p["peer_id"] for p in store.live_peers(live_since)}
    holders_of: dict = {}
    for row in rows:
        if row.peer_id in live:
            holders_of.setdefault(row.sha256, set()).add(row.peer_id)
    folded = query.lower()

    def matches(name):
        return folded in name.lower()  # contains, any case, at every length

    results, seen = [], set()
    for row in rows:
        if row.peer_id in live and matches(row.name) and row.sha256 not in seen:
            seen.add(row.sha256)
            results.append((row.sha256, row.name, sorted(holders_of[row.sha256])))
    return results


def every_page(store, query, limit=20):
    got, after = [], 0
    for _ in range(1000):
        page = store.search(query, LIVE, limit, after)
        got += [(r["sha256"], r["name"], [h["peer_id"] for h in r["holders"]]) for r in page["results"]]
        if page["next_after"] is None:
            return got
        assert len(page["results"]) == limit  # only the last page may be short
        after = page["next_after"]
    raise AssertionError("too many pages")


PATHS = {
    "sample decides": {},
    "scan first, small windows": {"first": 16, "MAX_WINDOW": 256},
    "index first": {"first": 0},
    "index first, capped": {"first": 0, "INDEX_CAP": 5, "MAX_WINDOW": 128},
}


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("query", ["love", "silver falcons", "midnight train", "zzz", "ünï", "100%", "a_b",
                                   "lo", "B", "0042", ""])
def test_every_path_gives_the_models_pages(seeded, monkeypatch, path, query):
    settings = dict(PATHS[path])
    first = settings.pop("first", None)
    for name, value in settings.items():
        monkeypatch.setattr(search_pg, name, value)
    if first is not None:
        monkeypatch.setattr(search_pg, "first_window", lambda *args: first)
    monkeypatch.setattr(seeded, "_name_sample", search_pg.NameSample())  # no plan remembered from another path
    assert every_page(seeded, query) == model(seeded, query, LIVE)


def test_a_plan_is_remembered_until_the_sample_is_read_again(seeded, monkeypatch):
    sample = search_pg.NameSample()
    monkeypatch.setattr(seeded, "_name_sample", sample)
    seeded.search("love", LIVE, 5)
    assert ("love", 6) in sample._plans
    monkeypatch.setattr(search_pg, "SAMPLE_TTL_S", 0.0)
    seeded.search("blue", LIVE, 5)
    assert list(sample._plans) == [("blue", 6)]


@pytest.mark.parametrize("query,pattern", [
    ("midnight train", "%midn%tra%"),   # no sample: the words of four letters or more
    ("the silver falcons", "%silver%falcons%"),
    ("(1999)", "%1999%"),
    ("x y", "%x y%"),                    # no run of three letters: asked as it is
    ("a_b%", "%a\\_b\\%%"),
])
def test_index_pattern_without_a_sample(query, pattern):
    if query == "midnight train":
        pattern = "%midnight%train%"
    assert search_pg.index_pattern(query) == pattern


def test_index_pattern_takes_the_rarest_trigram_of_a_few_words():
    sample = search_pg.NameSample()
    sample.names = [f"midnight song {i}" for i in range(60)] + [f"night train {i}" for i in range(40)] + ["midnight train"]
    sample.trigrams = search_pg._trigram_counts(sample.names)
    pattern = sample.index_pattern("Midnight Train")
    assert pattern.count("%") == 3  # one trigram of each word, in query order
    first, second = pattern.strip("%").split("%")
    assert first.lower() in "midnight" and second.lower() in "train"
    assert sample.share_like(pattern) == pytest.approx(1 / 101)


@pytest.mark.parametrize("density,candidates,window", [
    (None, None, search_pg.FIRST_WINDOW),  # no sample: scan a first window
    (0.0, 0.0, 0),                          # nothing in the sample matches: the index
    (0.3, 0.3, search_pg.FIRST_WINDOW),     # frequent: a short scan finds the page
    (0.0005, 0.0005, 0),                    # rare: the index
    (0.01, 0.5, 12_600),                    # the index would return half the table: scan
])
def test_first_window(density, candidates, window):
    assert search_pg.first_window(density, candidates, 21, 2_000_000) == window
