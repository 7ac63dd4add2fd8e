"""GET /proxy/balance: the signed App Proxy shows a customer their live points, and only theirs."""
from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta, timezone
from urllib.parse import urlencode

import pytest
from sqlalchemy import select, update

from app import create_app
from app.dev.signing import proxy_query
from app.models import BalanceSnapshot, Shop, ShopSettings, utcnow
from app.shopify.verify import ShopifyVerifier
from app.sync.worker import Worker
from app.webhooks.dispatch import Delivery, record

from .conftest import CONTRACT, SHOP
from .helpers import customer, proxy_url

TARO = 8840734670934


@pytest.fixture
def shop(services, smaregi_em):
    """Taro is a synced member with 1,250 points, rank gold, and some history."""
    em, _ = smaregi_em
    member = em.add_member(CONTRACT, customerCode=str(TARO), lastName="山田", firstName="太郎",
                           mailAddress="taro@example.com", rank="gold", points=0, expires_on="2027-03-31")
    now = datetime.now(UTC)
    em.add_sale(CONTRACT, member["customerId"], earned=54, total=5400, when=now - timedelta(days=20))
    em.add_sale(CONTRACT, member["customerId"], earned=128, used=30, total=12800, when=now - timedelta(days=3))
    em.add_sale(CONTRACT, member["customerId"], earned=999, total=99900, when=now - timedelta(days=40))  # too old
    em.contracts[CONTRACT].points[member["customerId"]]["point"] = 1250
    from app.sync import directory

    directory.import_pages(services.db, services.smaregi.contract(CONTRACT))
    record(services.db, services.config, Delivery(SHOP, "customers/create", "w1", None, None, customer(TARO)))
    Worker(services, "w").drain()
    with services.db.transaction() as s:
        shop_id = s.scalar(select(Shop.id))
        s.add(ShopSettings(shop_id=shop_id, rank_labels={"gold": {"ja": "ゴールド会員", "en": "Gold Member"}}))
    return em, member


@pytest.fixture
def client(services):
    return create_app(services=services).test_client()


def get(client, services, customer_id=TARO, path="balance", **kw):
    return client.get(proxy_url(services.config.shopify_api_secret, path, customer_id, **kw))


def test_shopifys_documented_proxy_signature_verifies(monkeypatch):
    from shopify_app.verify import app_proxy

    monkeypatch.setattr(app_proxy.time, "time", lambda: 1317327555)
    query = ("extra=1&extra=2&shop=shop-name.myshopify.com&logged_in_customer_id=1&path_prefix=%2Fapps%2Fawesome_reviews"
             "&timestamp=1317327555&signature=4c68c8624d737112c91818c11017d24d334b524cb5c2b8ba08daa056f7395ddb")
    proof = ShopifyVerifier("key", "hush").app_proxy("GET", {}, f"https://app.example/proxy/extra/path/components?{query}")
    assert (proof.shop_domain, proof.customer_id) == ("shop-name.myshopify.com", 1)


def test_a_member_sees_their_live_balance_rank_expiry_and_history(services, shop, client):
    resp = get(client, services, extra={"locale": "en"})
    assert resp.status_code == 200
    assert resp.headers["Cache-Control"].startswith("no-store")
    body = resp.json
    assert body["member"] == {"code": str(TARO), "rank": "gold", "rank_label": "Gold Member"}
    assert body["points"] == {"balance": 1250, "expires_on": "2027-03-31"}
    assert [(h["label"], h["points"]) for h in body["history"]] == [
        ("Store purchase", 128), ("Points used in store", -30), ("Store purchase", 54)]
    assert body["history"][0]["date"] == (datetime.now(timezone(timedelta(hours=9))) - timedelta(days=3)).date().isoformat()
    assert body["conversion"] == {"unit": 100, "minimum": 100, "daily_limit": 10000, "remaining_today": 10000,
                                  "yen_per_point": 1}
    assert body["as_of"].endswith("+09:00") and body["stale"] is False
    assert body["pending"] == {"points": 0, "next_on": None}


@pytest.mark.parametrize("locale", ["ja", None])
def test_japanese_labels_when_the_storefront_asks_in_japanese_or_names_no_language(services, shop, client, locale):
    body = get(client, services, extra={"locale": locale} if locale else None).json
    assert body["member"]["rank_label"] == "ゴールド会員"
    assert body["history"][0]["label"] == "店舗でのお買い物"


@pytest.mark.parametrize("tamper", ["signature", "customer", "stale_timestamp", "repeat_shop", "repeat_timestamp",
                                    "repeat_signature", "no_signature"])
