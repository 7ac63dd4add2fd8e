"""Webhook ack latency at 100 deliveries/s for 60 s against Postgres while the worker drains a
backlog, and the web process's peak RSS.

`--backlog` customers are queued before the run; the worker syncs them (and the run's own
deliveries) to the Smaregi stand-in at Smaregi's real write limit, so it is busy for the whole run,
as after an import or a bulk edit. Open loop: a delivery is sent every 10 ms whatever the previous
ones are doing, so a slow server shows up as latency rather than as a lower request rate. Every
delivery is a distinct, correctly signed customers/update for one of 2,000 customers (so both
inserts and updates happen). The breakdown and round trips are the app's `Server-Timing` header.
"""
from __future__ import annotations

import argparse
import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import requests

from _harness import (
    BENCH_CONTRACT,
    BENCH_SHOP,
    Samples,
    dev_config,
    free_port,
    fresh_database,
    standins,
    tree_peak_rss_mb,
    web,
    worker,
)
from app.config import load_config, normalize_database_url
from app.dev.signing import webhook_hmac


def queue_backlog(environment: dict[str, str], url: str, customers: int) -> None:
    from app.services import Services
    from app.webhooks.dispatch import Delivery, record

    services = Services.build(load_config({**environment, "DATABASE_URL": normalize_database_url(url)}))
    for i in range(customers):
        record(services.db, services.config, Delivery(
            BENCH_SHOP, "customers/create", str(uuid.uuid4()), None, None,
            {"id": 7_000_000_000 + i, "first_name": "花子", "last_name": "佐藤",
             "updated_at": "2026-11-20T09:00:00+09:00"}))
    services.db.dispose()


def members(smaregi: str) -> int:
    return len(requests.get(f"{smaregi}/_emulator/{BENCH_CONTRACT}/members", timeout=30).json())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=100)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--backlog", type=int, default=2000)
    args = parser.parse_args()
    secret = dev_config().shopify_api_secret
    with fresh_database() as url, standins(url, limits_per_s=None) as (environment, smaregi, _):
        queue_backlog(environment, url, args.backlog)
        port = free_port()
        with web(environment, port) as proc, worker(environment):
            session = requests.Session()
            session.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=64))
            endpoint = f"http://127.0.0.1:{port}/webhooks"
            samples = Samples()

            def send(i: int) -> None:
                body = json.dumps({"id": 9_000_000_000 + i % 2000, "first_name": "太郎", "last_name": f"山田{i}",
                                   "email": f"c{i % 2000}@example.com", "phone": "+81 90-1111-2222",
                                   "updated_at": f"2026-11-20T10:{(i // 60) % 60:02d}:{i % 60:02d}+09:00"}).encode()
                headers = {"X-Shopify-Topic": "customers/update", "X-Shopify-Shop-Domain": BENCH_SHOP,
                           "X-Shopify-Webhook-Id": str(uuid.uuid4()), "Content-Type": "application/json",
                           "X-Shopify-Hmac-Sha256": webhook_hmac(body, secret)}
                samples.timed(lambda: session.post(endpoint, data=body, headers=headers, timeout=10))

            deadline = time.monotonic() + 60
            while (synced_before := members(smaregi)) == 0:  # until the worker is draining
                if time.monotonic() > deadline:
                    raise SystemExit("bench: the worker synced nobody in 60 s")
                time.sleep(0.5)
            total = int(args.rate * args.seconds)
            interval = 1 / args.rate
            begin = time.perf_counter()
            with ThreadPoolExecutor(max_workers=64) as pool:
                for i in range(total):
                    delay = begin + i * interval - time.perf_counter()
                    if delay > 0:
                        time.sleep(delay)
                    pool.submit(send, i)
            elapsed = time.perf_counter() - begin
            drained = members(smaregi) - synced_before
            rss = tree_peak_rss_mb(proc.pid)
    print(f"webhooks: {total} deliveries in {elapsed:.1f} s = {total / elapsed:.1f}/s, statuses {samples.statuses}; "
          f"the worker synced {drained} members meanwhile ({args.backlog} queued before)")
    print(samples.report(f"webhook ack at {args.rate:.0f}/s while the worker drains a backlog"))
    print(f"web peak RSS (gunicorn master + 2 workers): {rss:.0f} MiB")


if __name__ == "__main__":
    main()
