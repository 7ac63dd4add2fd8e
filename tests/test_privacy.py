"""Lifecycle and privacy webhooks, each checked in the database."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from app.dev.signing import app_home_id_token
from app.models import (
    BalanceSnapshot,
    Conversion,
    DataRequest,
    MemberLink,
    Shop,
    ShopSettings,
    WebhookDelivery,
)
from app.shopify.tokens import ShopNotAuthorized
from app.sync.worker import Worker, resume_paused

from .conftest import CONTRACT, SHOP
from .helpers import deliver, proxy_url
from .test_conversions import TARO, Given


@pytest.fixture
def given(services, smaregi_em, shopify_em):
    g = Given(services, smaregi_em[0], shopify_em[0])
    assert g.convert(500).status_code == 201
    g.client.get(proxy_url(services.config.shopify_api_secret, "balance", TARO))  # a cached balance too
    return g


def hook(given, topic, payload, **kw):
    return deliver(given.client, given.services.config.shopify_api_secret, topic, payload, **kw)


def count(given, model, *where) -> int:
    with given.services.db.transaction() as s:
        return s.scalar(select(func.count()).select_from(model).where(*where))


@pytest.mark.parametrize("topic", ["customers/data_request", "customers/redact", "shop/redact", "app/uninstalled"])
def test_every_lifecycle_topic_refuses_a_bad_hmac_with_401(given, topic):
    resp = hook(given, topic, {"shop_domain": SHOP, "customer": {"id": TARO}}, hmac="d3Jvbmc=")
    assert resp.status_code == 401
    assert count(given, MemberLink) == 1 and count(given, Shop) == 1


def test_uninstall_deletes_tokens_and_stops_work_and_reinstall_brings_it_back(given):
    assert hook(given, "app/uninstalled", {"id": 1, "domain": SHOP}).json["status"] == "uninstalled"
    with given.services.db.transaction() as s:
        shop = s.scalar(select(Shop))
        assert shop.access_token_enc is None and shop.refresh_token_enc is None and shop.uninstalled_at
    with pytest.raises(ShopNotAuthorized):
        given.services.shop_tokens.access_token(SHOP)
    hook(given, "customers/update", {"id": TARO, "first_name": "次郎", "last_name": "山田",
                                     "updated_at": "2026-11-21T10:00:00+09:00"})
    assert count(given, MemberLink, MemberLink.state == "paused") == 1  # recorded, not sent
    requests_before = given.smaregi.stats["requests"]
    Worker(given.services, "w").drain()
    assert given.smaregi.stats["requests"] == requests_before

    token = app_home_id_token(given.services.config.shopify_api_key, given.services.config.shopify_api_secret, SHOP)
    assert given.client.get(f"/?shop={SHOP}&host=x&id_token={token}").status_code == 200
    assert given.shopify.counts["token_exchange"] == 2
    assert resume_paused(given.services) == 1
    Worker(given.services, "w").drain()
    assert given.smaregi.member_by_code(CONTRACT, str(TARO))["firstName"] == "次郎"


def test_a_data_request_keeps_what_we_hold_for_the_merchant(given):
    resp = hook(given, "customers/data_request", {"shop_domain": SHOP, "customer": {"id": TARO},
                                                  "data_request": {"id": 9999}})
    assert resp.json["status"] == "data_request_recorded"
    with given.services.db.transaction() as s:
        request = s.scalar(select(DataRequest))
    assert request.request_id == "9999"
    assert request.export["member_link"]["customer_data_sent_to_smaregi"]["email"] == "taro@example.com"
    assert [c["points"] for c in request.export["conversions"]] == [500]


def test_customer_redact_deletes_their_personal_data_and_keeps_the_pos_member(given):
    hook(given, "customers/data_request", {"customer": {"id": TARO}, "data_request": {"id": 1}})
    resp = hook(given, "customers/redact", {"shop_domain": SHOP, "customer": {"id": TARO, "email": "taro@example.com"}})
    assert resp.json["status"] == "customer_redacted"
    for model in (MemberLink, BalanceSnapshot, DataRequest):
        assert count(given, model, model.shopify_customer_id == TARO) == 0, model.__name__
    with given.services.db.transaction() as s:
        conversion = s.scalar(select(Conversion))
    assert conversion.points == 500  # the ledger stays, with no name, e-mail, phone or address in it
    assert given.smaregi.member_by_code(CONTRACT, str(TARO)) is not None


def test_shop_redact_deletes_every_row_of_the_shop(given):
    with given.services.db.transaction() as s:
        s.add(ShopSettings(shop_id=s.scalar(select(Shop.id)), blank_name_placeholder="x"))
    hook(given, "customers/data_request", {"customer": {"id": TARO}})
    assert hook(given, "shop/redact", {"shop_id": 1, "shop_domain": SHOP}).json["status"] == "shop_redacted"
    for model in (Shop, ShopSettings, MemberLink, Conversion, BalanceSnapshot, DataRequest, WebhookDelivery):
        assert count(given, model) == 0, model.__name__


def test_a_malformed_compliance_body_is_400_and_changes_nothing(given):
    resp = hook(given, "customers/redact", {"shop_domain": SHOP, "customer": {"email": "x@example.com"}})
    assert resp.status_code == 400
    assert count(given, MemberLink) == 1
