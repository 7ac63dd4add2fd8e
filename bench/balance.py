"""/proxy/balance under 20 concurrent shoppers: our overhead (total minus Smaregi time) and totals.

Runs the app under gunicorn on Postgres against the Smaregi emulator with 0 ms and then 600 ms
added to every Smaregi answer. Each request is for a different member (no coalescing), and the
contract's read limit is raised so we measure our code, not the quota. Smaregi time comes from the
app's `Server-Timing: pos;dur=` header.
"""
from __future__ import annotations

import argparse
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import requests
from _harness import dev_config, env, free_port, fresh_database, serve_in_thread, summary, web

from app.config import load_config, normalize_database_url
from app.dev.signing import proxy_params, proxy_query
from app.dev.smaregi_emulator import SmaregiEmulator
from app.services import Services
from app.sync.intake import Delivery, record

SHOP = "bench.myshopify.com"


def run(port: int, secret: str, customers: list[int], requests_total: int, concurrency: int):
    session = requests.Session()
    session.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=concurrency))
    totals, overheads, statuses = [], [], {}

    def one(i: int):
        customer = customers[i % len(customers)]
        query = proxy_query(proxy_params(SHOP, customer), secret)
        started = time.perf_counter()
        resp = session.get(f"http://127.0.0.1:{port}/proxy/balance?{query}", timeout=10)
        total = (time.perf_counter() - started) * 1000
        statuses[resp.status_code] = statuses.get(resp.status_code, 0) + 1
        pos = float(resp.headers.get("Server-Timing", "pos;dur=0").split("dur=")[1])
        totals.append(total)
        overheads.append(total - pos)

    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, range(requests_total)))
    return totals, overheads, statuses


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=600)
    parser.add_argument("--concurrency", type=int, default=20)
    args = parser.parse_args()
    config = dev_config()
    em = SmaregiEmulator(clients={config.smaregi_client_id: config.smaregi_client_secret}, contracts=["sb_bench"],
                         reads_per_s=100_000, writes_per_s=100_000)
    customers = [5_000_000_000_000 + i for i in range(args.requests)]
    with fresh_database() as url, serve_in_thread(em.create_app()) as smaregi:
        environment = env(url, SMAREGI_ID_BASE=smaregi, SMAREGI_API_BASE=smaregi,
                          SMAREGI_READS_PER_S="100000", SMAREGI_SYNC_ENABLED="false")
        services = Services.build(load_config({**environment, "DATABASE_URL": normalize_database_url(url)}))
        for customer in customers:
            member = em.add_member("sb_bench", customerCode=str(customer), lastName="山田", firstName="太郎",
                                   rank="gold", points=1250, expires_on="2027-03-31")
            em.add_sale("sb_bench", member["customerId"], earned=12, total=1200)
            record(services.db, services.config, Delivery(SHOP, "customers/create", str(uuid.uuid4()), None, None,
                                                          {"id": customer, "updated_at": "2026-11-20T10:00:00+09:00"}))
        services.db.dispose()
        port = free_port()
        with web(environment, port, workers=2):
            for latency in (0.0, 0.6):
                em.clear_faults()
                if latency:
                    em.add_fault(match=r"GET /sb_bench/pos/(customers/point|transactions)", latency_s=latency)
                half = args.requests // 2
                batch = customers[:half] if not latency else customers[half:]
                totals, overheads, statuses = run(port, config.shopify_api_secret, batch, half, args.concurrency)
                print(f"POS +{latency * 1000:.0f} ms, {args.concurrency} concurrent shoppers, statuses {statuses}")
                print("  " + summary("total", totals))
                print("  " + summary("app overhead (total − Smaregi)", overheads))


if __name__ == "__main__":
    main()
