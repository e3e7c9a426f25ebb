"""The dashboard blueprint: the page at /, its overview fragment, its search, and what it records."""
import re
import zlib

import pytest

from directory_api.views import dashboard
from tests.fixtures.directory import entry

LOGIN = {"secret": "s3cret"}


def address(peer_id):
    """A port of its own for each peer_id: another live peer's address is refused (409)."""
    return f"127.0.0.1:{50000 + zlib.crc32(peer_id.encode()) % 10000}"


@pytest.fixture(autouse=True)
def fresh_overview(monkeypatch):
    """Read the overview on every request (the page caches it for CACHE_S in production)."""
    monkeypatch.setattr(dashboard, "CACHE_S", 0.0)


def html(client, url):
    answer = client.get(url)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert answer.mimetype == "text/html"
    return answer


def test_the_page_shows_live_peers_and_files_against_the_target(make_app):
    app = make_app(replication=2)
    client = app.test_client()
    for peer_id, files in (("alice", [entry("both.txt"), entry("lonely.txt")]), ("bob", [entry("both.txt")])):
        assert client.post("/api/v1/login", json={"peer_id": peer_id, **LOGIN, "grpc_address": address(peer_id),
                                                    "files": files}).status_code == 200
    app.extensions["p2p"].store.set_proof("bob", entry("both.txt")["sha256"], 1, 0.0)  # a real second copy
    page = html(client, "/").get_data(as_text=True)
    assert sorted(re.findall(r'data-peer-id="([^"]+)"', page)) == ["alice", "bob"]
    assert 'id="count-peers">2<' in page and 'id="count-files">2<' in page and 'id="count-below">1<' in page
    below = re.findall(r'<tr class="file below" data-sha256="([0-9a-f]+)"', page)
    assert below == [entry("lonely.txt")["sha256"]]
    assert "1 / 2" in page and "2 / 2" in page


def test_the_page_uses_no_external_asset_and_says_so(client):
    answer = html(client, "/")
    page = answer.get_data(as_text=True)
    assert "default-src 'self'" in answer.headers["Content-Security-Policy"]
    sources = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert sources and all(s.startswith("/") for s in sources), sources
    assert "<script>" not in page and "style=" not in page  # nothing inline for the CSP to block
    for asset in ("/static/dashboard.js", "/static/dashboard.css"):
        assert client.get(asset).status_code == 200


def test_names_are_escaped(client, peer_client):
    peer_client("mallory", files=[entry('<img src=x onerror="alert(1)">.txt')])
    page = html(client, "/").get_data(as_text=True)
    assert "<img src=x" not in page and "&lt;img src=x onerror=" in page
    found = html(client, "/dashboard/search?q=onerror").get_data(as_text=True)
    assert "<img src=x" not in found and "&lt;img" in found


def test_the_overview_fragment_is_what_the_page_polls(client, peer_client):
    fragment = html(client, "/dashboard/overview").get_data(as_text=True)
    assert "No peer is live." in fragment and "<html" not in fragment
    peer_client("carol", files=[entry("c.txt")])
    assert 'data-peer-id="carol"' in html(client, "/dashboard/overview").get_data(as_text=True)


def test_search_fragment_and_search_without_script(client, peer_client):
    peer_client("dave", files=[entry("holiday photos.zip"), entry("tax return.pdf")])
    fragment = html(client, "/dashboard/search?q=HOLIDAY").get_data(as_text=True)
    assert fragment.count('class="result"') == 1 and "holiday photos.zip" in fragment and "dave" in fragment
    assert "No live file matches" in html(client, "/dashboard/search?q=nothing-like-it").get_data(as_text=True)
    page = html(client, "/?q=tax").get_data(as_text=True)
    assert page.count('class="result"') == 1 and 'value="tax"' in page


@pytest.mark.parametrize("query, shown", [("x" * 1025, "at most 1024 characters"), ("a\x00b", "without NUL")])
def test_a_bad_query_is_a_message_in_the_page(client, query, shown):
    fragment = html(client, f"/dashboard/search?q={query}").get_data(as_text=True)
    assert 'role="alert"' in fragment and shown in fragment


def test_removals_show_logout_unreachable_report_and_lapsed_lease(make_app, clock, peer_client, closed_port):
    app = make_app(clock=clock, lease_s=10)
    client = app.test_client()

    def login(peer_id, at=None):
        answer = client.post("/api/v1/login", json={"peer_id": peer_id, "secret": "s",
                                                    "grpc_address": at or address(peer_id)})
        return {"Authorization": f"Bearer {answer.get_json()['token']}"}

    leaving, reporter = login("leaving"), login("reporter")
    login("gone", f"127.0.0.1:{closed_port}")
    login("quiet")
    assert client.post("/api/v1/logout", headers=leaving).status_code == 204
    clock.advance(1)
    assert client.post("/api/v1/peers/gone/unreachable", headers=reporter).get_json() == {"status": "removed"}
    clock.advance(11)  # quiet's and reporter's leases lapse
    ctx = app.extensions["p2p"]
    ctx.liveness.sweep(ctx.store)
    rows = ctx.store.recent_removals()
    assert sorted((r["peer_id"], r["reason"]) for r in rows) == [
        ("gone", "unreachable report"), ("leaving", "logout"), ("quiet", "lease lapsed"),
        ("reporter", "lease lapsed")]
    page = html(client, "/").get_data(as_text=True)
    assert page.count('class="removal"') == 4 and "unreachable report" in page and "lease lapsed" in page


def test_directory_processes_show_with_their_clock_skew(app, client, monkeypatch):
    monkeypatch.setattr(dashboard, "CACHE_S", 0.0)
    assert 'class="process"' not in html(client, "/").get_data(as_text=True)  # this app never started its clock
    store = app.extensions["p2p"].store
    db_now = store.database_time()
    store.register_process("host-1", 4242, db_now, db_now + 0.004, db_now)
    store.register_process("host-2", 77, db_now, db_now - 3.5, db_now)
    page = html(client, "/").get_data(as_text=True)
    assert page.count('class="process') == 2 and 'class="process skewed"' in page and "host-1" in page and "+0.004 s" in page
    assert "-3.500 s" in page and "off by more than a second" in page


def test_the_overview_is_read_once_per_cache_interval(client, peer_client, monkeypatch):
    monkeypatch.setattr(dashboard, "CACHE_S", 60.0)
    assert "No peer is live." in html(client, "/dashboard/overview").get_data(as_text=True)
    peer_client("erin", files=[entry("e.txt")])
    assert "No peer is live." in html(client, "/dashboard/overview").get_data(as_text=True)  # cached
    monkeypatch.setattr(dashboard, "CACHE_S", 0.0)
    assert 'data-peer-id="erin"' in html(client, "/dashboard/overview").get_data(as_text=True)
