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
import threading
import time

import requests

from _harness import Samples, dev_config, free_port, summary, synced_members, web
from app.dev.signing import proxy_params, proxy_query

SHOP = "bench.myshopify.com"


def shoppers(port: int, secret: str, customers: list[int], concurrency: int, seconds: float, think: float):
    session = requests.Session()
    session.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=concurrency))
    next_customer = itertools.cycle(customers).__next__
    lock = threading.Lock()
    samples = Samples("pos")
    stop = time.perf_counter() + seconds

    def shopper():
        while time.perf_counter() < stop:
            with lock:
                customer = next_customer()
            query = proxy_query(proxy_params(SHOP, customer), secret)
            samples.timed(lambda: session.get(f"http://127.0.0.1:{port}/proxy/balance?{query}", timeout=10))  # noqa: B023
            time.sleep(think)

    threads = [threading.Thread(target=shopper) for _ in range(concurrency)]
    for t in threads:
        t.start()
        time.sleep(think / concurrency)  # shoppers arrive spread out, not in lockstep
    for t in threads:
        t.join()
    return samples


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--think", type=float, default=1.0)
    parser.add_argument("--members", type=int, default=1000)
    args = parser.parse_args()
    config = dev_config()
    customers = [5_000_000_000_000 + i for i in range(args.members)]
    with synced_members(customers, points=1250) as (environment, smaregi, _):
        port = free_port()
        with web(environment, port, workers=2):
            for latency in (0.0, 0.6):
                requests.delete(f"{smaregi}/_emulator/faults", timeout=5)
                if latency:
                    requests.post(f"{smaregi}/_emulator/faults", timeout=5, json={
                        "match": r"GET /sb_bench/pos/(customers/point|customers/\d+|transactions)", "latency_s": latency})
                samples = shoppers(port, config.shopify_api_secret, customers, args.concurrency, args.seconds,
                                   args.think)
                print(f"POS +{latency * 1000:.0f} ms: {args.concurrency} shoppers, {args.think}s between loads, "
                      f"{len(samples.totals) / args.seconds:.1f} loads/s, statuses {samples.statuses}")
                print("  " + summary("total", samples.totals))
                print("  " + summary("app overhead (total − Smaregi)", samples.overheads))


if __name__ == "__main__":
    main()
