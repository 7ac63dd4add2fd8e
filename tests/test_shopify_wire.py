"""The Shopify client's wire format, from recorded interactions (tests/cassettes/README.md).

Token exchange and refresh go through `shopifyapp`; GraphQL through our AdminClient. Cassettes
carry the https://{shop}.myshopify.com URLs shopifyapp builds, with secrets and tokens scrubbed.
"""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import update

from app import create_app, migrate
from app.dev.signing import app_home_id_token
from app.models import Shop, utcnow
from app.shopify.discounts import CodeRequest, Discounts

from .conftest import SHOP
from .vcr_support import RECORDING, cassettes

JST = timezone(timedelta(hours=9))
CODE = CodeRequest(code="70934-AB12CD-500", title="Points 500 pt → 500 JPY (70934-AB12CD-500)",
                   customer_id=8840734670934, amount=500, starts_at=datetime(2026, 11, 23, 12, 0, tzinfo=JST),
                   ends_at=datetime(2026, 12, 23, 23, 59, 59, tzinfo=JST))


@pytest.fixture
def wire(tmp_path, make_services, request):
    url = f"sqlite:///{tmp_path / 'wire.db'}"
    migrate.upgrade(url)
    if RECORDING:
        em, live = request.getfixturevalue("shopify_em")
        em.add_customer(SHOP, CODE.customer_id, firstName="太郎")
        services = make_services(url, shopify_url=live)
        origins = {f"{live}/{SHOP}/": f"https://{SHOP}/"}  # vcrpy sees the routed URL; write Shopify's
    else:
        services = make_services(url)
        services.shop_tokens.admin_base = services.admin.admin_base = "https://{shop}"  # no emulator: cassette only
        origins = {}
    services.shop_tokens.after_install = None  # the shop profile read has its own cassette (test_shop_profile.py)
    cassette = cassettes("shopify", origins)

    return services, cassette


def install(services):
    token = app_home_id_token(services.config.shopify_api_key, services.config.shopify_api_secret, SHOP)
    resp = create_app(services=services).test_client().get(f"/?shop={SHOP}&host=x&id_token={token}")
    assert resp.status_code == 200


def test_token_exchange_and_refresh(wire):
    services, cassette = wire
    with cassette("token_exchange_and_refresh") as c:
        install(services)
        with services.db.transaction() as s:
            s.execute(update(Shop).values(access_token_expires_at=utcnow() + timedelta(seconds=30)))
        services.shop_tokens.forget(SHOP)
        services.shop_tokens.access_token(SHOP)
    exchange, refresh = (json.loads(r.body) for r in c.requests)
    assert c.requests[0].uri == f"https://{SHOP}/admin/oauth/access_token"
    assert exchange["grant_type"] == "urn:ietf:params:oauth:grant-type:token-exchange"
    assert exchange["requested_token_type"] == "urn:shopify:params:oauth:token-type:offline-access-token"
    assert exchange["subject_token_type"] == "urn:ietf:params:oauth:token-type:id_token"
    assert exchange["expiring"] == 1 and exchange["client_secret"] == "SCRUBBED"
    assert refresh["grant_type"] == "refresh_token" and refresh["refresh_token"] == "SCRUBBED"
    answer = json.loads(c.responses[0]["body"]["string"])
    assert {"access_token", "expires_in", "refresh_token", "refresh_token_expires_in", "scope"} <= set(answer)


def test_discount_code_create_find_and_delete(wire):
    services, cassette = wire
    discounts = Discounts(services.admin)
    with cassette("discount_code_lifecycle") as c:
        install(services)
        discount_id = discounts.create(SHOP, CODE)
        assert discounts.find(SHOP, CODE.code) == discount_id
        discounts.delete(SHOP, discount_id)
        assert discounts.find(SHOP, CODE.code) is None
    create = json.loads(c.requests[1].body)
    assert c.requests[1].uri == f"https://{SHOP}/admin/api/2026-10/graphql.json"
    assert "discountCodeBasicCreate(basicCodeDiscount: $input)" in create["query"]
    sent = create["variables"]["input"]
    assert sent["context"] == {"customers": {"add": ["gid://shopify/Customer/8840734670934"]}}
    assert sent["customerGets"]["value"]["discountAmount"] == {"amount": "500", "appliesOnEachItem": False}
    assert (sent["usageLimit"], sent["appliesOncePerCustomer"]) == (1, True)
    assert sent["endsAt"] == "2026-12-23T23:59:59+09:00"
    assert c.requests[1].headers["x-shopify-access-token"] == "SCRUBBED"


def test_the_coupon_list_is_written_whole_in_one_call(wire):
    services, cassette = wire
    discounts = Discounts(services.admin)
    with cassette("coupons_metafield") as c:
        install(services)
        discounts.set_coupons(SHOP, CODE.customer_id, [{"code": "A", "points": 100}])
        discounts.set_coupons(SHOP, CODE.customer_id, [{"code": "A", "points": 100}, {"code": "B", "points": 200}])
    graphql = [json.loads(r.body) for r in c.requests if b"graphql" in r.uri.encode()]
    assert all("metafieldsSet(metafields: $metafields)" in g["query"] for g in graphql)  # nothing read first
    writes = [g["variables"]["metafields"][0] for g in graphql]
    assert "compareDigest" not in writes[1]  # the ledger is the source of truth: the whole list, last write wins
    assert json.loads(writes[1]["value"]) == [{"code": "A", "points": 100}, {"code": "B", "points": 200}]
    assert (writes[0]["namespace"], writes[0]["key"], writes[0]["type"]) == ("loyalty", "coupons", "json")


def test_a_coupon_handed_back_is_checked_for_use_then_withdrawn(wire):
    services, cassette = wire
    discounts = Discounts(services.admin)
    with cassette("coupon_usage_and_withdrawal") as c:
        install(services)
        discount_id = discounts.create(SHOP, CODE)
        usage = discounts.usage(SHOP, CODE.code)
        assert (usage.discount_id, usage.used, usage.status) == (discount_id, 0, "ACTIVE")
        discounts.delete(SHOP, usage.discount_id)
        assert discounts.usage(SHOP, CODE.code) is None
    asked = json.loads(c.requests[2].body)
    assert "codeDiscountNodeByCode(code: $code)" in asked["query"] and "asyncUsageCount" in asked["query"]
    assert asked["variables"] == {"code": CODE.code}
    assert "discountCodeDelete(id: $id)" in json.loads(c.requests[3].body)["query"]
