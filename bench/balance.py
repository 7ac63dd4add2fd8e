"""/proxy/balance for 20 concurrent shoppers: our overhead (total minus Smaregi time) and totals.

The app runs under gunicorn on Postgres; the Smaregi and Shopify stand-ins run in their own process
(so they do not share a GIL with the load generator), first answering at once, then with 600 ms
added to every Smaregi read. Each shopper loads a balance, reads it for `--think` seconds, and
loads another member's (every request is a live read: no coalescing). Members are synced first, as
in production, so the app goes straight to the two parallel reads. The contract's read limit is
raised so that we measure our code, not the quota. Smaregi time is the app's `Server-Timing` header.
"""
from __future__ import annotations

import argparse
import itertools
import sys
import threading
import time
import uuid

import requests

from _harness import dev_config, env, free_port, fresh_database, process, summary, web
from app.config import load_config, normalize_database_url
from app.dev.signing import proxy_params, proxy_query
from app.services import Services
from app.sync.intake import Delivery, record
from app.sync.worker import Worker

SHOP = "bench.myshopify.com"
CONTRACT = "sb_bench"


def shoppers(port: int, secret: str, customers: list[int], concurrency: int, seconds: float, think: float):
    session = requests.Session()
    session.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=concurrency))
    next_customer = itertools.cycle(customers).__next__
    lock = threading.Lock()
    totals, overheads, statuses = [], [], {}
    stop = time.perf_counter() + seconds

    def shopper():
        while time.perf_counter() < stop:
            with lock:
                customer = next_customer()
            query = proxy_query(proxy_params(SHOP, customer), secret)
            started = time.perf_counter()
            resp = session.get(f"http://127.0.0.1:{port}/proxy/balance?{query}", timeout=10)
            total = (time.perf_counter() - started) * 1000
            pos = float(resp.headers.get("Server-Timing", "pos;dur=0").split("dur=")[1])
            with lock:
                statuses[resp.status_code] = statuses.get(resp.status_code, 0) + 1
                totals.append(total)
                overheads.append(total - pos)
            time.sleep(think)

    threads = [threading.Thread(target=shopper) for _ in range(concurrency)]
    for t in threads:
        t.start()
        time.sleep(think / concurrency)  # shoppers arrive spread out, not in lockstep
    for t in threads:
        t.join()
    return totals, overheads, statuses


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--think", type=float, default=1.0)
    parser.add_argument("--members", type=int, default=1000)
    args = parser.parse_args()
    config = dev_config()
    smaregi_port, shopify_port = free_port(), free_port()
    smaregi = f"http://127.0.0.1:{smaregi_port}"
    customers = [5_000_000_000_000 + i for i in range(args.members)]
    with fresh_database() as url:
        environment = env(url, SMAREGI_ID_BASE=smaregi, SMAREGI_API_BASE=smaregi, SMAREGI_CONTRACT_ID=CONTRACT,
                          SMAREGI_READS_PER_S="100000", SMAREGI_WRITES_PER_S="100000")
        with process([sys.executable, "-m", "app.dev.standins", "--smaregi-port", str(smaregi_port),
                      "--shopify-port", str(shopify_port), "--no-seed", "--reads-per-s", "100000",
                      "--writes-per-s", "100000"], environment, f"{smaregi}/_emulator/stats"):
            requests.post(f"{smaregi}/_emulator/{CONTRACT}/members", timeout=60, json=[
                {"customerCode": str(c), "lastName": "山田", "firstName": "太郎", "rank": "gold", "points": 1250,
                 "expires_on": "2027-03-31"} for c in customers])
            services = Services.build(load_config({**environment, "DATABASE_URL": normalize_database_url(url)}))
            for c in customers:
                record(services.db, services.config, Delivery(SHOP, "customers/create", str(uuid.uuid4()), None,
                                                              None, {"id": c, "first_name": "太郎", "last_name": "山田",
                                                                     "updated_at": "2026-11-20T10:00:00+09:00"}))
            worker = Worker(services, "bench")
            while worker.drain(limit=200):
                pass
            services.db.dispose()
            port = free_port()
            with web(environment, port, workers=2):
                for latency in (0.0, 0.6):
                    requests.delete(f"{smaregi}/_emulator/faults", timeout=5)
                    if latency:
                        requests.post(f"{smaregi}/_emulator/faults", timeout=5, json={
                            "match": r"GET /sb_bench/pos/(customers/point|transactions)", "latency_s": latency})
                    totals, overheads, statuses = shoppers(port, config.shopify_api_secret, customers,
                                                           args.concurrency, args.seconds, args.think)
                    print(f"POS +{latency * 1000:.0f} ms: {args.concurrency} shoppers, {args.think}s between loads, "
                          f"{len(totals) / args.seconds:.1f} loads/s, statuses {statuses}")
                    print("  " + summary("total", totals))
                    print("  " + summary("app overhead (total − Smaregi)", overheads))


if __name__ == "__main__":
    main()
