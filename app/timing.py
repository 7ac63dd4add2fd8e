"""Time spent waiting on Smaregi and Shopify during one request, for the Server-Timing header.

The platform clients add each call's duration to the current request's total (a context variable,
so concurrent requests in other threads never mix); the web layer reports it.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_external: ContextVar[list[float] | None] = ContextVar("external_ms", default=None)


@contextmanager
def external_time() -> Iterator[list[float]]:
    box = [0.0]
    token = _external.set(box)
    try:
        yield box
    finally:
        _external.reset(token)


def add_external(ms: float) -> None:
    box = _external.get()
    if box is not None:
        box[0] += ms
