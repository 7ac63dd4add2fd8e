"""What every request's text must be before a blueprint reads it, on every surface alike.

Two things reached the database or the parser as 500s: a NUL character (Postgres text cannot hold
U+0000) and JSON nested too deeply to parse (RecursionError is not a ValueError). Here they become
the contract's answers: an id holding NUL names nothing (404), any other NUL is a bad request (400),
and a body that cannot be read is `invalid_request` like any malformed one.
"""
from __future__ import annotations

import json
from typing import Any

from flask import Flask, request
from flask.json.provider import DefaultJSONProvider

from ..points.errors import InvalidRequest, NotFound

NUL = "\x00"


def loads(data: str | bytes) -> Any:
    """JSON, or ValueError: also when too deeply nested, or when a string holds NUL."""
    try:
        value = json.loads(data)
    except RecursionError:
        raise ValueError("The JSON is nested too deeply.") from None
    if _escaped_nul(data):
        raise ValueError("The JSON holds a NUL character.")
    return value


def signed_payload(data: bytes) -> Any:
    """A body Shopify or Smaregi signed: its data is the merchant's, so a NUL is dropped rather than
    the delivery refused (a refused delivery is retried for two days and then lost)."""
    try:
        value = json.loads(data)
        return _without_nul(value) if _escaped_nul(data) else value
    except RecursionError:
        raise ValueError("The JSON is nested too deeply.") from None


def _escaped_nul(data: str | bytes) -> bool:
    # JSON can only carry NUL escaped (a raw control character is invalid JSON).
    return (b"\\u0000" in data) if isinstance(data, bytes) else ("\\u0000" in data)


def _without_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace(NUL, "")
    if isinstance(value, list):
        return [_without_nul(v) for v in value]
    if isinstance(value, dict):
        return {_without_nul(k): _without_nul(v) for k, v in value.items()}
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
