"""Points → coupon under load: 20 different customers converting at once, against the emulators.

The app runs under gunicorn on Postgres; the Smaregi and Shopify stand-ins run in their own
process (no added latency, limits raised so the quota is not what is measured). Each of the
`--concurrency` customers converts 100 points again and again (a new idempotency key each time)
for `--seconds`. Our overhead is the total minus the time spent in Smaregi and Shopify calls, from
the app's `Server-Timing: ext;dur=` header.
"""
from __future__ import annotations

import argparse
import sys
import threading
import time
import urllib.request
import uuid

import requests

from _harness import dev_config, env, free_port, fresh_database, process, summary, web
from app.config import load_config, normalize_database_url
from app.dev.signing import app_home_id_token, proxy_params, proxy_query
from app.services import Services
from app.sync.intake import Delivery, record
from app.sync.worker import Worker

SHOP = "bench.myshopify.com"
CONTRACT = "sb_bench"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=20)
    args = parser.parse_args()
    config = dev_config()
    smaregi_port, shopify_port = free_port(), free_port()
    smaregi, shopify = f"http://127.0.0.1:{smaregi_port}", f"http://127.0.0.1:{shopify_port}"
    customers = [4_000_000_000_000 + i for i in range(args.concurrency)]
    with fresh_database() as url:
        environment = env(url, SMAREGI_ID_BASE=smaregi, SMAREGI_API_BASE=smaregi, SMAREGI_CONTRACT_ID=CONTRACT,
                          SHOPIFY_ADMIN_API_BASE=f"{shopify}/{{shop}}", SMAREGI_READS_PER_S="100000",
                          SMAREGI_WRITES_PER_S="100000", POINTS_DAILY_LIMIT="100000000")
        with process([sys.executable, "-m", "app.dev.standins", "--smaregi-port", str(smaregi_port),
                      "--shopify-port", str(shopify_port), "--no-seed", "--reads-per-s", "100000",
                      "--writes-per-s", "100000"], environment, f"{smaregi}/_emulator/stats"):
            requests.post(f"{smaregi}/_emulator/{CONTRACT}/members", timeout=60, json=[
                {"customerCode": str(c), "lastName": "山田", "firstName": "太郎", "points": 10_000_000}
                for c in customers])
            requests.post(f"{shopify}/_emulator/{SHOP}/customers", timeout=60,
                          json=[{"id": c, "firstName": "太郎"} for c in customers])
            services = Services.build(load_config({**environment, "DATABASE_URL": normalize_database_url(url)}))
            for c in customers:
                record(services.db, services.config, Delivery(SHOP, "customers/create", str(uuid.uuid4()), None,
                                                              None, {"id": c, "first_name": "太郎", "last_name": "山田",
                                                                     "updated_at": "2026-11-20T10:00:00+09:00"}))
            Worker(services, "bench").drain(limit=100)
            services.db.dispose()
            port = free_port()
            with web(environment, port, workers=2):
                token = app_home_id_token(config.shopify_api_key, config.shopify_api_secret, SHOP)
                urllib.request.urlopen(f"http://127.0.0.1:{port}/?shop={SHOP}&host=x&id_token={token}", timeout=10)
                totals, overheads, statuses = [], [], {}
                lock = threading.Lock()
                stop = time.perf_counter() + args.seconds

                def customer_loop(customer: int):
                    session = requests.Session()
                    while time.perf_counter() < stop:
                        query = proxy_query(proxy_params(SHOP, customer), config.shopify_api_secret)
                        started = time.perf_counter()
                        resp = session.post(f"http://127.0.0.1:{port}/proxy/conversions?{query}", timeout=30,
                                            json={"points": 100, "idempotency_key": str(uuid.uuid4())})
                        total = (time.perf_counter() - started) * 1000
                        external = float(resp.headers.get("Server-Timing", "ext;dur=0").split("dur=")[1])
                        with lock:
                            statuses[resp.status_code] = statuses.get(resp.status_code, 0) + 1
                            totals.append(total)
                            overheads.append(total - external)

                threads = [threading.Thread(target=customer_loop, args=(c,)) for c in customers]
                begin = time.perf_counter()
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
                elapsed = time.perf_counter() - begin
    print(f"conversions: {len(totals)} in {elapsed:.1f} s = {statuses.get(201, 0) / elapsed:.1f} completed/s, "
          f"{args.concurrency} customers converting at once, statuses {statuses}")
    print("  " + summary("total", totals))
    print("  " + summary("overhead (total − Smaregi − Shopify)", overheads))


if __name__ == "__main__":
    main()
