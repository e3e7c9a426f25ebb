"""directory_api.metrics and GET /metrics: Prometheus text, requests by URL rule, the store's figures."""
import pytest
from prometheus_client.parser import text_string_to_metric_families

from directory_api import metrics
from tests.fixtures.directory import entry


def scrape(client):
    """{(sample name, frozen labels): value} from GET /metrics, which must parse."""
    answer = client.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("text/plain; version=")
    samples = {}
    for family in text_string_to_metric_families(answer.get_data(as_text=True)):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def requests_of(samples, route, method="GET", status="200"):
    key = ("p2p_directory_requests_total", (("method", method), ("route", route), ("status", status)))
    return samples.get(key, 0.0)


def test_requests_are_counted_by_url_rule_not_by_raw_path(client, peer_client):
    a = peer_client("a", files=[entry("x.txt")])
    before = scrape(client)
    client.get(f"/api/v1/files/{entry('x.txt')['sha256']}")
    client.get(f"/api/v1/files/{entry('y.txt')['sha256']}")  # 404
    client.get("/api/v1/peers/a/files")
    client.get("/no/such/page")
    after = scrape(client)
    rule = "/api/v1/files/<sha256>"
    assert requests_of(after, rule) - requests_of(before, rule) == 1
    assert requests_of(after, rule, status="404") - requests_of(before, rule, status="404") == 1
    assert requests_of(after, "/api/v1/peers/<peer_id>/files") - requests_of(before, "/api/v1/peers/<peer_id>/files") == 1
    assert requests_of(after, metrics.UNMATCHED, status="404") - requests_of(before, metrics.UNMATCHED, status="404") == 1
    assert not any(dict(labels).get("route", "").startswith("/api/v1/files/0") for _, labels in after)
    assert a.token  # the login itself was counted too
    assert requests_of(after, "/api/v1/login", "POST") >= 1


def test_a_made_up_method_is_counted_as_other(client):
    before = scrape(client)
    for method in ("BREW", "WHEN", "XYZZY"):
        assert client.open("/api/v1/health", method=method).status_code == 405
    after = scrape(client)
    # A 405 matched no rule either (not for this method): its route is "unmatched".
    assert requests_of(after, metrics.UNMATCHED, "other", "405") - requests_of(before, metrics.UNMATCHED, "other", "405") == 3
    assert not any(dict(labels).get("method") == "BREW" for _, labels in after)


def test_latency_histogram_counts_each_request(client):
    key = ("p2p_directory_request_seconds_count", (("method", "GET"), ("route", "/api/v1/health")))
    before = scrape(client).get(key, 0.0)
    for _ in range(3):
        client.get("/api/v1/health")
    after = scrape(client)
    assert after[key] - before == 3
    inf = ("p2p_directory_request_seconds_bucket", (("le", "+Inf"), ("method", "GET"), ("route", "/api/v1/health")))
    assert after[inf] == after[key]


def test_refused_logins_are_counted_by_status(client):
    key = ("p2p_directory_logins_refused_total", (("status", "401"),))
    before = scrape(client).get(key, 0.0)
    good = {"peer_id": "m", "secret": "right", "grpc_address": "127.0.0.1:1"}
    assert client.post("/api/v1/login", json=good).status_code == 200
    assert client.post("/api/v1/login", json={**good, "secret": "wrong"}).status_code == 401
    assert client.post("/api/v1/login", json={**good, "peer_id": "bad id"}).status_code == 400  # not a refusal
    assert scrape(client)[key] - before == 1


def test_audits_are_defined_for_whoever_audits(client):
    key = ("p2p_directory_audits_total", (("outcome", "failed"),))
    before = scrape(client).get(key, 0.0)
    metrics.count_audit("failed")
    assert scrape(client)[key] - before == 1


def test_the_store_figures_are_read_at_scrape_time(make_app, clock):
    app = make_app(clock=clock, replication=2)
    client = app.test_client()
    for peer_id, files in (("a", [entry("both.txt"), entry("alone.txt")]), ("b", [entry("both.txt")])):
        assert client.post("/api/v1/login", json={"peer_id": peer_id, "secret": "s", "files": files,
                                                  "grpc_address": f"127.0.0.1:{ord(peer_id[0])}"}).status_code == 200
    app.extensions["p2p"].store.set_proof("b", entry("both.txt")["sha256"], 1, 0.0)  # a real second copy
    samples = scrape(client)
    assert samples[("p2p_directory_live_peers", ())] == 2
    assert samples[("p2p_directory_files", ())] == 2
    assert samples[("p2p_directory_files_below_target", ())] == 1
    assert samples[("p2p_directory_copies_in_flight", ())] == 0
    assert samples[("p2p_directory_replication_target", ())] == 2
    assert samples[("p2p_directory_store_up", ())] == 1


def test_figures_are_cached_then_read_again():
    reads = []
    now = [0.0]
    figures = metrics.StoreFigures(lambda: reads.append(1) or {"live_peers": len(reads)}, cache_s=2.0,
                                   clock=lambda: now[0])
    assert figures.figures() == {"live_peers": 1}
    now[0] = 1.9
    assert figures.figures() == {"live_peers": 1}
    now[0] = 2.0
    assert figures.figures() == {"live_peers": 2}


def test_a_store_that_does_not_answer_still_gives_a_scrape():
    def broken():
        raise ConnectionError("database restarting")

    collected = metrics.Metrics(metrics.StoreFigures(broken))
    families = {f.name: f for f in text_string_to_metric_families(collected.render().decode())}
    assert families["p2p_directory_store_up"].samples[0].value == 0
    assert "p2p_directory_live_peers" not in families
    assert "p2p_directory_requests" in families


def test_metrics_off_means_no_endpoint(make_app):
    client = make_app(metrics=False).test_client()
    answer = client.get("/metrics")
    assert answer.status_code == 404 and answer.mimetype == "application/problem+json"
    assert client.get("/api/v1/health").status_code == 200


@pytest.mark.parametrize("env, expected", [({}, None), ({"PROMETHEUS_MULTIPROC_DIR": "/tmp/x"}, "/tmp/x"),
                                           ({"prometheus_multiproc_dir": "/tmp/y"}, "/tmp/y")])
def test_multiproc_dir_follows_prometheus_clients_own_variable(monkeypatch, env, expected):
    for name in ("PROMETHEUS_MULTIPROC_DIR", "prometheus_multiproc_dir"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert metrics.multiproc_dir() == expected
