"""The OpenAPI 3.0 document of the directory; tests check it against the app's url_map."""
from __future__ import annotations

import copy

from protos.rules import (MAX_NAME_BYTES, MIN_PIECE_SIZE, NAME_RULE, PEER_ID_PATTERN, PIECES_RULE,
                          SHA256_PATTERN)

_PROBLEM = {"$ref": "#/components/responses/Problem"}


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _body(schema: dict, required: bool = True) -> dict:
    return {"required": required, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict:
    return {str(code): _PROBLEM for code in sorted({*codes, 404, 405, 500})}


_PEER_ID = {"name": "peer_id", "in": "path", "required": True, "schema": _ref("PeerId")}
_SHA256 = {"name": "sha256", "in": "path", "required": True, "schema": _ref("Sha256")}
_AUTH = [{"bearer": []}]

_SCHEMAS = {
    "PeerId": {"type": "string", "pattern": PEER_ID_PATTERN},
    "Sha256": {"type": "string", "pattern": SHA256_PATTERN},
    "GrpcAddress": {"type": "string", "pattern": "^.+:[0-9]{1,5}$", "example": "127.0.0.1:50051"},
    "FileEntry": {
        "type": "object",
        "required": ["name", "size", "sha256"],
        "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": MAX_NAME_BYTES,
                     "description": NAME_RULE},
            "size": {"type": "integer", "format": "int64", "minimum": 0},
            "sha256": _ref("Sha256"),
            "piece_size": {"type": "integer", "format": "int64", "minimum": MIN_PIECE_SIZE},
            "pieces": {"type": "array", "items": _ref("Sha256"), "description": PIECES_RULE},
        },
    },
    "FileList": {
        "type": "object",
        "required": ["files"],
        "properties": {"files": {"type": "array", "maxItems": 100000, "items": _ref("FileEntry")}},
    },
    "LoginRequest": {
        "type": "object",
        "required": ["peer_id", "secret", "grpc_address"],
        "properties": {
            "peer_id": _ref("PeerId"),
            "secret": {"type": "string", "minLength": 1, "maxLength": 1024},
            "grpc_address": _ref("GrpcAddress"),
            "files": {"type": "array", "nullable": True, "maxItems": 100000, "items": _ref("FileEntry"),
                      "description": "the whole index to publish; absent or null keeps the previous one"},
            "accept_uploads": {"type": "boolean", "default": True},
            "free_bytes": {"type": "integer", "format": "int64", "minimum": 0, "nullable": True},
        },
    },
    "LoginResponse": {
        "type": "object",
        "required": ["token", "peer_id", "lease_s", "registered"],
        "properties": {
            "token": {"type": "string"},
            "peer_id": _ref("PeerId"),
            "lease_s": {"type": "number"},
            "registered": {"type": "boolean"},
        },
    },
    "HeartbeatRequest": {
        "type": "object",
        "properties": {
            "free_bytes": {"type": "integer", "format": "int64", "minimum": 0, "nullable": True},
            "accept_uploads": {"type": "boolean"},
        },
    },
    "CopyOrder": {
        "type": "object",
        "required": ["sha256", "name", "to_peer_id", "to_address"],
        "properties": {
            "sha256": _ref("Sha256"),
            "name": {"type": "string"},
            "to_peer_id": _ref("PeerId"),
            "to_address": _ref("GrpcAddress"),
        },
    },
    "HeartbeatResponse": {
        "type": "object",
        "required": ["lease_s", "replicate"],
        "properties": {"lease_s": {"type": "number"}, "replicate": {"type": "array", "items": _ref("CopyOrder")}},
    },
    "Peer": {
        "type": "object",
        "required": ["peer_id", "grpc_address", "last_seen", "files", "accept_uploads"],
        "properties": {
            "peer_id": _ref("PeerId"),
            "grpc_address": _ref("GrpcAddress"),
            "last_seen": {"type": "number", "description": "seconds since the epoch"},
            "files": {"type": "integer", "minimum": 0},
            "accept_uploads": {"type": "boolean"},
            "free_bytes": {"type": "integer", "format": "int64", "nullable": True},
        },
    },
    "Holder": {
        "type": "object",
        "required": ["peer_id", "grpc_address"],
        "properties": {"peer_id": _ref("PeerId"), "grpc_address": _ref("GrpcAddress")},
    },
    "SearchResult": {
        "type": "object",
        "required": ["sha256", "name", "size", "holders"],
        "properties": {
            "sha256": _ref("Sha256"),
            "name": {"type": "string"},
            "size": {"type": "integer", "format": "int64"},
            "holders": {"type": "array", "items": _ref("Holder")},
        },
    },
    "SearchPage": {
        "type": "object",
        "required": ["results", "next_cursor"],
        "properties": {
            "results": {"type": "array", "items": _ref("SearchResult")},
            "next_cursor": {"type": "string", "nullable": True},
        },
    },
    "PendingCopy": {
        "type": "object",
        "required": ["to_peer_id", "to_address", "from_peer_id", "deadline"],
        "properties": {
            "to_peer_id": _ref("PeerId"),
            "to_address": _ref("GrpcAddress"),
            "from_peer_id": _ref("PeerId"),
            "deadline": {"type": "number"},
            "handed_at": {"type": "number", "nullable": True},
        },
    },
    "FileDetail": {
        "type": "object",
        "required": ["sha256", "size", "names", "holders", "replication"],
        "properties": {
            "sha256": _ref("Sha256"),
            "size": {"type": "integer", "format": "int64"},
            "names": {"type": "array", "items": {"type": "string"}},
            "holders": {"type": "array", "items": _ref("Holder")},
            "piece_size": {"type": "integer", "format": "int64"},
            "pieces": {"type": "array", "items": _ref("Sha256")},
            "replication": {
                "type": "object",
                "required": ["target", "live_holders", "pending"],
                "properties": {
                    "target": {"type": "integer"},
                    "live_holders": {"type": "integer"},
                    "pending": {"type": "array", "items": _ref("PendingCopy")},
                    "withdrawn": {"type": "boolean"},
                },
            },
        },
    },
    "ReplicationSummary": {
        "type": "object",
        "required": ["target", "files_total", "at_target", "below_target", "above_target",
                     "pending_copies", "unplaceable", "withdrawn"],
        "properties": {k: {"type": "integer", "minimum": 0} for k in (
            "target", "files_total", "at_target", "below_target", "above_target", "pending_copies",
            "unplaceable")},
    },
    "Problem": {
        "type": "object",
        "required": ["type", "title", "status", "detail"],
        "properties": {
            "type": {"type": "string"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
            "field": {"type": "string", "description": "the invalid input, for validation errors"},
        },
    },
}

