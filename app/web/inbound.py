"""What every request's text must be before a blueprint reads it, on every surface alike.

Two things reached the database or the parser as 500s: a NUL character (Postgres text cannot hold
U+0000) and JSON nested too deeply to parse (RecursionError is not a ValueError). Here they become
the contract's answers: an id holding NUL names nothing (404), any other NUL is a bad request (400),
and a body that cannot be read is `invalid_request` like any malformed one.
"""
from __future__ import annotations

import json
import re
from typing import Any

from flask import Flask, request
from flask.json.provider import DefaultJSONProvider

from ..points.errors import InvalidRequest, NotFound

NUL = "\x00"


def loads(data: str | bytes) -> Any:
    """JSON, or ValueError: also when too deeply nested, or when a string holds NUL or a lone
    surrogate (which no UTF-8 column can store)."""
    value = _parsed(data)
    if _unstorable_escape(data) and _cleaned(value) != value:
        raise ValueError("The JSON holds a NUL character or a lone surrogate.")
    return value


def signed_payload(data: bytes) -> Any:
    """A body Shopify or Smaregi signed: its data is the merchant's, so a NUL or a lone surrogate is
    dropped rather than the delivery refused (a refused delivery is retried for two days and then lost)."""
    value = _parsed(data)
    return _cleaned(value) if _unstorable_escape(data) else value


def _parsed(data: str | bytes) -> Any:
    try:
        return json.loads(data)
    except RecursionError:
        raise ValueError("The JSON is nested too deeply.") from None


# JSON can carry NUL and surrogates only escaped (a raw control character is invalid JSON, and
# a raw lone surrogate is not UTF-8): only a body with such an escape needs the walk.
_ESCAPE = re.compile(r"\\u(0000|[dD][89a-fA-F])")


def _unstorable_escape(data: str | bytes) -> bool:
    return _ESCAPE.search(data.decode("utf-8", "replace") if isinstance(data, bytes) else data) is not None


def _cleaned(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace(NUL, "").encode("utf-8", "ignore").decode("utf-8")  # a pair survives, a lone half not
    if isinstance(value, list):
        return [_cleaned(v) for v in value]
    if isinstance(value, dict):
        return {_cleaned(k): _cleaned(v) for k, v in value.items()}
    return value


class _JSON(DefaultJSONProvider):
    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return loads(s)


def _refuse_nul() -> None:
    if NUL in request.path:
        raise NotFound("Nothing has that id.")
    if any(NUL in name or NUL in value for name, value in request.args.items(multi=True)):
        raise InvalidRequest("The query holds a NUL character.")


def register(app: Flask) -> None:
    """`request.get_json` on every blueprint reads through `loads`; no path or query with NUL gets in."""
    app.json = _JSON(app)
    app.before_request(_refuse_nul)
