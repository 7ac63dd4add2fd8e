"""`python -m app.cli import …` as an operator (and the release/worker image) runs it: exit codes and
the status JSON are a contract (DESIGN "Installing on a store that already has customers")."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
from sqlalchemy import func, select

from app.models import CustomerImport

from .conftest import ROOT, SHOP, make_env
from .import_support import make_world
from .test_customer_import import new_customers

ZEROS = {"counted": 0, "linked": 0, "created": 0, "held": 0, "failed": 0}


def cli(env, *args):
    return subprocess.run([sys.executable, "-m", "app.cli", "import", *args], env={**os.environ, **env}, cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


def status(env, shop=SHOP):
    done = cli(env, "status", "--shop", shop, "--json")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1  # one JSON object, nothing else on stdout
    return json.loads(lines[0])


def imports(db_url):
    from app.db import Database

    db = Database(db_url, max_connections=2)
    try:
        with db.transaction() as s:
            return s.scalar(select(func.count()).select_from(CustomerImport))
    finally:
        db.dispose()


def test_status_before_any_import_is_none_with_zeros(db_url):
    env = make_env(db_url)
    assert status(env) == {"state": "none", **ZEROS}
    assert status(env, "never-seen.myshopify.com") == {"state": "none", **ZEROS}


def test_customers_queues_at_once_again_is_a_no_op_and_cancel_stops_it(db_url):
    env = make_env(db_url)
    started = time.monotonic()
    first = cli(env, "customers", "--shop", SHOP)
    assert first.returncode == 0, first.stderr
    assert time.monotonic() - started < 30  # it queues; the worker runs the import
    assert status(env) == {"state": "queued", **ZEROS}

    again = cli(env, "customers", "--shop", SHOP)
    assert again.returncode == 0 and "already queued" in again.stdout
    assert imports(db_url) == 1  # no second import

    stop = cli(env, "cancel", "--shop", SHOP)
    assert stop.returncode == 0
    assert status(env)["state"] == "cancelled"

    after = cli(env, "customers", "--shop", SHOP)
    assert after.returncode == 0 and "queued" in after.stdout
    assert status(env)["state"] == "queued" and imports(db_url) == 2  # after cancelled: a new import


def test_cancel_with_nothing_running_exits_zero_and_changes_nothing(db_url):
    env = make_env(db_url)
    done = cli(env, "cancel", "--shop", SHOP)
    assert done.returncode == 0 and "no import" in done.stdout
    assert status(env) == {"state": "none", **ZEROS}


def test_a_shop_without_a_token_queues_then_fails_with_a_reason(make_services, db_url, smaregi_em, shopify_em):
    for world in make_world(make_services, db_url, smaregi_em, shopify_em):
        env = make_env(db_url, smaregi_em[1], shopify_em[1], SHOPIFY_APP_URL=world.app_url)
        assert cli(env, "customers", "--shop", SHOP).returncode == 0
        world.directory_ready()
        world.run()
        assert status(env) == {"state": "failed", **ZEROS}
        human = cli(env, "status", "--shop", SHOP)
        assert human.returncode == 0 and "offline token" in human.stdout


def test_status_after_done_reports_the_counts_and_customers_starts_a_new_import(make_services, db_url, smaregi_em,
                                                                                shopify_em):
    for world in make_world(make_services, db_url, smaregi_em, shopify_em):
        env = make_env(db_url, smaregi_em[1], shopify_em[1], SHOPIFY_APP_URL=world.app_url)
        world.install()
        world.directory_ready()
        new_customers(world, 12)
        assert cli(env, "customers", "--shop", SHOP).returncode == 0
        world.run()
        assert status(env) == {"state": "done", "counted": 12, "linked": 0, "created": 12, "held": 0, "failed": 0}
        assert cli(env, "customers", "--shop", SHOP).returncode == 0
        assert status(env) == {"state": "queued", **ZEROS}
        world.run()
        # The second import finds every customer already a member.
        assert status(env) == {"state": "done", "counted": 12, "linked": 12, "created": 0, "held": 0, "failed": 0}


@pytest.mark.parametrize("args", [["customers"], ["status", "--json"], ["cancel"]])
def test_the_shop_is_required(db_url, args):
    done = cli(make_env(db_url), *args)
    assert done.returncode == 2 and "--shop" in done.stderr
