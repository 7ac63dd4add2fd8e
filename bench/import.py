"""Import of existing customers: N Shopify customers against the stand-ins at the sandbox write limit.

Starts a throw-away Postgres database, the Smaregi and Shopify stand-ins (in this process, so their
counters can be read), the web app under gunicorn (it receives Smaregi's bulk callbacks and the
live webhooks) and one worker process. 1 % of the customers already have a store member with their
id as code and 1 % a store member with their verified e-mail; the rest are new. While the import
runs, a new customer's signed `customers/create` webhook is sent every 2 s.

Smaregi's member webhooks are configured to reach the app, so the import's bulk jobs come back as
`bulk-*` events the worker handles too.

Prints: total time (goal ≤ 10 min at 50,000), the worker's peak RSS (goal ≤ 200 MB), live webhook
→ member latency during the import (goal p50 ≤ 2 s, p95 ≤ 10 s), writes (bulk vs single), 429s from
Smaregi (goal 0) and the requests.

    .venv/bin/python bench/import.py                     # 5,000 customers (about a minute)
    .venv/bin/python bench/import.py --customers 50000   # the full size
"""
from __future__ import annotations

import argparse
import json
import threading
import time
import urllib.request
import uuid

from sqlalchemy import select

from _harness import (
    BENCH_CONTRACT,
    BENCH_SHOP,
    dev_config,
    env,
    free_port,
    fresh_database,
    pct,
    serve_in_thread,
    tree_peak_rss_mb,
    web,
    worker,
)
from app.config import load_config, normalize_database_url
from app.dev.shopify_emulator import ShopifyEmulator
from app.dev.signing import app_home_id_token, webhook_hmac
from app.dev.smaregi_emulator import SmaregiEmulator
from app.models import MemberLink, Shop
from app.services import Services
from app.sync import customer_import

BASE_ID = 5_000_000_000_000
LIVE_BASE_ID = 5_900_000_000_000
LIVE_EVERY_S = 2.0
WEBHOOK_SECRET = "bench-smaregi-webhook-secret"


def seed(shopify: ShopifyEmulator, smaregi: SmaregiEmulator, customers: int) -> None:
    for i in range(customers):
        cid = BASE_ID + i
        email = f"customer{i}@example.com"
        if i % 100 == 0:
            smaregi.add_member(BENCH_CONTRACT, customerCode=str(cid), lastName="山田", firstName="店頭")
        elif i % 100 == 1:
            smaregi.add_member(BENCH_CONTRACT, customerCode=f"S-{i}", lastName="佐藤", firstName="花子",
                               mailAddress=email)
        shopify.add_customer(BENCH_SHOP, cid, email=email, verifiedEmail=True, firstName="太郎", lastName="山田",
                             phone="+81 90-1111-2222", updatedAt="2026-11-20T01:00:00Z",
                             defaultAddress={"zip": "150-0001", "province": "東京都", "city": "渋谷区",
                                             "address1": "神宮前1-2-3", "address2": None})


