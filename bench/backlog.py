"""Backlog drain: N queued customers against the emulator at 4 writes/s (Smaregi's sandbox limit).

The customers are recorded first with sync enabled (as webhooks would), then `--workers` worker
processes start together and share the contract's limit through Postgres. Prints the achieved
write rate against the limit and how many 429s Smaregi had to send.
"""
from __future__ import annotations

import argparse
import time
import uuid
from contextlib import ExitStack

from _harness import dev_config, env, fresh_database, serve_in_thread, worker
from app.config import load_config, normalize_database_url
from app.dev.smaregi_emulator import SmaregiEmulator
from app.services import Services
from app.sync.operations import status_counts
from app.webhooks.dispatch import Delivery, record


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--writes-per-s", type=int, default=4)
    args = parser.parse_args()
    config = dev_config()
    em = SmaregiEmulator(clients={config.smaregi_client_id: config.smaregi_client_secret}, contracts=["sb_bench"],
                         reads_per_s=10, writes_per_s=args.writes_per_s)
    with fresh_database() as url, serve_in_thread(em.create_app()) as smaregi:
        environment = env(url, SMAREGI_ID_BASE=smaregi, SMAREGI_API_BASE=smaregi,
                          SMAREGI_WRITES_PER_S=str(args.writes_per_s))
        services = Services.build(load_config({**environment, "DATABASE_URL": normalize_database_url(url)}))
        for i in range(args.customers):
            record(services.db, services.config, Delivery(
                "bench.myshopify.com", "customers/create", str(uuid.uuid4()), None, None,
                {"id": 6_000_000_000_000 + i, "first_name": "太郎", "last_name": "山田",
                 "email": f"taro{i}@example.com", "updated_at": "2026-11-20T10:00:00+09:00"}))
        print(f"backlog: {args.customers} customers queued; starting {args.workers} workers", flush=True)
        started = time.perf_counter()
        with ExitStack() as stack:
            for _ in range(args.workers):
                stack.enter_context(worker(environment))
            while status_counts(services.db)["synced"] < args.customers:
                time.sleep(1)
                if time.perf_counter() - started > args.customers / args.writes_per_s * 3 + 60:
                    raise SystemExit(f"backlog did not drain: {status_counts(services.db)}")
        elapsed = time.perf_counter() - started
        services.db.dispose()
    writes = sum(em.stats["writes_by_second"].values())
    busy = sorted(em.stats["writes_by_second"].items())
    steady = [n for _, n in busy[1:-1]]  # first and last seconds are partial
    print(f"drained {args.customers} in {elapsed:.1f} s with {args.workers} workers")
    print(f"writes (incl. token): {writes}; achieved {args.customers / elapsed:.2f} creates/s = "
          f"{args.customers / elapsed / args.writes_per_s:.0%} of the {args.writes_per_s}/s limit")
    print(f"steady-state writes per clock second: min {min(steady)}, max {max(steady)}; "
          f"429s from Smaregi: {em.stats['rate_limited']}")


if __name__ == "__main__":
    main()
