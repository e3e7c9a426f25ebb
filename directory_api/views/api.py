"""How an endpoint is declared: one ``operation`` per view, and the OpenAPI app that documents them.

A view declares its path, query and body as pydantic models in its signature (``schemas/``);
flask-openapi3 validates them before the view runs and generates the document from the same
models. ``operation`` adds what every endpoint of ours has: its answers, the problem body of
each error code it can give, the bearer security that ``auth.enforce`` checks before any
validation, and the OpenAPI links that chain it to others. See the README ("How to add an
endpoint").
"""
from __future__ import annotations

import copy
import inspect
import typing
from typing import Any, Callable

from flask_openapi3 import APIBlueprint, Info, OpenAPI, Tag
from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError

from .. import auth, schemas
from ..errors import ValidationError
from .problems import PROBLEM_JSON, problem_response

API_PREFIX = "/api/v1"
BEARER = [{"bearer": []}]
REF = "#/components/schemas/{model}"
ERRORS = {
    400: "invalid input: `field` names the value at fault (a JSON path like files[3].name)",
    401: "missing, unknown or expired token: log in again",
    403: "the caller may change only its own records",
    404: "no such peer, file or route",
    405: "method not allowed",
    409: "conflicts with what the directory holds (e.g. a page out of order)",
    413: "the body, a string, an array or the file list is too large",
    422: "valid fields that break a rule together: `field` names the one at fault",
    429: "too many attempts: wait Retry-After seconds",
    500: "the directory failed (the operator's log has the cause)",
    503: "the store cannot answer now; try again",
}
ALWAYS = (400, 404, 405, 500, 503)


def blueprint(name: str, import_name: str, description: str) -> APIBlueprint:
    """An APIBlueprint for one resource, tagged with its name in the document."""
    return APIBlueprint(name, import_name, abp_tags=[Tag(name=name, description=description)])


def _problem(code: int) -> dict:
    return {"description": ERRORS[code], "content": {PROBLEM_JSON: {"schema": {"$ref": REF.format(model="Problem")}}}}


def operation(bp: APIBlueprint, method: str, rule: str, *, operation_id: str,
              answers: dict[int, type[BaseModel] | None], errors: tuple[int, ...] = (), auth_mode: str | None = None,
              links: dict[str, dict[str, Any]] | None = None) -> Callable:
    """Register the decorated view as METHOD rule on bp, documented and checked.

    answers: success status -> answer model (None: no body). errors: codes beyond those every
    endpoint can give (400 404 405 500 503; 401 with auth, 403 with auth.OWNER, 413 with a
    body). auth_mode: None, auth.BEARER (the view checks the token), auth.PEER or auth.OWNER.
    links: OpenAPI links of the first success answer, {name: {operationId, parameters, ...}}.
    """

    def decorate(func: Callable) -> Callable:
        codes = set(ALWAYS) | set(errors)
        if auth_mode is not None:
            codes.add(401)
            if auth_mode == auth.OWNER:
                codes.add(403)
            auth.mark(func, auth_mode)
        if "body" in typing.get_type_hints(func):
            codes.add(413)
        responses: dict = {code: model for code, model in answers.items()}
        responses.update({code: _problem(code) for code in sorted(codes)})
        register = getattr(bp, method.lower())
        register(rule, operation_id=operation_id, responses=responses,
                 security=BEARER if auth_mode is not None else None)(func)
        if links:
            _LINKS[operation_id] = (min(answers), links)
        return func

    return decorate


_LINKS: dict[str, tuple[int, dict]] = {}


def validation_problem(error: PydanticValidationError):
    """flask-openapi3's validation-error callback: the first error as our 400 problem, naming its field."""
    first = error.errors(include_url=False)[0]
    ctx = first.get("ctx") or {}
    parts = [*first["loc"], *(ctx.get("path") or [])] if first["type"] == "cross_field" else list(first["loc"])
    field = ""
    for part in parts:
        field += f"[{part}]" if isinstance(part, int) else (f".{part}" if field else str(part))
    field = field or "body"
    if first["type"] == "missing":
        detail = "is required"
    elif first["type"] in ("model_type", "model_attributes_type", "dict_type") and not first["loc"]:
        detail = "a JSON object is required"
    elif first["type"] == "string_pattern_mismatch":
        detail = f"must match {ctx.get('pattern')}"
    else:
        detail = first["msg"]
    return problem_response(ValidationError(field, detail).to_problem())


class DirectoryOpenAPI(OpenAPI):
    """The Flask app: flask-openapi3's, with our document conventions on top of its generated one.

    The paths are relative to the server /api/v1 (as clients and the Postman collection use them),
    component schemas are pydantic's own (keeping format, int64 bounds and dependentRequired),
    and each operation carries the links its ``operation`` declared.
    """

    def __init__(self, import_name: str, **kwargs: Any):
        """An app whose validation errors are our 400 problems and whose document is ours."""
        super().__init__(
            import_name,
            info=Info(title="P2P directory", version="1.0.0",
                      description="Central directory of the hybrid P2P network. Every error is "
                                  "application/problem+json. Generated from directory_api/schemas/."),
            security_schemes={"bearer": {"type": "http", "scheme": "bearer",
                                         "description": "the token from POST /login"}},
            validation_error_status=400,
            validation_error_model=schemas.Problem,
            validation_error_callback=validation_problem,
            doc_ui=False,
            **kwargs,
        )

    def generate_spec_json(self):
        """Build the document once (flask-openapi3 caches it in spec_json), then apply our conventions."""
        super().generate_spec_json()
        doc = self.spec_json
        doc["servers"] = [{"url": API_PREFIX}]
        doc["paths"] = {path[len(API_PREFIX):] or "/": item for path, item in doc["paths"].items()
                        if path.startswith(API_PREFIX)}
        models = {name: model for name, model in vars(schemas).items()
                  if inspect.isclass(model) and issubclass(model, BaseModel)
                  and model.__module__.startswith(schemas.__name__)}
        components = doc["components"]["schemas"]
        for name in list(components):
            if name in models:
                mode = "validation" if issubclass(models[name], schemas.Body) else "serialization"
                exact = copy.deepcopy(models[name].model_json_schema(ref_template=REF, mode=mode))
                for sub, definition in exact.pop("$defs", {}).items():
                    components[sub] = definition
                components[name] = exact
        for item in doc["paths"].values():
            for op in item.values():
                if op.get("operationId") in _LINKS:
                    status, links = _LINKS[op["operationId"]]
                    op["responses"][str(status)]["links"] = links
        return doc
