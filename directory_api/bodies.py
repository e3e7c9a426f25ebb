"""Request bodies parsed with limits before any model sees them.

A body is read only up to MAX_CONTENT_LENGTH (werkzeug answers 413 past it), then must be
UTF-8, nest at most ``max_depth`` levels (checked on the bytes, before ``json.loads`` could
recurse), hold no string longer than ``max_string_chars`` nor array longer than
``max_array_items``, and no lone surrogate (``"\\ud800"``), which no hash, database or encoder
downstream could take. Every failure is one of our ApiErrors, so it is answered as a problem.
"""
from __future__ import annotations

import itertools
import json
import re
from dataclasses import dataclass
from typing import Any

from flask import Request, current_app

from .errors import BadRequest, PayloadTooLarge, ValidationError

# A JSON string, escapes included (the unrolled-loop form, linear on the bytes).
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)
_NOT_BRACKET = bytes(set(range(256)) - set(b"[]{}"))
_OPENERS = frozenset(b"[{")
_SURROGATE = re.compile("[\ud800-\udfff]")
LIMITS_KEY = "P2P_BODY_LIMITS"
SURROGATE_REFUSAL = "is not valid UTF-8 (it holds a lone surrogate such as \\ud800)"


@dataclass(frozen=True)
class BodyLimits:
    """What one JSON body may hold."""

    max_depth: int = 32
    max_string_chars: int = 64 * 1024
    max_array_items: int = 200_000


def nesting_depth(raw: bytes) -> int:
    """How deep the arrays and objects of a JSON text nest, brackets inside strings not counted."""
    brackets = _STRING.sub(b"", raw).translate(None, _NOT_BRACKET)
    steps = (1 if b in _OPENERS else -1 for b in brackets)
    return max(itertools.accumulate(steps), default=0)


def _path(parts: tuple) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "body"


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _check_string(value: str, parts: tuple, limits: BodyLimits) -> None:
    if len(value) > limits.max_string_chars:
        raise PayloadTooLarge(f"{_path(parts)}: a string of {len(value)} characters; at most "
                              f"{limits.max_string_chars}", field=_path(parts))
    if _SURROGATE.search(value):
        raise ValidationError(_path(parts), SURROGATE_REFUSAL)


def _check_values(data: Any, limits: BodyLimits) -> None:
    # Iterative: the depth is bounded already, but a walk needs no recursion at all.
    stack: list[tuple[Any, tuple]] = [(data, ())]
    while stack:
        value, parts = stack.pop()
        if isinstance(value, str):
            _check_string(value, parts, limits)
        elif isinstance(value, list):
            if len(value) > limits.max_array_items:
                raise PayloadTooLarge(f"{_path(parts)}: {len(value)} items; at most {limits.max_array_items} "
                                      f"in one array", field=_path(parts))
            stack.extend((item, parts + (i,)) for i, item in enumerate(value))
        elif isinstance(value, dict):
            for key, item in value.items():
                _check_string(key, parts + (key,), limits)
                stack.append((item, parts + (key,)))


def parse_body(raw: bytes, limits: BodyLimits) -> dict | None:
    """The JSON object of a body, None for an empty one; BadRequest, ValidationError or PayloadTooLarge."""
    if not raw.strip():
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest(f"the body is not valid UTF-8 (byte {exc.start})") from None
    depth = nesting_depth(raw)
    if depth > limits.max_depth:
        raise ValidationError("body", f"nests {depth} levels deep; at most {limits.max_depth}")
    try:
        data = json.loads(text, parse_constant=_reject_constant)
    except ValueError as exc:  # JSONDecodeError, and integers past Python's 4300-digit limit
        raise BadRequest(f"malformed JSON body: {exc}") from None
    if not isinstance(data, dict):
        raise ValidationError("body", "must be a JSON object")
    _check_values(data, limits)
    return data


class BoundedRequest(Request):
    """The app's request class: get_json (what flask-openapi3 validates) parses with BodyLimits.

    Any content type is read as JSON, as the directory always did; the models then say what
    the object must hold.
    """

    _parsed: tuple[dict | None] | None = None

    def get_json(self, force: bool = False, silent: bool = False, cache: bool = True):  # noqa: ARG002
        """The body's JSON object (None when empty), parsed once with the app's limits."""
        if self._parsed is None:
            limits = current_app.config.get(LIMITS_KEY) or BodyLimits()
            self._parsed = (parse_body(self.get_data(cache=True), limits),)
        return self._parsed[0]
