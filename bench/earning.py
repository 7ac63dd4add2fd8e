"""Online earning at Smaregi's sandbox write limit (4/s): paid orders → points granted.

The app runs under gunicorn with one worker process on a fresh Postgres database; the Smaregi
stand-in enforces `--writes-per-s` like the sandbox, the Shopify stand-in answers the conversions.
Members are seeded already linked (their sync is not what is measured).

1. no backlog: orders arrive one at a time below the limit → webhook ack p50/p99 and
   paid → granted p50/p99 (webhook sent → the grant applied in Smaregi);
2. idle conversions: shoppers convert with nothing else running (the reference latency);
3. backlog: `--orders` paid orders for `--members` members arrive at once; while the worker drains
   them, shoppers keep converting → drain rate as % of the write limit, conversion latency;
4. double grants: every order granted exactly once (Smaregi's transactions against the orders).

Default: a short run (≈2 minutes); `--full` is the issue's size (1,000 orders, 200 members).
"""
from __future__ import annotations

import argparse
import json
import threading
import time
import urllib.request
import uuid
from collections import Counter
from datetime import timedelta

import requests
from sqlalchemy import func, select

from _harness import dev_config, env, free_port, fresh_database, pct, serve_in_thread, summary, web, worker
from app.config import load_config, normalize_database_url
from app.dev.shopify_emulator import ShopifyEmulator
from app.dev.signing import app_home_id_token, proxy_params, proxy_query, webhook_hmac
from app.dev.smaregi_emulator import SmaregiEmulator
from app.models import MemberLink, PointMovement, Shop, utcnow
from app.services import Services

SHOP, CONTRACT = "bench.myshopify.com", "sb_bench"