def test_anything_not_signed_by_shopify_is_refused(services, shop, client, tamper):
    secret = services.config.shopify_api_secret
    url = proxy_url(secret, "balance", TARO)
    if tamper == "signature":
        url = url[:-4] + "0000"
    elif tamper == "customer":
        url = url.replace(f"logged_in_customer_id={TARO}", "logged_in_customer_id=8840734670935")
    elif tamper == "stale_timestamp":
        url = proxy_url(secret, "balance", TARO, timestamp=int(time.time()) - 91)
    elif tamper.startswith("repeat_"):
        name = tamper.removeprefix("repeat_")
        url += "&" + urlencode({name: {"shop": "evil.myshopify.com", "timestamp": "1", "signature": "00"}[name]})
    elif tamper == "no_signature":
        url = url.split("&signature=")[0]
    resp = client.get(url)
    assert resp.status_code == 401 and resp.json["error"]["code"] == "invalid_signature"


def test_a_guest_is_not_logged_in(services, shop, client):
    resp = get(client, services, customer_id=None)
    assert resp.status_code == 401 and resp.json["error"]["code"] == "not_logged_in"


def test_a_customer_without_a_membership_is_told_to_register_at_a_store(services, shop, client):
    resp = get(client, services, customer_id=8840734670999)
    assert resp.status_code == 404
    assert resp.json["error"]["code"] == "not_registered" and "store" in resp.json["error"]["message"]


def test_a_customer_never_sees_another_customers_points(services, shop, client, smaregi_em):
    em, _ = smaregi_em
    em.add_member(CONTRACT, customerCode="8840734670935", lastName="Smith", firstName="Alice", points=80)
    assert get(client, services).json["points"]["balance"] == 1250  # Taro, now cached
    alice = get(client, services, customer_id=8840734670935).json
    assert alice["points"]["balance"] == 80 and alice["member"]["code"] == "8840734670935"
    # A body or extra parameter naming someone else changes nothing: only the signed id counts.
    forged = get(client, services, customer_id=8840734670935, extra={"customer_id": str(TARO)}).json
    assert forged["points"]["balance"] == 80


def test_reloads_are_coalesced_so_one_shopper_cannot_drain_the_quota(services, shop, client, smaregi_em):
    em, _ = smaregi_em
    before = em.stats["requests"]
    for _ in range(5):
        assert get(client, services).status_code == 200
    # Points, transactions and (no Smaregi webhooks configured, so nothing else keeps it current)
    # the member itself for its rank: three reads for five reloads.
    assert em.stats["requests"] - before == 3


def test_pos_down_is_503_and_pos_hanging_is_504_within_the_budget(services, shop, client, smaregi_em):
    em, _ = smaregi_em
    em.add_fault(match=r"/customers/point", status=500)
    resp = get(client, services)
    assert resp.status_code == 503 and resp.json["error"]["code"] == "pos_unavailable"
    em.clear_faults()
    em.add_fault(match=r"/customers/point", latency_s=5)
    started = time.monotonic()
    resp = get(client, services)
    assert time.monotonic() - started < 1.5
    assert resp.status_code == 504 and resp.json["error"]["code"] == "pos_timeout"


def test_a_429_during_a_balance_read_pauses_it_like_every_other_call(services, shop, client, smaregi_em):
    em, _ = smaregi_em
    fault = em.add_fault(match=r"/customers/point", status=429, count=1)  # Retry-After: 1
    before = em.stats["requests"]
    started = time.monotonic()
    resp = get(client, services)
    # The retry waits the pause out like any other call (no slot reserved beside the others lets it
    # through), and the pause outlasts the shopper's budget: an honest timeout, at once.
    assert resp.status_code == 504 and resp.json["error"]["code"] == "pos_timeout"
    assert time.monotonic() - started < 1.5
    assert fault.count == 0 and em.stats["requests"] - before <= 3  # the three reads; no retry sent


def test_a_recent_good_read_is_shown_as_stale_when_the_pos_fails(services, shop, client, smaregi_em):
    em, _ = smaregi_em
    fresh = get(client, services).json
    with services.db.transaction() as s:
        s.execute(update(BalanceSnapshot).values(fetched_at=utcnow() - timedelta(minutes=10)))
    em.add_fault(match=r"/customers/point", latency_s=5)
    started = time.monotonic()
    stale = get(client, services).json
    assert time.monotonic() - started < 1.5
    assert stale["stale"] is True and stale["points"] == fresh["points"]
    assert stale["as_of"] < fresh["as_of"]


def test_a_member_found_by_code_before_any_sync_is_shown(services, smaregi_em, client):
    em, _ = smaregi_em
    em.add_member(CONTRACT, customerCode=str(TARO), lastName="山田", firstName="太郎", points=700, rank="silver")
    body = get(client, services).json
    assert body["points"]["balance"] == 700 and body["member"]["rank_label"] == "silver"


def test_proxy_answers_do_not_depend_on_the_query_order(services, shop, client):
    params = {"shop": SHOP, "logged_in_customer_id": str(TARO), "path_prefix": "/apps/points",
              "timestamp": str(int(time.time())), "locale": "en"}
    query = proxy_query(params, services.config.shopify_api_secret)
    reordered = "&".join(reversed(query.split("&")))
    assert client.get(f"/proxy/balance?{reordered}").status_code == 200
