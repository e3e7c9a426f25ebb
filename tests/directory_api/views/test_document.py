"""The OpenAPI document generated from directory_api/schemas/, and the Swagger UI page over it."""
import re

import pytest

HTTP_ASSET = re.compile(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", re.I)


@pytest.fixture
def doc(client):
    r = client.get("/api/v1/openapi.json")
    assert r.status_code == 200 and r.mimetype == "application/json"
    return r.get_json()


def _refs(node, found):
    if isinstance(node, dict):
        for key, value in node.items():
            _refs(value, found) if key != "$ref" else found.add(value)
    elif isinstance(node, list):
        for value in node:
            _refs(value, found)
    return found


def test_document_is_generated_with_every_operation(doc):
    assert doc["openapi"].startswith("3.1") and doc["servers"] == [{"url": "/api/v1"}]
    operations = {op["operationId"] for item in doc["paths"].values() for op in item.values()}
    assert operations == {"login", "logout", "heartbeat", "listPeers", "browsePeer", "replaceIndex", "addFiles",
                          "deleteFile", "reportUnreachable", "searchFiles", "fileDetail", "replicationSummary",
                          "health", "openapi", "keys", "issueTicket",
                          "reportCorrupt", "reportVerified", "answerAudit"}
    for ref in _refs(doc, set()):
        assert ref.split("/")[-1] in doc["components"]["schemas"], ref


def test_every_error_is_a_declared_problem(doc):
    for path, item in doc["paths"].items():
        for method, op in item.items():
            codes = {int(c) for c in op["responses"]}
            assert {400, 404, 500, 503} <= codes, (method, path)
            if op.get("security"):
                assert 401 in codes, (method, path)
            if "requestBody" in op:
                assert 413 in codes, (method, path)
            for code, answer in op["responses"].items():
                if int(code) >= 400:
                    assert list(answer["content"]) == ["application/problem+json"], (method, path, code)
    assert {"type", "title", "status", "detail"} <= set(doc["components"]["schemas"]["Problem"]["required"])


def test_field_rules_come_from_the_contract_rules(doc):
    from protos.rules import MIN_PIECE_SIZE, NAME_RULE, PEER_ID_PATTERN, SHA256_PATTERN

    entry = doc["components"]["schemas"]["FileEntry"]
    assert entry["properties"]["name"]["description"] == NAME_RULE
    assert entry["properties"]["sha256"]["pattern"] == SHA256_PATTERN
    assert {"type": "integer", "minimum": 0, "maximum": 2**63 - 1, "format": "int64"}.items() <= entry["properties"]["size"].items()
    assert entry["anyOf"][1]["required"] == ["piece_size", "pieces"]
    assert {"type": "integer", "minimum": MIN_PIECE_SIZE}.items() <= entry["properties"]["piece_size"]["anyOf"][0].items()
    assert doc["components"]["schemas"]["LoginRequest"]["properties"]["peer_id"]["pattern"] == PEER_ID_PATTERN


def test_login_links_its_token_to_the_calls_that_need_it(doc):
    links = doc["paths"]["/login"]["post"]["responses"]["200"]["links"]
    assert links["heartbeat"]["parameters"]["header.Authorization"] == "Bearer {$response.body#/token}"
    assert links["replaceIndex"]["parameters"]["path.peer_id"] == "$response.body#/peer_id"
    assert doc["paths"]["/files"]["get"]["responses"]["200"]["links"]["fileDetail"]["operationId"] == "fileDetail"


def test_heartbeat_body_is_optional(doc):
    assert doc["paths"]["/heartbeat"]["post"]["requestBody"]["required"] is False
    assert doc["paths"]["/login"]["post"]["requestBody"]["required"] is True


def test_docs_page_serves_swagger_ui_with_local_assets_only(client):
    r = client.get("/api/v1/docs")
    assert r.status_code == 200 and r.mimetype == "text/html"
    html = r.get_data(as_text=True)
    assert "SwaggerUIBundle" in html and "openapi.json" in html
    assert not HTTP_ASSET.search(html), "the docs page must load nothing from another host"
    assert '"validatorUrl": null' in html  # Swagger UI's online validator would call out
    assets = re.findall(r"""(?:src|href)="([^"]+)\"""", html)
    assert any(a.endswith("swagger-ui-bundle.js") for a in assets)
    for asset in assets:
        got = client.get(f"/api/v1/{asset}")
        assert got.status_code == 200 and len(got.data) > 1000, asset