_PATHS = {
    "/login": {"post": {
        "operationId": "login", "summary": "Register a new peer_id or log in a known one",
        "requestBody": _body(_ref("LoginRequest")),
        "responses": {"200": _json(_ref("LoginResponse"), "a fresh token"), **_errors(400, 401, 413)},
    }},
    "/logout": {"post": {
        "operationId": "logout", "summary": "End the session; the peer vanishes from search at once",
        "security": _AUTH, "responses": {"204": {"description": "logged out"}, **_errors(401)},
    }},
    "/heartbeat": {"post": {
        "operationId": "heartbeat", "summary": "Renew the lease and receive copies to push",
        "security": _AUTH, "requestBody": _body(_ref("HeartbeatRequest"), required=False),
        "responses": {"200": _json(_ref("HeartbeatResponse"), "lease renewed"), **_errors(400, 401, 413)},
    }},
    "/peers": {"get": {
        "operationId": "listPeers", "summary": "Live peers",
        "responses": {"200": _json({"type": "array", "items": _ref("Peer")}, "live peers"), **_errors()},
    }},
    "/peers/{peer_id}/files": {
        "parameters": [_PEER_ID],
        "get": {
            "operationId": "browsePeer", "summary": "What one live peer shares",
            "responses": {"200": _json({"type": "object", "required": ["peer_id", "files"], "properties": {
                "peer_id": _ref("PeerId"), "files": {"type": "array", "items": _ref("FileEntry")}}},
                "the peer's files"), **_errors(400)},
        },
        "put": {
            "operationId": "replaceIndex", "summary": "Replace the caller's whole index",
            "security": _AUTH, "requestBody": _body(_ref("FileList")),
            "responses": {"200": _json({"type": "object", "required": ["indexed"], "properties": {
                "indexed": {"type": "integer"}}}, "indexed"), **_errors(400, 401, 403, 413)},
        },
        "post": {
            "operationId": "addFiles", "summary": "Add or update (by name) entries of the caller's index",
            "security": _AUTH, "requestBody": _body(_ref("FileList")),
            "responses": {"201": _json({"type": "object", "required": ["indexed"], "properties": {
                "indexed": {"type": "integer"}}}, "indexed"), **_errors(400, 401, 403, 413)},
        },
    },
    "/peers/{peer_id}/files/{sha256}": {
        "parameters": [_PEER_ID, _SHA256],
        "delete": {
            "parameters": [{"name": "withdraw", "in": "query", "required": False,
                            "schema": {"type": "string", "enum": ["true", "false", "1", "0"]},
                            "description": "also stop replicating this file anywhere"}],
            "operationId": "deleteFile",
            "summary": "Remove every name of this sha256 from the caller's index; copies elsewhere stay",
            "security": _AUTH, "responses": {"204": {"description": "removed"}, **_errors(400, 401, 403)},
        },
    },
    "/peers/{peer_id}/unreachable": {
        "parameters": [_PEER_ID],
        "post": {
            "operationId": "reportUnreachable",
            "summary": "Report a peer; the directory probes its gRPC health and drops it only if that fails",
            "security": _AUTH,
            "responses": {"202": _json({"type": "object", "required": ["status"], "properties": {
                "status": {"type": "string", "enum": ["removed", "alive"]}}}, "probe result"),
                **_errors(400, 401)},
        },
    },
    "/files": {"get": {
        "operationId": "searchFiles", "summary": "Case-insensitive substring search on names (prefix for 1-2 chars)",
        "parameters": [
            {"name": "q", "in": "query", "required": False, "schema": {"type": "string", "maxLength": 1024}},
            {"name": "limit", "in": "query", "required": False,
             "schema": {"type": "integer", "minimum": 1, "default": 20, "description": "capped at 200"}},
            {"name": "cursor", "in": "query", "required": False, "schema": {"type": "string"}},
        ],
        "responses": {"200": _json(_ref("SearchPage"), "one page of results"), **_errors(400)},
    }},
    "/files/{sha256}": {
        "parameters": [_SHA256],
        "get": {
            "operationId": "fileDetail", "summary": "One file: size, names, live holders, pieces, replication",
            "responses": {"200": _json(_ref("FileDetail"), "the file"), **_errors(400)},
        },
    },
    "/replication": {"get": {
        "operationId": "replicationSummary", "summary": "Files at, below and above the replication target",
        "responses": {"200": _json(_ref("ReplicationSummary"), "summary"), **_errors()},
    }},
    "/health": {"get": {
        "operationId": "health", "summary": "Liveness of the directory and its store",
        "responses": {"200": _json({"type": "object", "required": ["status"], "properties": {
            "status": {"type": "string", "enum": ["ok"]}}}, "healthy"), **_errors(503)},
    }},
    "/openapi.json": {"get": {
        "operationId": "openapi", "summary": "This document",
        "responses": {"200": _json({"type": "object"}, "the OpenAPI document"), **_errors()},
    }},
}


def build_document(server_url: str = "/api/v1") -> dict:
    """The OpenAPI 3.0.3 document of every /api/v1 endpoint, body, response and problem."""
    return {
        "openapi": "3.0.3",
        "info": {"title": "P2P directory", "version": "1.0.0",
                 "description": "Central directory of the hybrid P2P network. Every error is "
                                "application/problem+json."},
        "servers": [{"url": server_url}],
        "paths": copy.deepcopy(_PATHS),
        "components": {
            "schemas": copy.deepcopy(_SCHEMAS),
            "responses": {"Problem": {"description": "an RFC 9457 problem",
                                      "content": {"application/problem+json": {"schema": _ref("Problem")}}}},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
