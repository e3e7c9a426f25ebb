"""Issue 12 against real directory processes: the login limiter across processes, HTTPS under gunicorn."""
import pytest
import requests

pytestmark = pytest.mark.integration


def test_brute_force_gets_429_across_processes_and_workers(tmp_path, directory_factory):
    """Two directories of two gunicorn workers each on one database: five wrong secrets in all, then 429."""
    db = f"sqlite:///{tmp_path}/shared.db"
    urls = [directory_factory(database=db, workers=2).url + "/api/v1" for _ in range(2)]
    good = {"peer_id": "victim", "secret": "right", "grpc_address": "127.0.0.1:50051"}
    assert requests.post(f"{urls[0]}/login", json=good, timeout=10).status_code == 200
    codes = []
    for attempt in range(8):  # a fresh connection each: any worker of either process may answer
        r = requests.post(f"{urls[attempt % 2]}/login", json={**good, "secret": f"guess-{attempt}"}, timeout=10)
        codes.append(r.status_code)
    assert codes == [401] * 5 + [429] * 3
    refused = requests.post(f"{urls[1]}/login", json=good, timeout=10)
    assert refused.status_code == 429 and refused.headers["Content-Type"].startswith("application/problem+json")
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
