"""/proxy/balance for 20 concurrent shoppers: our overhead (total minus Smaregi time) and where it goes.

The app runs under gunicorn on Postgres; the Smaregi and Shopify stand-ins run in their own process
(so they do not share a GIL with the load generator), first answering at once, then with 500 ms
added to every Smaregi read. Each shopper loads a balance, reads it for `--think` seconds, and
loads another member's. Every load is a different member's, as on a real storefront, so every one
is a live read (the 5 s snapshot never answers). Members are synced first, as in production, so
the app goes straight to its parallel reads. The contract's read limit is raised so that we
measure our code, not the quota. The breakdown is the app's `Server-Timing` header.
"""
from __future__ import annotations

import argparse
import threading
import time

import requests

from _harness import Samples, dev_config, free_port, synced_members, web
from app.dev.signing import proxy_params, proxy_query

SHOP = "bench.myshopify.com"


def shoppers(port: int, secret: str, customers: list[int], concurrency: int, seconds: float, think: float):
    session = requests.Session()
    session.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=concurrency))
    unread = iter(customers)
    lock = threading.Lock()
    samples = Samples()
    stop = time.perf_counter() + seconds

    def shopper():
        while time.perf_counter() < stop:
            with lock:
                customer = next(unread, None)
            if customer is None:
                raise SystemExit("bench: every member was read once; pass a larger --members")
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
    args = parser.parse_args()
    config = dev_config()
    latencies = (0.0, 0.5)
    # Enough members that no one is read twice: at most one load per shopper per `think` seconds.
    per_phase = int(args.concurrency * (args.seconds / args.think + 2))
    customers = [5_000_000_000_000 + i for i in range(per_phase * len(latencies))]
    with synced_members(customers, points=1250) as (environment, smaregi, _):
        port = free_port()
        with web(environment, port, workers=2):
            for phase, latency in enumerate(latencies):
                requests.delete(f"{smaregi}/_emulator/faults", timeout=5)
                if latency:
                    requests.post(f"{smaregi}/_emulator/faults", timeout=5, json={
                        "match": r"GET /sb_bench/pos/(customers/point|customers/\d+|transactions)", "latency_s": latency})
                samples = shoppers(port, config.shopify_api_secret, customers[phase * per_phase:(phase + 1) * per_phase],
                                   args.concurrency, args.seconds, args.think)
                print(f"Smaregi +{latency * 1000:.0f} ms: {args.concurrency} shoppers, {args.think}s between loads, "
                      f"{len(samples.totals) / args.seconds:.1f} live loads/s of distinct members, "
                      f"statuses {samples.statuses}")
                print(samples.report(f"balance, app overhead, Smaregi {latency * 1000:.0f} ms"))


if __name__ == "__main__":
    main()
