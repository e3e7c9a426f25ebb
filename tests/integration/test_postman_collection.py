"""The Postman collection: static checks of its shape, its coverage of every route, and a newman run."""
import json
import re
import shutil
import subprocess
import sys

import pytest

from tests.procs import ROOT

COLLECTION = ROOT / "docs" / "postman" / "p2p-directory.postman_collection.json"
SCHEMA = "https://schema.getpostman.com/json/collection/v2.1.0/collection.json"

# DESIGN.md, "The REST contract", plus the replication summary the directory adds.
CONTRACT = {
    ("POST", "/login"), ("POST", "/logout"), ("POST", "/heartbeat"),
    ("PUT", "/peers/*/files"), ("POST", "/peers/*/files"), ("DELETE", "/peers/*/files/*"),
    ("GET", "/peers"), ("GET", "/peers/*/files"), ("GET", "/files"), ("GET", "/files/*"),
    ("POST", "/peers/*/unreachable"), ("GET", "/health"), ("GET", "/openapi.json"),
    ("GET", "/replication"),
}
STATUS_ASSERTION = re.compile(r"\b(ok|problem)\(\d{3}\b|to\.have\.status\(\d{3}\)")


@pytest.fixture(scope="module")
def collection():
    """The committed collection, parsed."""
    return json.loads(COLLECTION.read_text())


def requests_of(node):
    """Every request item of a collection or folder, in run order."""
    for item in node.get("item", []):
        if "request" in item:
            yield item
        else:
            yield from requests_of(item)


def route_of(item):
    """(METHOD, /path/with/*/for/variables) of one request, relative to {{baseUrl}}."""
    path = item["request"]["url"]["path"]
    return item["request"]["method"], "/" + "/".join("*" if re.fullmatch(r"\{\{\w+\}\}", p) or "{{" in p else p
                                                      for p in path)


def script_of(item):
    """The test script of one request as one string ('' when it has none)."""
    return "\n".join("\n".join(e["script"]["exec"]) for e in item.get("event", []) if e["listen"] == "test")


def test_collection_is_v2_1_with_a_base_url_variable(collection):
    """The file is a v2.1 collection whose every URL hangs off the baseUrl collection variable."""
    assert collection["info"]["schema"] == SCHEMA
    variables = {v["key"]: v["value"] for v in collection["variable"]}
    assert variables["baseUrl"].startswith("http://127.0.0.1:")
    for item in requests_of(collection):
        assert item["request"]["url"]["raw"].startswith("{{baseUrl}}/"), item["name"]
        assert item["request"]["url"]["host"] == ["{{baseUrl}}"], item["name"]


def test_collection_file_is_what_the_generator_builds():
    """The committed JSON is exactly what scripts/postman_collection.py writes (no hand edits drift)."""
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "postman_collection.py"), "--check"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_contract_route_has_a_request_with_assertions(collection):
    """Each route of DESIGN.md's REST contract has at least one request with pm.test status checks."""
    covered = {}
    for item in requests_of(collection):
        covered.setdefault(route_of(item), []).append(item)
    missing = sorted(CONTRACT - set(covered))
    assert not missing, f"routes without a request in the collection: {missing}"
    for route in CONTRACT:
        assert any("pm.test" in script_of(i) and STATUS_ASSERTION.search(script_of(i)) for i in covered[route]), \
            f"{route}: no request asserts a status code"


def test_every_request_asserts_its_status_and_body(collection):
    """No request runs without a pm.test on its status; all but 204 answers also check the body."""
    for item in requests_of(collection):
        script = script_of(item)
        assert "pm.test" in script or "ok(" in script or "problem(" in script, item["name"]
        found = STATUS_ASSERTION.search(script)
        assert found, f"{item['name']}: no status assertion"
        if "204" not in found.group(0):
            assert "pm.response.json()" in script or "problem(" in script or "ok(" in script, item["name"]


def test_helpers_assert_problem_json_and_json_bodies(collection):
    """The shared helpers check application/problem+json with type/title/status/detail, and JSON content."""
    script = script_of(next(requests_of(collection)))
    assert "application/problem+json" in script
    assert "'type', 'title', 'status', 'detail'" in script
    assert "application\\/json" in script


