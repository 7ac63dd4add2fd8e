"""Shared pieces for the benchmarks: a fresh Postgres database, the app's processes, percentiles."""
from __future__ import annotations

import contextlib
import os
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import logging

from app import migrate
from app.config import load_config, normalize_database_url
from app.dev.serving import serve_in_thread  # noqa: F401 (the benches import it from here)

logging.getLogger("werkzeug").setLevel(logging.WARNING)
SERVER = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432")


@contextlib.contextmanager
def fresh_database():
    name = f"pointbridge_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = f"{SERVER}/{name}"
    migrate.upgrade(normalize_database_url(url))
    try:
        yield url
    finally:
        with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def env(database_url: str, **extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SHOPIFY_", "SMAREGI_", "POINTBRIDGE_"))}
    return {**base, "POINTBRIDGE_ENV": "development", "DATABASE_URL": database_url, "LOG_LEVEL": "WARNING",
            "SMAREGI_CONTRACT_ID": "sb_bench", **extra}


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def process(args: list[str], environment: dict[str, str], ready_url: str | None = None):
    proc = subprocess.Popen(args, env=environment, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        if ready_url:
            deadline = time.monotonic() + 30
            while True:
                try:
                    urllib.request.urlopen(ready_url, timeout=1)
                    break
                except OSError:
                    if time.monotonic() > deadline or proc.poll() is not None:
                        raise SystemExit(f"bench: {args[2]} did not start") from None
                    time.sleep(0.1)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def web(environment: dict[str, str], port: int, workers: int = 2):
    return process([sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "-c", "python:app.gunicorn_conf",
                    "--workers", str(workers), "app:create_app()"], environment, f"http://127.0.0.1:{port}/healthz")


def worker(environment: dict[str, str]):
    return process([sys.executable, "-m", "app.cli", "worker"], environment)


def tree_peak_rss_mb(pid: int) -> float:
    """Peak resident memory (VmHWM) of a process and its children, in MiB."""
    total = 0
    pids = [pid] + [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    for p in pids:
        for line in Path(f"/proc/{p}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                total += int(line.split()[1])
    return total / 1024


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def summary(label: str, values_ms: list[float]) -> str:
    return (f"{label}: n={len(values_ms)} p50={pct(values_ms, 50):.1f} ms p99={pct(values_ms, 99):.1f} ms "
            f"max={max(values_ms):.1f} ms mean={statistics.fmean(values_ms):.1f} ms")


def dev_config():
    return load_config({"POINTBRIDGE_ENV": "development"})


BENCH_SHOP = "bench.myshopify.com"
BENCH_CONTRACT = "sb_bench"


@contextlib.contextmanager
def standins(url: str, limits_per_s: int | None = 100_000, **extra_env: str):
    """The Smaregi and Shopify stand-ins in their own process (so they do not share a GIL with the
    load generator) for the database at `url`. `limits_per_s`: the contract's read and write limits
    (raised by default: we measure our code, not the quota); None keeps Smaregi's own. Yields
    (environment, smaregi_url, shopify_url)."""
    smaregi_port, shopify_port = free_port(), free_port()
    smaregi, shopify = f"http://127.0.0.1:{smaregi_port}", f"http://127.0.0.1:{shopify_port}"
    raised = {} if limits_per_s is None else {"SMAREGI_READS_PER_S": str(limits_per_s),
                                              "SMAREGI_WRITES_PER_S": str(limits_per_s)}
    environment = env(url, SMAREGI_ID_BASE=smaregi, SMAREGI_API_BASE=smaregi, SMAREGI_CONTRACT_ID=BENCH_CONTRACT,
                      SHOPIFY_ADMIN_API_BASE=f"{shopify}/{{shop}}", **raised, **extra_env)
    flags = [] if limits_per_s is None else ["--reads-per-s", str(limits_per_s), "--writes-per-s", str(limits_per_s)]
    with process([sys.executable, "-m", "app.dev.standins", "--smaregi-port", str(smaregi_port),
                  "--shopify-port", str(shopify_port), "--no-seed", "--keep-alive", *flags],
                 environment, f"{smaregi}/_emulator/stats"):
        yield environment, smaregi, shopify


@contextlib.contextmanager
def synced_members(customers: list[int], points: int, **extra_env: str):
    """A fresh database, the stand-ins (limits raised) and `customers` already synced to Smaregi
    members with `points` each. Yields (environment, smaregi_url, shopify_url)."""
    import requests

    from app.services import Services
    from app.sync.worker import Worker
    from app.webhooks.dispatch import Delivery, record

    with fresh_database() as url, standins(url, **extra_env) as (environment, smaregi, shopify):
        requests.post(f"{smaregi}/_emulator/{BENCH_CONTRACT}/members", timeout=60, json=[
            {"customerCode": str(c), "lastName": "山田", "firstName": "太郎", "rank": "gold", "points": points,
             "expires_on": "2027-03-31"} for c in customers])
        requests.post(f"{shopify}/_emulator/{BENCH_SHOP}/customers", timeout=60,
                      json=[{"id": c, "firstName": "太郎"} for c in customers])
        services = Services.build(load_config({**environment, "DATABASE_URL": normalize_database_url(url)}))
        for c in customers:
            record(services.db, services.config, Delivery(
                BENCH_SHOP, "customers/create", str(uuid.uuid4()), None, None,
                {"id": c, "first_name": "太郎", "last_name": "山田", "updated_at": "2026-11-20T10:00:00+09:00"}))
        worker = Worker(services, "bench")
        while worker.drain(limit=200):
            pass
        services.db.dispose()
        yield environment, smaregi, shopify


WAITED = ("smaregi", "shopify")  # the platforms' time: what "overhead" leaves out
BREAKDOWN = ("app", "db", "ratelimit", "smaregi", "shopify")
COUNTS = ("db.statements", "db.transactions", "ratelimit.calls", "smaregi.calls", "shopify.calls")


class Samples:
    """Per request: the total, our overhead (the total minus the time the app's Server-Timing
    header reports waiting on Smaregi and Shopify) and the header's breakdown; safe to record from
    many threads."""

    def __init__(self) -> None:
        self.totals: list[float] = []
        self.overheads: list[float] = []
        self.timings: list[dict[str, float]] = []
        self.statuses: dict[int, int] = {}
        self._lock = threading.Lock()

    def timed(self, call):
        from app.timing import parse

        started = time.perf_counter()
        resp = call()
        total = (time.perf_counter() - started) * 1000
        timing = parse(resp.headers.get("Server-Timing", ""))
        with self._lock:
            self.statuses[resp.status_code] = self.statuses.get(resp.status_code, 0) + 1
            self.totals.append(total)
            self.overheads.append(total - sum(timing.get(name, 0.0) for name in WAITED))
            self.timings.append({**timing, "outside": total - sum(timing.get(n, 0.0) for n in BREAKDOWN)})
        return resp

    def report(self, label: str) -> str:
        """The overhead's line, then where the time went (p50/p99 per part, server side and
        `outside`: the HTTP server, the network and the load generator) and the round trips."""
        def part(name: str) -> str:
            values = [t.get(name, 0.0) for t in self.timings]
            return f"{name} {pct(values, 50):.1f}/{pct(values, 99):.1f}"

        def count(name: str) -> str:
            values = [t.get(name, 0.0) for t in self.timings]
            return f"{name.replace('.', ' ')} {statistics.fmean(values):.1f} (max {max(values):.0f})"

        return "\n".join([
            f"  {summary(label, self.overheads)}",
            f"  {summary('total', self.totals)}",
            "  time per request, p50/p99 ms: " + ", ".join(part(n) for n in (*BREAKDOWN, "outside")),
            "  per request, mean: " + ", ".join(count(n) for n in COUNTS),
        ])