def order_payload(order_id: int, customer_id: int, yen: int) -> dict:
    return {"id": order_id, "name": f"#{order_id}", "updated_at": "2026-11-25T10:00:00+09:00",
            "financial_status": "paid", "fulfillment_status": None, "cancelled_at": None,
            "current_subtotal_price": str(yen), "customer": {"id": customer_id},
            "line_items": [{"id": 1, "gift_card": False, "price": str(yen), "quantity": 1}], "discount_codes": []}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--full", action="store_true", help="1,000 orders for 200 members (the issue's size)")
    parser.add_argument("--orders", type=int, default=120)
    parser.add_argument("--members", type=int, default=40)
    parser.add_argument("--trickle", type=int, default=20, help="orders sent one at a time, no backlog")
    parser.add_argument("--conversions", type=int, default=15, help="conversions per phase")
    parser.add_argument("--writes-per-s", type=int, default=4)
    args = parser.parse_args()
    if args.full:
        args.orders, args.members, args.trickle, args.conversions = 1000, 200, 60, 40
    config = dev_config()
    smaregi = SmaregiEmulator(clients={config.smaregi_client_id: config.smaregi_client_secret}, contracts=[CONTRACT],
                              reads_per_s=10, writes_per_s=args.writes_per_s)
    shopify = ShopifyEmulator(config.shopify_api_key, config.shopify_api_secret)
    customers = [5_000_000_000_000 + i for i in range(args.members)]
    with fresh_database() as url, serve_in_thread(smaregi.create_app()) as smaregi_url, \
            serve_in_thread(shopify.create_app()) as shopify_url:
        environment = env(url, SMAREGI_ID_BASE=smaregi_url, SMAREGI_API_BASE=smaregi_url,
                          SHOPIFY_ADMIN_API_BASE=f"{shopify_url}/{{shop}}",
                          SMAREGI_WRITES_PER_S=str(args.writes_per_s), SMAREGI_READS_PER_S="10",
                          POINTS_DAILY_LIMIT="100000000")
        services = Services.build(load_config({**environment, "DATABASE_URL": normalize_database_url(url)}))
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        with web(environment, port, workers=2), worker(environment):
            token = app_home_id_token(config.shopify_api_key, config.shopify_api_secret, SHOP)
            urllib.request.urlopen(f"{base}/?shop={SHOP}&host=x&id_token={token}", timeout=10)
            _seed_members(services, smaregi, shopify, customers)
            session = requests.Session()
            order_ids = iter(range(9_000_000, 10_000_000))
            sent_at: dict[int, float] = {}

            def send(customer: int) -> float:
                order_id = next(order_ids)
                body = json.dumps(order_payload(order_id, customer, 10_000)).encode()
                headers = {"X-Shopify-Topic": "orders/paid", "X-Shopify-Shop-Domain": SHOP,
                           "X-Shopify-Webhook-Id": str(uuid.uuid4()), "X-Shopify-Hmac-Sha256":
                           webhook_hmac(body, config.shopify_api_secret), "Content-Type": "application/json"}
                started = time.time()
                sent_at[order_id] = started
                resp = session.post(f"{base}/webhooks", data=body, headers=headers, timeout=10)
                assert resp.status_code == 200, resp.text
                return (time.time() - started) * 1000

            # 1. no backlog
            acks = []
            for i in range(args.trickle):
                acks.append(send(customers[i % len(customers)]))
                time.sleep(1.0)
            _wait_granted(services, len(sent_at), timeout_s=60)
            latencies = _grant_latencies(services, sent_at)
            print(f"no backlog: {args.trickle} paid orders, one per second")
            print("  " + summary("webhook ack", acks) + "  (goal p99 ≤ 25 ms)")
            print("  " + summary("paid → granted", latencies) + "  (goal p50 ≤ 1 s)")

            # 2. idle conversions
            idle = _convert(base, config, customers, args.conversions)
            print("  " + summary("conversion, idle", idle))

            # 3. backlog
            before = len(sent_at)
            threads = [threading.Thread(target=lambda c=c: [acks.append(send(c))])
                       for c in (customers[i % len(customers)] for i in range(args.orders))]
            started = time.time()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            during: list[float] = []
            converter = threading.Thread(target=lambda: during.extend(
                _convert(base, config, customers, args.conversions, pause_s=1.0)))
            converter.start()
            drained_at = _wait_granted(services, before + args.orders, timeout_s=args.orders / args.writes_per_s * 3 + 60)
            converter.join()
            elapsed = drained_at - started
            print(f"backlog: {args.orders} paid orders for {args.members} members at once, "
                  f"{len(during)} conversions meanwhile")
            print(f"  drained in {elapsed:.1f} s = {args.orders / elapsed:.2f} grants/s = "
                  f"{args.orders / elapsed / args.writes_per_s:.0%} of the {args.writes_per_s}/s write limit "
                  f"(goal ≥ 90 %; conversions' writes come out of the same limit)")
            by_second = smaregi.stats["writes_by_second"]
            used = [by_second.get(sec, 0) for sec in range(int(started) + 1, int(drained_at))]
            print(f"  Smaregi writes per second while draining: "
                  f"{dict(sorted(Counter(used).items()))} (writes/s: seconds)")
            print("  " + summary("conversion during the backlog", during) +
                  f"  (idle p99 {pct(idle, 99):.0f} ms, backlog p99 {pct(during, 99) / pct(idle, 99) - 1:+.0%}; "
                  "goal within 10 %)")

            # 4. double grants
            granted = [t for t in smaregi.contracts[CONTRACT].transactions if t["transactionHeadDivision"] == "6"]
            print(f"grants in Smaregi: {len(granted)} for {len(sent_at)} orders; "
                  f"double grants: {len(granted) - len(sent_at)}; 429s: {smaregi.stats['rate_limited']}")
        services.db.dispose()
    print("(figures from a shared 2-core machine: load generator, Postgres, app and stand-ins contend)")


def _seed_members(services, smaregi, shopify, customers) -> None:
    """Members already linked: this bench measures earning, not the member sync."""
    with services.db.transaction() as session:
        shop_id = session.scalar(select(Shop.id).where(Shop.domain == SHOP))
        for c in customers:
            member = smaregi.add_member(CONTRACT, customerCode=str(c), lastName="山田", firstName="太郎",
                                        points=1_000_000)
            shopify.add_customer(SHOP, c, firstName="太郎")
            session.add(MemberLink(shop_id=shop_id, shopify_customer_id=c, smaregi_customer_id=member["customerId"],
                                   member_code=str(c), state="synced", attempts=0))


def _wait_granted(services, count: int, timeout_s: float) -> float:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        with services.db.transaction() as session:
            done = session.scalar(select(func.count()).select_from(PointMovement).where(
                PointMovement.kind == "grant", PointMovement.state == "applied"))
        if done >= count:
            return time.time()
        time.sleep(0.05)
    raise SystemExit(f"bench: only {done} of {count} orders granted in {timeout_s:.0f} s")


def _grant_latencies(services, sent_at: dict[int, float]) -> list[float]:
    with services.db.transaction() as session:
        rows = session.execute(select(PointMovement.order_id, PointMovement.applied_at).where(
            PointMovement.kind == "grant", PointMovement.applied_at > utcnow() - timedelta(hours=1))).all()
    return [(applied.timestamp() - sent_at[order_id]) * 1000 for order_id, applied in rows if order_id in sent_at]


def _convert(base: str, config, customers: list[int], n: int, pause_s: float = 0.3) -> list[float]:
    out = []
    session = requests.Session()
    for i in range(n):
        query = proxy_query(proxy_params(SHOP, customers[i % len(customers)]), config.shopify_api_secret)
        started = time.perf_counter()
        resp = session.post(f"{base}/proxy/conversions?{query}", timeout=30,
                            json={"points": 100, "idempotency_key": str(uuid.uuid4())})
        out.append((time.perf_counter() - started) * 1000)
        if resp.status_code != 201:
            print(f"  conversion answered {resp.status_code}: {resp.text[:120]}")
        time.sleep(pause_s)
    return out


if __name__ == "__main__":
    main()
