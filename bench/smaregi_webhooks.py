"""Smaregi webhooks: ack latency of POST /smaregi/webhooks (goal: well under Smaregi's 3 s), and a
rank edited at the register → the member directory (goal: the balance shows it within 10 s).

The app runs under gunicorn with the worker on Postgres; the Smaregi stand-in runs in this
process and sends its webhooks to the app. Open loop for the acks: a delivery every 1/rate s.
Defaults are short (about a minute in all); --seconds and --edits for more.
"""
from __future__ import annotations

import argparse
import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import requests
from sqlalchemy import select

from _harness import dev_config, env, free_port, fresh_database, serve_in_thread, summary, web, worker
from app.db import Database
from app.dev.smaregi_emulator import SmaregiEmulator
from app.models import DirectoryMember

CONTRACT = "sb_bench"
SECRET = "bench-smaregi-webhook-secret"


def acks(port: int, rate: float, seconds: float) -> tuple[list[float], dict[int, int]]:
    session = requests.Session()
    session.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=64))
    latencies: list[float] = []
    statuses: dict[int, int] = {}

    def send(i: int) -> None:
        body = json.dumps({"contractId": CONTRACT, "event": "pos:customers", "action": "edited",
                           "customerIds": [str(900_000 + i)]})
        headers = {"Content-Type": "application/json", "Smaregi-Event": "pos:customers",
                   "Smaregi-Contract-Id": CONTRACT, "Smaregi-Event-Id": str(uuid.uuid4()),
                   "X-Pointbridge-Secret": SECRET}
        started = time.perf_counter()
        resp = session.post(f"http://127.0.0.1:{port}/smaregi/webhooks", data=body, headers=headers, timeout=10)
        latencies.append((time.perf_counter() - started) * 1000)
        statuses[resp.status_code] = statuses.get(resp.status_code, 0) + 1

    begin = time.perf_counter()
    with ThreadPoolExecutor(max_workers=64) as pool:
        for i in range(int(rate * seconds)):
            delay = begin + i / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            pool.submit(send, i)
    return latencies, statuses


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=50)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--edits", type=int, default=20)
    args = parser.parse_args()
    config = dev_config()
    em = SmaregiEmulator(clients={config.smaregi_client_id: config.smaregi_client_secret}, contracts=[CONTRACT],
                         reads_per_s=10, writes_per_s=4)  # the sandbox limits
    member = em.add_member(CONTRACT, customerCode="R-1", lastName="山田", firstName="太郎", rank="r0")
    with fresh_database() as url, serve_in_thread(em.create_app()) as smaregi:
        port = free_port()
        environment = env(url, SMAREGI_WEBHOOK_SECRET=SECRET, SMAREGI_ID_BASE=smaregi, SMAREGI_API_BASE=smaregi)
        with web(environment, port):
            latencies, statuses = acks(port, args.rate, args.seconds)
            print(f"acks: {len(latencies)} deliveries at {args.rate:.0f}/s, statuses {statuses}")
            print("  " + summary("ack latency", latencies))
            # The acks above queued events for members that do not exist; start the worker on a clean queue.
            db = Database(url.replace("postgresql://", "postgresql+psycopg://"), max_connections=4)
            with db.transaction() as s:
                from app.models import SmaregiEvent

                s.query(SmaregiEvent).delete()
            em.webhooks.configure(f"http://127.0.0.1:{port}/smaregi/webhooks", SECRET)
            with worker(environment):
                took = []
                for n in range(1, args.edits + 1):
                    rank = f"r{n}"
                    started = time.perf_counter()
                    em.edit_member(CONTRACT, member["customerId"], rank=rank)
                    while time.perf_counter() - started < 15:
                        with db.transaction() as s:
                            if s.scalar(select(DirectoryMember.rank).where(
                                    DirectoryMember.smaregi_customer_id == member["customerId"])) == rank:
                                break
                        time.sleep(0.02)
                    took.append((time.perf_counter() - started) * 1000)
                    time.sleep(0.5)
            db.dispose()
    print(f"register edit → member directory: {args.edits} rank edits")
    print("  " + summary("latency", took))


if __name__ == "__main__":
    main()
