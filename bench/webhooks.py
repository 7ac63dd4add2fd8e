"""Webhook ack latency at 100 deliveries/s for 60 s against Postgres, and the web process's peak RSS.

Open loop: a delivery is sent every 10 ms whatever the previous ones are doing, so a slow server
shows up as latency rather than as a lower request rate. Every delivery is a distinct, correctly
signed customers/update for one of 2,000 customers (so both inserts and updates happen).
"""
from __future__ import annotations

import argparse
import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import requests

from _harness import dev_config, env, free_port, fresh_database, summary, tree_peak_rss_mb, web
from app.dev.signing import webhook_hmac


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=100)
    parser.add_argument("--seconds", type=float, default=60)
    args = parser.parse_args()
    secret = dev_config().shopify_api_secret
    with fresh_database() as url:
        port = free_port()
        environment = env(url, SMAREGI_SYNC_ENABLED="false")  # measure intake alone: nothing drains
        with web(environment, port) as proc:
            session = requests.Session()
            adapter = requests.adapters.HTTPAdapter(pool_maxsize=64)
            session.mount("http://", adapter)
            endpoint = f"http://127.0.0.1:{port}/webhooks"
            latencies: list[float] = []
            statuses: dict[int, int] = {}

            def send(i: int) -> None:
                body = json.dumps({"id": 9_000_000_000 + i % 2000, "first_name": "太郎", "last_name": f"山田{i}",
                                   "email": f"c{i % 2000}@example.com", "phone": "+81 90-1111-2222",
                                   "updated_at": f"2026-11-20T10:{(i // 60) % 60:02d}:{i % 60:02d}+09:00"}).encode()
                headers = {"X-Shopify-Topic": "customers/update", "X-Shopify-Shop-Domain": "bench.myshopify.com",
                           "X-Shopify-Webhook-Id": str(uuid.uuid4()), "Content-Type": "application/json",
                           "X-Shopify-Hmac-Sha256": webhook_hmac(body, secret)}
                started = time.perf_counter()
                resp = session.post(endpoint, data=body, headers=headers, timeout=10)
                latencies.append((time.perf_counter() - started) * 1000)
                statuses[resp.status_code] = statuses.get(resp.status_code, 0) + 1

            total = int(args.rate * args.seconds)
            interval = 1 / args.rate
            begin = time.perf_counter()
            with ThreadPoolExecutor(max_workers=64) as pool:
                for i in range(total):
                    target = begin + i * interval
                    delay = target - time.perf_counter()
                    if delay > 0:
                        time.sleep(delay)
                    pool.submit(send, i)
            elapsed = time.perf_counter() - begin
            rss = tree_peak_rss_mb(proc.pid)
    print(f"webhooks: {total} deliveries in {elapsed:.1f} s = {total / elapsed:.1f}/s, statuses {statuses}")
    print(summary("ack latency", latencies))
    print(f"web peak RSS (gunicorn master + 2 workers): {rss:.0f} MiB")


if __name__ == "__main__":
    main()
