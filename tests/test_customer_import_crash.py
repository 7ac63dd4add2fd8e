"""A worker process killed in the middle of an import: the next worker resumes it, nothing twice (Postgres)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest

from app.sync import customer_import

from .conftest import ROOT, make_env
from .import_support import make_world
from .test_customer_import import new_customers

pytestmark = pytest.mark.postgres


@pytest.fixture
def world(make_services, pg_url, smaregi_em, shopify_em):
    yield from make_world(make_services, pg_url, smaregi_em, shopify_em)


def start_worker(world, pg_url, log_path):
    env = {**os.environ, **make_env(pg_url, world.smaregi_url, world.shopify_url, SHOPIFY_APP_URL=world.app_url)}
    with open(log_path, "ab") as log:
        return subprocess.Popen([sys.executable, "-m", "app.cli", "worker"], env=env, cwd=ROOT, stdout=log,
                                stderr=subprocess.STDOUT)


def wait_for(predicate, timeout_s):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def test_a_killed_worker_s_import_is_resumed_by_the_next_and_nothing_is_done_twice(world, pg_url, tmp_path,
                                                                                   smaregi_em, shopify_em):
    world.smaregi_url, world.shopify_url = smaregi_em[1], shopify_em[1]
    world.install()
    world.directory_ready()
    new_customers(world, 2000)
    world.smaregi.bulk_delay_s = 0.3
    customer_import.start(world.services.db, world.shop_id)

    first = start_worker(world, pg_url, tmp_path / "worker.log")
    try:
        assert wait_for(lambda: world.status().created >= 300, 120), world.status()
        first.send_signal(signal.SIGKILL)  # no clean shutdown: leases and in-flight batches are left as they are
        first.wait(10)
        at_kill = world.status()
        assert at_kill.state == "running" and at_kill.created < 2000

        second = start_worker(world, pg_url, tmp_path / "worker.log")
        restarted = time.monotonic()
        try:
            log = tmp_path / "worker.log"
            assert wait_for(lambda: world.status().created > at_kill.created, 120), log.read_text()[-3000:]
            resumed_after = time.monotonic() - restarted
            assert wait_for(lambda: world.status().state == "done", 240), world.status()
        finally:
            second.send_signal(signal.SIGTERM)
            second.wait(15)
    finally:
        if first.poll() is None:
            first.kill()

    assert resumed_after < 120  # DESIGN: within 2 minutes of a worker running again
    final = world.status()
    assert final.contract_json() == {"state": "done", "counted": 2000, "linked": 0, "created": 2000, "held": 0,
                                     "failed": 0}
    codes = Counter(m["customerCode"] for m in world.members())
    assert len(codes) == 2000 and max(codes.values()) == 1
    # Nothing twice: no create or re-code of an existing member was even attempted, and no customer
    # was put in a second bulk request.
    assert world.smaregi.stats["duplicate_codes"] == 0 and world.smaregi.stats["bulk_members"] <= 2000
    assert all(link.state == "synced" for link in world.links().values())
