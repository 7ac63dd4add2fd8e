"""Where one request's time goes: database statements and transactions, Smaregi and Shopify calls,
waits for a rate-limit slot, and the app's own share. Reported in the `Server-Timing` header
(durations and counts only) and read by the benches and the round-trip tests.

The platform clients and the database's engine events add to the current request's `Timing` (a
context variable, so concurrent requests in other threads never mix; work handed to a thread pool
runs in a copy of the caller's context and adds to the same `Timing`). Each category's duration is
wall time during which at least one of its calls was in flight, so two Smaregi reads side by side
count once, as the shopper waits for them. A moment with calls of several categories in flight
counts once too, for the first of smaregi, shopify, ratelimit, db (a database read made beside a
Smaregi call costs the shopper nothing): the durations and the app's share add up to the total.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from sqlalchemy import event
from sqlalchemy.engine import Engine

WAITS = ("smaregi", "shopify", "ratelimit")  # time the app spends waiting on someone else


class _Clock:
    """Calls of one category: how many, how many are in flight, and the time counted for them."""

    def __init__(self) -> None:
        self.calls = 0
        self.ms = 0.0
        self.in_flight = 0


class Timing:
    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.transactions = 0
        self.clocks = {name: _Clock() for name in ("db", *WAITS)}
        self._first = [self.clocks[name] for name in (*WAITS, "db")]
        self._since = self.started
        self._lock = threading.Lock()

    @property
    def statements(self) -> int:
        return self.clocks["db"].calls

    def calls(self, name: str) -> int:
        return self.clocks[name].calls

    def ms(self, name: str) -> float:
        return self.clocks[name].ms

    def _start(self, name: str) -> None:
        with self._lock:
            self._tick()
            self.clocks[name].calls += 1
            self.clocks[name].in_flight += 1

    def _stop(self, name: str) -> None:
        with self._lock:
            self._tick()
            self.clocks[name].in_flight -= 1

    def _tick(self) -> None:
        """The time since the last start or stop goes to the first category with a call in flight."""
        now = time.perf_counter()
        busy = next((clock for clock in self._first if clock.in_flight), None)
        if busy is not None:
            busy.ms += (now - self._since) * 1000
        self._since = now

    def header(self) -> str:
        """`Server-Timing`: app (our own time), db, smaregi, shopify, ratelimit; they add up to the
        total. A rate-limit wait includes the limiter's own statements, so db excludes them."""
        total = (time.perf_counter() - self.started) * 1000
        app = max(0.0, total - sum(self.ms(n) for n in ("db", *WAITS)))
        db = self.clocks["db"]
        parts = [f"app;dur={app:.1f}",
                 f'db;dur={db.ms:.1f};desc="statements={db.calls} transactions={self.transactions}"']
        parts += [f'{n};dur={self.ms(n):.1f};desc="calls={self.calls(n)}"' for n in WAITS]
        return ", ".join(parts)


_current: ContextVar[Timing | None] = ContextVar("timing", default=None)
# Inside a rate-limit wait, the limiter's statements are counted but their time is the wait's.
_waiting: ContextVar[bool] = ContextVar("timing_waiting", default=False)


@contextmanager
def measured() -> Iterator[Timing]:
    """Everything that runs inside (in this context) adds to the yielded Timing."""
    timing = Timing()
    token = _current.set(timing)
    try:
        yield timing
    finally:
        _current.reset(token)


def begin(timing: Timing) -> object:
    """For frameworks whose start and end of a request are separate hooks; undo with `end`."""
    return _current.set(timing)


def end(token: object) -> None:
    _current.reset(token)  # type: ignore[arg-type]


@contextmanager
def waiting_on(name: str) -> Iterator[None]:
    """Around one call to Smaregi or Shopify, or one wait for a rate-limit slot."""
    timing = _current.get()
    if timing is None:
        yield
        return
    timing._start(name)
    flag = _waiting.set(True) if name == "ratelimit" else None
    try:
        yield
    finally:
        if flag is not None:
            _waiting.reset(flag)
        timing._stop(name)


@event.listens_for(Engine, "before_cursor_execute")
def _statement_started(conn, cursor, statement, parameters, context, executemany) -> None:
    timing = _current.get()
    if timing is None or statement.startswith("BEGIN"):  # SQLite's BEGIN IMMEDIATE: counted as a transaction
        return
    if _waiting.get():
        with timing._lock:
            timing.clocks["db"].calls += 1
        return
    timing._start("db")
    conn.info["timing_db"] = timing


@event.listens_for(Engine, "after_cursor_execute")
def _statement_done(conn, cursor, statement, parameters, context, executemany) -> None:
    timing = conn.info.pop("timing_db", None)
    if timing is not None:
        timing._stop("db")


@event.listens_for(Engine, "handle_error")
def _statement_failed(context) -> None:
    conn = context.connection
    timing = conn.info.pop("timing_db", None) if conn is not None else None
    if timing is not None:
        timing._stop("db")


@event.listens_for(Engine, "begin")
def _transaction_begun(conn) -> None:
    timing = _current.get()
    if timing is not None:
        with timing._lock:
            timing.transactions += 1


def parse(header: str) -> dict[str, float]:
    """A `Server-Timing` header as Timing.header() writes it: {"app": ms, …, "db.statements": n, …}."""
    out: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in header.split(","))):
        name, *fields = part.split(";")
        for field in fields:
            key, _, value = field.partition("=")
            if key == "dur":
                out[name] = float(value)
            elif key == "desc":
                out.update({f"{name}.{k}": float(v) for k, _, v in (c.partition("=") for c in value.strip('"').split())})
    return out
