"""Webhook → Smaregi member latency with no backlog, against the emulator at sandbox rate limits.

The app runs as in production (gunicorn web + the worker, Postgres, LISTEN/NOTIFY). A signed
customers/create is posted every `--gap` seconds; the clock stops when the member exists in the
emulator (watched in-process, every 2 ms).
"""
from __future__ import annotations

import argparse
import json
import time
import uuid

import requests

from _harness import dev_config, env, free_port, fresh_database, serve_in_thread, summary, web, worker
from app.dev.signing import webhook_hmac
from app.dev.smaregi_emulator import SmaregiEmulator


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=40)
    parser.add_argument("--gap", type=float, default=0.75)
    args = parser.parse_args()
    config = dev_config()
    em = SmaregiEmulator(clients={config.smaregi_client_id: config.smaregi_client_secret}, contracts=["sb_bench"],
                         reads_per_s=10, writes_per_s=4)
    with fresh_database() as url, serve_in_thread(em.create_app()) as smaregi:
        port = free_port()
        environment = env(url, SMAREGI_ID_BASE=smaregi, SMAREGI_API_BASE=smaregi)
        with web(environment, port), worker(environment):
            time.sleep(3)  # the worker's first directory import of the (empty) contract
            latencies = []
            for i in range(args.customers):
                customer_id = 7_000_000_000_000 + i
                body = json.dumps({"id": customer_id, "first_name": "花子", "last_name": "佐藤",
                                   "email": f"hanako{i}@example.com", "phone": "+81 90-1111-2222",
                                   "updated_at": "2026-11-20T10:00:00+09:00"}).encode()
                headers = {"X-Shopify-Topic": "customers/create", "X-Shopify-Shop-Domain": "bench.myshopify.com",
                           "X-Shopify-Webhook-Id": str(uuid.uuid4()), "Content-Type": "application/json",
                           "X-Shopify-Hmac-Sha256": webhook_hmac(body, config.shopify_api_secret)}
                started = time.perf_counter()
                requests.post(f"http://127.0.0.1:{port}/webhooks", data=body, headers=headers, timeout=10)
                while em.member_by_code("sb_bench", str(customer_id)) is None:
                    if time.perf_counter() - started > 30:
                        raise SystemExit(f"customer {customer_id} never arrived")
                    time.sleep(0.002)
                latencies.append((time.perf_counter() - started) * 1000)
                time.sleep(args.gap)
    print(f"sync latency: {args.customers} customers, one every {args.gap}s, Smaregi emulator at 10 reads/s, "
          f"4 writes/s; 429s: {em.stats['rate_limited']}")
    print(summary("webhook → member", latencies))


if __name__ == "__main__":
    main()