def test_token_is_captured_from_login_and_sent_as_bearer(collection):
    """Login stores the token in a collection variable; the collection's Bearer auth sends it."""
    assert collection["auth"]["type"] == "bearer"
    assert collection["auth"]["bearer"][0]["value"] == "{{tokenA}}"
    logins = [i for i in requests_of(collection) if route_of(i) == ("POST", "/login")]
    assert any("pm.collectionVariables.set('tokenA', b.token)" in script_of(i) for i in logins)
    for item in logins:
        assert item["request"]["auth"] == {"type": "noauth"}, item["name"]
    authed = [i for i in requests_of(collection) if "auth" not in i["request"]]
    assert {route_of(i) for i in authed} >= {("POST", "/heartbeat"), ("PUT", "/peers/*/files"),
                                             ("DELETE", "/peers/*/files/*"), ("POST", "/logout"),
                                             ("POST", "/peers/*/unreachable")}


@pytest.mark.parametrize("route, status", [
    (("POST", "/login"), 401),            # wrong secret
    (("PUT", "/peers/*/files"), 403),     # another peer's index
    (("DELETE", "/peers/*/files/*"), 403),
    (("POST", "/login"), 400),            # malformed JSON and validation
    (("GET", "/no-such-route"), 404),     # unknown route
    (("DELETE", "/health"), 405),         # wrong method
    (("POST", "/heartbeat"), 401),        # missing and bogus token
    (("GET", "/files/*"), 404),
])
def test_negative_cases_are_covered(collection, route, status):
    """The error cases of the contract are requested and expect problem+json with their status."""
    scripts = [script_of(i) for i in requests_of(collection) if route_of(i) == route]
    assert any(f"problem({status}" in s for s in scripts), f"{route} has no request expecting {status}"


def test_malformed_json_request_is_really_malformed(collection):
    """The malformed-JSON login sends a body that no JSON parser accepts."""
    item = next(i for i in requests_of(collection) if "malformed JSON" in i["name"])
    with pytest.raises(json.JSONDecodeError):
        json.loads(item["request"]["body"]["raw"])


def test_unreachable_report_targets_a_closed_port(collection):
    """The peer reported unreachable logged in with 127.0.0.1:1, and the report expects 202 removed."""
    items = list(requests_of(collection))
    dead_login = next(i for i in items if "closed" in i["name"])
    assert json.loads(dead_login["request"]["body"]["raw"])["grpc_address"] == "127.0.0.1:1"
    report = next(i for i in items if route_of(i) == ("POST", "/peers/*/unreachable") and "202" in script_of(i))
    assert "'removed'" in script_of(report)


def test_peer_ids_and_digests_are_fresh_on_every_run(collection):
    """The collection pre-request script draws a random run tag; bodies use it, never fixed ids."""
    prerequest = "\n".join("\n".join(e["script"]["exec"]) for e in collection["event"] if e["listen"] == "prerequest")
    assert "{{$randomUUID}}" in prerequest
    assert "pm.collectionVariables.set" in prerequest
    for item in requests_of(collection):
        body = item["request"].get("body", {}).get("raw", "")
        if '"peer_id"' in body and "{{peer" not in body:
            assert "400" in script_of(item) or "413" in script_of(item), \
                f"{item['name']}: a fixed peer_id is used only in requests that expect a rejection"


def test_every_flask_route_has_a_request(collection, tmp_path):
    """Every /api/v1 rule of the real Flask app (its url_map) has a request in the collection."""
    directory_api = pytest.importorskip("directory_api", reason="directory_api is not importable")
    if not hasattr(directory_api, "create_app"):
        pytest.skip("directory_api.create_app does not exist yet")
    app = directory_api.create_app({"database_url": f"sqlite:///{tmp_path}/routes.db", "sweep": False})
    covered = {route_of(i) for i in requests_of(collection)}
    missing = []
    for rule in app.url_map.iter_rules():
        # static files (Swagger UI's assets) are not API routes
        if not rule.rule.startswith("/api/v1/") or rule.endpoint.split(".")[-1] == "static":
            continue
        path = re.sub(r"<[^>]+>", "*", rule.rule[len("/api/v1"):])
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            if (method, path) not in covered:
                missing.append(f"{method} {rule.rule}")
    assert not missing, f"routes of the Flask app with no request in the collection: {missing}"


@pytest.mark.integration
def test_newman_runs_the_collection_green_against_a_live_directory():
    """scripts/run_postman.sh (what `make postman` runs) passes: every assertion holds on a real directory."""
    if not shutil.which("npm") and not (ROOT / "node_modules" / ".bin" / "newman").exists():
        pytest.skip("npm is not installed, so newman cannot be installed (apt-get install npm)")
    if not shutil.which("node"):
        pytest.skip("node is not installed (apt-get install nodejs)")
    done = subprocess.run(["bash", str(ROOT / "scripts" / "run_postman.sh")], cwd=ROOT, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=300)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-6000:]
    assert re.search(r"assertions\s*│\s*(\d+)\s*│\s*0\s*│", output), output[-3000:]
