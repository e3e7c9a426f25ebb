"""The OpenAPI document must describe every route the app serves under /api/v1."""
import re

from directory_api import API_PREFIX
from directory_api.openapi import build_document


def _spec_path(rule: str) -> str:
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule[len(API_PREFIX):])


def test_every_route_is_documented(app, client):
    spec = client.get("/api/v1/openapi.json").get_json()
    missing = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith(API_PREFIX):
            continue
        path = _spec_path(rule.rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            if method.lower() not in spec["paths"].get(path, {}):
                missing.append(f"{method} {path}")
    assert missing == []


def test_documented_paths_exist(app):
    served = {_spec_path(r.rule) for r in app.url_map.iter_rules() if r.rule.startswith(API_PREFIX)}
    assert set(build_document()["paths"]) <= served


def _walk_refs(node, found):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                found.add(value)
            else:
                _walk_refs(value, found)
    elif isinstance(node, list):
        for value in node:
            _walk_refs(value, found)


def test_document_is_well_formed():
    doc = build_document()
    assert doc["openapi"].startswith("3.")
    refs = set()
    _walk_refs(doc, refs)
    for ref in refs:
        _, section, name = ref.lstrip("#/").split("/")
        assert name in doc["components"][section], ref
    for path, item in doc["paths"].items():
        params = {p["name"] for p in item.get("parameters", [])}
        assert set(re.findall(r"{(\w+)}", path)) == params, path
        for method, op in item.items():
            if method == "parameters":
                continue
            assert op["responses"], (method, path)
            codes = {int(c) for c in op["responses"]}
            assert any(200 <= c < 300 for c in codes) and {404, 405, 500} <= codes
            assert "operationId" in op
            for code, response in op["responses"].items():
                if int(code) >= 400:
                    assert response == {"$ref": "#/components/responses/Problem"}
    problem = doc["components"]["responses"]["Problem"]["content"]
    assert "application/problem+json" in problem