def send_webhook(app_url: str, secret: str, customer_id: int) -> None:
    body = json.dumps({"id": customer_id, "first_name": "ライブ", "last_name": "顧客", "verified_email": True,
                       "email": f"live{customer_id}@example.com",
                       "updated_at": "2026-11-30T01:00:00Z"}, ensure_ascii=False).encode()
    request = urllib.request.Request(f"{app_url}/webhooks", data=body, method="POST", headers={
        "Content-Type": "application/json", "X-Shopify-Topic": "customers/create", "X-Shopify-Shop-Domain": BENCH_SHOP,
        "X-Shopify-Webhook-Id": str(uuid.uuid4()), "X-Shopify-Hmac-Sha256": webhook_hmac(body, secret)})
    urllib.request.urlopen(request, timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=5000)
    parser.add_argument("--writes-per-s", type=int, default=4)
    parser.add_argument("--reads-per-s", type=int, default=10)
    args = parser.parse_args()
    config = dev_config()
    smaregi = SmaregiEmulator(clients={config.smaregi_client_id: config.smaregi_client_secret},
                              contracts=[BENCH_CONTRACT], reads_per_s=args.reads_per_s, writes_per_s=args.writes_per_s)
    smaregi.bulk_delay_s = 0.5  # Smaregi works through a bulk request in the background
    shopify = ShopifyEmulator(config.shopify_api_key, config.shopify_api_secret)
    shopify.bulk_delay_s = 2.0
    seed(shopify, smaregi, args.customers)
    port = free_port()
    app_url = f"http://127.0.0.1:{port}"
    with fresh_database() as url, serve_in_thread(smaregi.create_app()) as smaregi_url, \
            serve_in_thread(shopify.create_app()) as shopify_url:
        environment = env(url, SMAREGI_ID_BASE=smaregi_url, SMAREGI_API_BASE=smaregi_url,
                          SHOPIFY_ADMIN_API_BASE=f"{shopify_url}/{{shop}}", SHOPIFY_APP_URL=app_url,
                          SMAREGI_WRITES_PER_S=str(args.writes_per_s), SMAREGI_READS_PER_S=str(args.reads_per_s),
                          SMAREGI_WEBHOOK_SECRET=WEBHOOK_SECRET)
        # As a merchant who followed the README: Smaregi's member events (bulk-* too) reach the app.
        smaregi.webhooks.configure(f"{app_url}/smaregi/webhooks", WEBHOOK_SECRET)
        services = Services.build(load_config({**environment, "DATABASE_URL": normalize_database_url(url)}))
        with web(environment, port, workers=1):
            token = app_home_id_token(config.shopify_api_key, config.shopify_api_secret, BENCH_SHOP)
            urllib.request.urlopen(f"{app_url}/?shop={BENCH_SHOP}&host=x&id_token={token}", timeout=30)
            with worker(environment) as proc:
                while not _directory_ready(services):
                    time.sleep(0.5)
                smaregi.reset_stats()
                with services.db.transaction() as s:
                    shop_id = s.scalar(select(Shop.id).where(Shop.domain == BENCH_SHOP))
                started = time.perf_counter()
                customer_import.start(services.db, shop_id)
                live: list[int] = []
                stop = threading.Event()

                def live_webhooks():
                    while not stop.wait(LIVE_EVERY_S):
                        cid = LIVE_BASE_ID + len(live)
                        send_webhook(app_url, config.shopify_api_secret, cid)
                        live.append(cid)

                sender = threading.Thread(target=live_webhooks, daemon=True)
                sender.start()
                last_print = 0.0
                while True:
                    status = customer_import.status(services.db, shop_id)
                    if status.state not in ("queued", "running"):
                        break
                    if time.perf_counter() - last_print > 15:
                        last_print = time.perf_counter()
                        print(f"  {time.perf_counter() - started:6.0f} s  {status.phase:6} counted {status.counted} "
                              f"linked {status.linked} created {status.created} held {status.held} "
                              f"failed {status.failed} time left {status.time_left_s} s", flush=True)
                    time.sleep(1)
                elapsed = time.perf_counter() - started
                stop.set()
                sender.join(5)
                time.sleep(3)  # the last live webhook
                rss = tree_peak_rss_mb(proc.pid)
        latencies = _live_latencies(services, live)
        services.db.dispose()
    writes = smaregi.stats["writes_by_second"]
    print(f"import of {args.customers} customers: {status.state} in {elapsed:.1f} s (goal ≤ 600 s at 50,000) — "
          f"counted {status.counted}, linked {status.linked}, created {status.created}, held {status.held}, "
          f"failed {status.failed}")
    print(f"worker peak RSS: {rss:.0f} MB (goal ≤ 200 MB)")
    if latencies:
        print(f"live webhook → member during the import: n={len(latencies)} p50={pct(latencies, 50) / 1000:.2f} s "
              f"p95={pct(latencies, 95) / 1000:.2f} s max={max(latencies) / 1000:.2f} s "
              f"(goal p50 ≤ 2 s, every one ≤ 10 s); "
              f"not synced: {len(live) - len(latencies)}")
    steady = [n for _, n in sorted(writes.items())[1:-1]]
    bulk_writes = smaregi.stats["bulk_requests"]
    print(f"Smaregi: {smaregi.stats['requests']} requests, {sum(writes.values())} writes "
          f"({bulk_writes} bulk with {smaregi.stats['bulk_members']} members, "
          f"{sum(writes.values()) - bulk_writes} single incl. tokens), "
          f"max {max(steady, default=0)} writes in a clock second (limit {args.writes_per_s}); "
          f"429s: {smaregi.stats['rate_limited']} (goal 0); refused duplicate codes: {smaregi.stats['duplicate_codes']}")
    print("figures from a shared 2-core machine: load generator, Postgres, web, worker and stand-ins contend")


def _directory_ready(services) -> bool:
    from app.models import SmaregiContract

    with services.db.transaction() as s:
        row = s.get(SmaregiContract, BENCH_CONTRACT)
        return bool(row and row.directory_import_completed_at)


def _live_latencies(services, live: list[int]) -> list[float]:
    with services.db.transaction() as s:
        return [ms for ms in s.scalars(select(MemberLink.last_latency_ms).where(
            MemberLink.shopify_customer_id.in_(live), MemberLink.state == "synced")) if ms is not None]


if __name__ == "__main__":
    main()
