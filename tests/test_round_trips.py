"""The shopper's paths stay within their database round trips, counted by the same instrumentation
(`Server-Timing`) the benches print. Steady state: the shop's settings and the platform tokens are
already in memory, as they are for every request but the first in a process."""
from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import event, update

from app import create_app
from app.models import BalanceSnapshot, utcnow
from app.timing import parse

from .conftest import SHOP
from .helpers import customer, deliver, early_in_a_second, proxy_url
from .test_conversions import TARO, Given

# (statements, transactions) at most. Each Smaregi call takes a rate-limit slot: one statement in
# one transaction (app/smaregi/ratelimit.py), except a live balance's reads, which reserve theirs
# together in one. On SQLite the saga's write-ahead movement is a second statement where Postgres
# runs one (a CTE). Late in a clock second a shopper's slot also counts in the second it leaves (one
# more statement); the paths that call Smaregi are measured early in a second (`early_in_a_second`).
# A live balance: settings, snapshot and link 2 (1 tx); beside the Smaregi reads, today's conversions,
# pending points and our movements' labels 4 (1 tx); the 3 reads' slots 1 (1 tx); the snapshot 1 (1 tx).
LIVE_BALANCE = (8, 4)
CACHED_BALANCE = (5, 1)
# A conversion on Postgres: the checks 2 (the key, its refusal and today's points in one
# statement; the member link), 2 slots, the reservation 2 (insert, today's points again),
# `deducting` with its write-ahead movement 1 and the coupon list read 1, `completed` with the
# movement and the forgotten balance 1: six units of work, of which only the reservation is a
# transaction with BEGIN and COMMIT round trips (the rest are reads or one statement, autocommit).
# SQLite runs each CTE part as its own statement.
CONVERSION = {"postgresql": (9, 6), "sqlite": (12, 6)}
WEBHOOK_ACK = (3, 1)
ORDER_ACK = (2, 1)  # the order's upsert finds its shop and notifies the worker itself


@pytest.fixture
def given(services, smaregi_em, shopify_em):
    return Given(services, smaregi_em[0], shopify_em[0])


def counts(resp) -> tuple[int, int]:
    timing = parse(resp.headers["Server-Timing"])
    return int(timing["db.statements"]), int(timing["db.transactions"])


def balance(given):
    resp = given.client.get(proxy_url(given.services.config.shopify_api_secret, "balance", TARO))
    assert resp.status_code == 200
    return resp


def age_snapshot(given, seconds: float) -> None:
    with given.services.db.transaction() as s:
        s.execute(update(BalanceSnapshot).values(fetched_at=utcnow() - timedelta(seconds=seconds)))


def test_a_live_balance_read_is_within_its_round_trips(given):
    balance(given)  # the process's first request reads settings and tokens
    age_snapshot(given, 10)
    early_in_a_second()
    resp = balance(given)
    # Live: points, history and (no Smaregi webhooks configured here) the member's current rank.
    assert parse(resp.headers["Server-Timing"])["smaregi.calls"] == 3
    statements, transactions = counts(resp)
    assert statements <= LIVE_BALANCE[0] and transactions <= LIVE_BALANCE[1], (statements, transactions)


def test_a_reload_within_five_seconds_is_within_its_round_trips(given):
    balance(given)
    resp = balance(given)
    assert parse(resp.headers["Server-Timing"])["smaregi.calls"] == 0  # answered from the snapshot
    statements, transactions = counts(resp)
    assert statements <= CACHED_BALANCE[0] and transactions <= CACHED_BALANCE[1], (statements, transactions)


def test_a_conversion_is_within_its_round_trips(given):
    assert given.convert(100).status_code == 201  # warms the settings and both platforms' tokens
    early_in_a_second()
    resp = given.convert(100, key=str(uuid.uuid4()))
    assert resp.status_code == 201
    timing = parse(resp.headers["Server-Timing"])
    # Smaregi: the balance check and the deduction; Shopify: the code, and the coupon list written
    # whole from the ledger (nothing read first).
    assert (timing["smaregi.calls"], timing["shopify.calls"]) == (2, 2)
    statements, transactions = counts(resp)
    most = CONVERSION[given.services.db.engine.dialect.name]
    assert statements <= most[0] and transactions <= most[1], (statements, transactions)


@pytest.mark.postgres
@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)  # SQLite's transactions are local calls
def test_on_postgres_a_conversion_opens_one_transaction_the_reservation(given):
    """psycopg sends BEGIN as a round trip of its own, and COMMIT is another: only the reservation
    (an insert and the daily limit checked again, together or not at all) pays them."""
    db = given.services.db
    assert db.is_postgres
    assert given.convert(100).status_code == 201
    opened = []

    def begun(conn):
        if not conn.connection.dbapi_connection.autocommit:
            opened.append(conn)

    for engine in (db.engine, db.ephemeral):
        event.listen(engine, "begin", begun)
    try:
        assert given.convert(100, key=str(uuid.uuid4())).status_code == 201
    finally:
        for engine in (db.engine, db.ephemeral):
            event.remove(engine, "begin", begun)
    assert len(opened) == 1


def test_a_webhook_ack_is_within_its_round_trips(given):
    secret = given.services.config.shopify_api_secret
    assert deliver(given.client, secret, "customers/update", customer(TARO, minutes=1)).status_code == 200
    resp = deliver(given.client, secret, "customers/update", customer(TARO, minutes=2))
    assert resp.status_code == 200
    statements, transactions = counts(resp)
    assert statements <= WEBHOOK_ACK[0] and transactions <= WEBHOOK_ACK[1], (statements, transactions)


def test_an_order_webhook_ack_is_within_its_round_trips(given):
    from .test_online_earning import order

    secret = given.services.config.shopify_api_secret
    assert deliver(given.client, secret, "orders/paid", order(minutes=1)).status_code == 200
    resp = deliver(given.client, secret, "orders/updated", order(minutes=2))
    assert resp.status_code == 200
    statements, transactions = counts(resp)
    assert statements <= ORDER_ACK[0] and transactions <= ORDER_ACK[1], (statements, transactions)


def test_every_response_says_where_its_time_went_and_nothing_else(given):
    resp = create_app(services=given.services).test_client().get("/healthz")
    names = {part.split(";")[0].strip() for part in resp.headers["Server-Timing"].split(",")}
    assert names == {"app", "db", "smaregi", "shopify", "ratelimit"}
    assert SHOP not in resp.headers["Server-Timing"] and str(TARO) not in balance(given).headers["Server-Timing"]
