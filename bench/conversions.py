"""Points → coupon against the stand-ins: one customer alone, then 20 customers converting at once.

The app runs under gunicorn on Postgres; the Smaregi and Shopify stand-ins run in their own
process (no added latency, limits raised so the quota is not what is measured). First `--alone`
conversions are made one after another, the customers in turn (the overhead a single shopper sees;
in turn, so no customer holds an unusual number of coupons, whose list each conversion writes). Then,
in each of `--rounds` bursts, all `--concurrency` customers convert 100 points at the same
moment (after one burst, reported apart, that opens the connections 20 at once need); then a
sustained phase has them convert back to back for `--sustained` seconds to find the ceiling.
Overhead is the total minus the time spent in Smaregi and Shopify calls (the app's
`Server-Timing`), split into the app's own time, the database and the wait for rate-limit slots.
"""
from __future__ import annotations

import argparse
import statistics
import threading
import time
import urllib.request
import uuid

import requests

from _harness import Samples, dev_config, free_port, synced_members, web
from app.dev.signing import app_home_id_token, proxy_params, proxy_query

SHOP = "bench.myshopify.com"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--alone", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--sustained", type=float, default=10)
    args = parser.parse_args()
    config = dev_config()
    customers = [4_000_000_000_000 + i for i in range(args.concurrency)]
    with synced_members(customers, points=10_000_000, POINTS_DAILY_LIMIT="100000000") as (environment, _, _):
        port = free_port()
        with web(environment, port, workers=2):
            token = app_home_id_token(config.shopify_api_key, config.shopify_api_secret, SHOP)
            urllib.request.urlopen(f"http://127.0.0.1:{port}/?shop={SHOP}&host=x&id_token={token}", timeout=10)
            sessions = {c: requests.Session() for c in customers}

            def convert(customer: int, samples: Samples):
                query = proxy_query(proxy_params(SHOP, customer), config.shopify_api_secret)
                samples.timed(lambda: sessions[customer].post(
                    f"http://127.0.0.1:{port}/proxy/conversions?{query}", timeout=30,
                    json={"points": 100, "idempotency_key": str(uuid.uuid4())}))

            for c in customers:  # each web process reads the settings and tokens once; not measured
                convert(c, Samples())
            alone = Samples()
            for i in range(args.alone):
                convert(customers[i % len(customers)], alone)
                time.sleep(0.05)
            print(f"alone: {args.alone} conversions one after another, the customers in turn, statuses {alone.statuses}")
            print(alone.report("conversion alone, overhead"))

            def burst(samples: Samples) -> float:  # all customers convert at the same moment, then a pause
                threads = [threading.Thread(target=convert, args=(c, samples)) for c in customers]
                begin = time.perf_counter()
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
                took = time.perf_counter() - begin
                time.sleep(1)
                return took

            # The first burst opens what 20 at once need and one at a time did not: pooled database
            # connections (whose statements Postgres prepares after a few runs) and connections to
            # Smaregi and Shopify. A web process pays that once, not per burst: reported apart.
            first = Samples()
            burst(first)
            print(f"first burst (opens the connections 20 at once need), statuses {first.statuses}")
            print(first.report(f"first burst of {len(customers)}, overhead"))
            bursts = Samples()
            burst_times = [burst(bursts) for _ in range(args.rounds)]
            print(f"bursts: {args.rounds} × {len(customers)} customers converting at once, statuses {bursts.statuses}; "
                  f"a burst completes in {statistics.median(burst_times) * 1000:.0f} ms (median) = "
                  f"{len(customers) / statistics.median(burst_times):.1f} conversions/s")
            print(bursts.report(f"conversions, bursts of {len(customers)} at once, overhead"))

            done, stop, lock = [0], time.perf_counter() + args.sustained, threading.Lock()

            def keep_converting(customer: int):
                while time.perf_counter() < stop:
                    convert(customer, Samples())
                    with lock:
                        done[0] += 1

            threads = [threading.Thread(target=keep_converting, args=(c,)) for c in customers]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            print(f"sustained: {done[0] / args.sustained:.1f} conversions/s with {len(customers)} customers "
                  f"converting back to back for {args.sustained:.0f} s (the machine's ceiling)")


if __name__ == "__main__":
    main()
