"""The embedded admin's API: session tokens, one shop's data only, validated settings, operations."""
from __future__ import annotations

import pytest
from sqlalchemy import select, update

from app import create_app
from app.dev.signing import app_home_id_token
from app.models import Conversion, MemberLink, Shop, ShopSettings
from app.sync.worker import Worker
from app.webhooks.dispatch import Delivery, record

from .conftest import CONTRACT, SHOP
from .helpers import customer

OTHER = "other-shop.myshopify.com"
VALID = {"yen_per_point": 2, "points_unit": 50, "points_minimum": 100,
         "points_daily_limit": 5000, "coupon_valid_days": 14, "blank_name_placeholder": "未入力",
         "rank_labels": {"gold": {"ja": "ゴールド会員", "en": "Gold Member"}},
         "keep_store_member_codes": True, "sync_enabled": True}


@pytest.fixture
def admin(services, smaregi_em):
    app = create_app(services=services)
    client = app.test_client()

    def call(method, path, shop=SHOP, token=None, **kw):
        token = token or app_home_id_token(services.config.shopify_api_key, services.config.shopify_api_secret, shop)
        return client.open(f"/admin/api{path}", method=method, headers={"Authorization": f"Bearer {token}"}, **kw)
    return call


def failed_link(services, smaregi_em):
    """A customer the contract cannot accept (it demands a birth date Shopify does not have)."""
    smaregi_em[0].contracts[CONTRACT].required_columns["birthDate"] = "1"
    from app.sync import directory

    directory.import_pages(services.db, services.smaregi.contract(CONTRACT))
    record(services.db, services.config, Delivery(SHOP, "customers/create", "w1", None, None, customer()))
    Worker(services, "w").drain()


def test_no_token_or_an_expired_one_is_refused_with_the_retry_header(services, admin):
    client = create_app(services=services).test_client()
    assert client.get("/admin/api/dashboard").status_code == 401
    stale = app_home_id_token(services.config.shopify_api_key, services.config.shopify_api_secret, SHOP, ttl_s=-60)
    resp = admin("GET", "/dashboard", token=stale)
    assert resp.status_code == 401 and resp.headers["X-Shopify-Retry-Invalid-Session-Request"] == "1"
    forged = app_home_id_token(services.config.shopify_api_key, "x" * 40, SHOP)
    assert admin("GET", "/dashboard", token=forged).status_code == 401


def test_another_shops_token_never_sees_or_changes_this_shops_data(services, admin, smaregi_em):
    failed_link(services, smaregi_em)
    assert len(admin("GET", "/sync/problems").json["problems"]) == 1
    assert admin("GET", "/sync/problems", shop=OTHER).json["problems"] == []
    link_id = admin("GET", "/sync/problems").json["problems"][0]["link_id"]
    assert admin("POST", "/sync/retry", shop=OTHER, json={"link_ids": [link_id]}).json["queued"] == 0
    assert admin("GET", "/dashboard", shop=OTHER).json["members"]["failed"] == 0
    with services.db.transaction() as s:
        assert s.scalar(select(MemberLink.state)) == "failed"


def test_settings_are_validated_field_by_field_and_nothing_is_saved_on_error(services, admin):
    before = admin("GET", "/settings").json
    bad = {**VALID, "points_minimum": 120, "coupon_valid_days": 0, "yen_per_point": "two",
           "blank_name_placeholder": ""}
    resp = admin("PUT", "/settings", json=bad)
    assert resp.status_code == 422
    assert set(resp.json["errors"]) == {"points_minimum", "coupon_valid_days", "yen_per_point",
                                        "blank_name_placeholder"}
    assert resp.json["errors"]["points_minimum"] == {"code": "minimum_not_multiple", "params": {"unit": "50"},
                                                      "message": "The minimum must be a multiple of the unit (50)."}
    assert admin("GET", "/settings").json == before
    saved = admin("PUT", "/settings", json=VALID).json
    assert (saved["points_unit"], saved["coupon_valid_days"], saved["smaregi_contract_id"]) == (50, 14, CONTRACT)
    with services.db.transaction() as s:
        own = s.scalar(select(ShopSettings))
        assert own.rank_labels == {"gold": {"ja": "ゴールド会員", "en": "Gold Member"}}


def test_retry_from_the_failures_list_syncs_the_member(services, admin, smaregi_em):
    failed_link(services, smaregi_em)
    [problem] = admin("GET", "/sync/problems").json["problems"]
    assert problem["state"] == "failed" and "birthDate" in problem["reason"] and problem["last_tried_at"]
    smaregi_em[0].contracts[CONTRACT].required_columns.clear()  # the merchant relaxed the rule
    assert admin("POST", "/sync/retry", json={}).json["queued"] == 1
    Worker(services, "w").drain()
    assert admin("GET", "/sync/problems").json["problems"] == []
    assert admin("GET", "/dashboard").json["members"]["synced"] == 1


def test_a_conflict_is_resolved_by_choosing_the_store_member(services, admin, smaregi_em):
    em, _ = smaregi_em
    a = em.add_member(CONTRACT, customerCode="S-1", lastName="佐藤", firstName="花子", mailAddress="taro@example.com")
    em.add_member(CONTRACT, customerCode="S-2", lastName="佐藤", firstName="華子", mailAddress="taro@example.com")
    from app.sync import directory

    directory.import_pages(services.db, services.smaregi.contract(CONTRACT))
    record(services.db, services.config, Delivery(SHOP, "customers/create", "w1", None, None, customer()))
    Worker(services, "w").drain()
    [conflict] = admin("GET", "/sync/problems").json["problems"]
    assert {c["customer_code"] for c in conflict["candidates"]} == {"S-1", "S-2"}
    bad = admin("POST", f"/sync/conflicts/{conflict['link_id']}/resolve", json={"smaregi_customer_id": "999"})
    assert bad.status_code == 400
    assert admin("POST", f"/sync/conflicts/{conflict['link_id']}/resolve",
                 json={"smaregi_customer_id": a["customerId"]}).json == {"resolved": True}
    Worker(services, "w").drain()
    assert em.contracts[CONTRACT].customers[a["customerId"]]["customerCode"] == "8840734670934"


def test_connection_test_says_what_is_wrong_in_plain_words(services, admin, smaregi_em):
    from .smaregi_connect_support import connect

    em, _ = smaregi_em
    ok = admin("POST", "/smaregi/test").json
    assert ok["ok"] is True and [c["name"] for c in ok["checks"]] == ["credentials", "members", "required_fields"]
    client = create_app(services=services).test_client()
    assert connect(client, services, em, SHOP, "sb_nope").status_code == 200  # a sign-in to a contract we can't use
    unknown = admin("POST", "/smaregi/test").json
    assert unknown["ok"] is False and "does not know the contract ID sb_nope" in unknown["checks"][0]["message"]
    assert connect(client, services, em, SHOP, CONTRACT).status_code == 200
    em.contracts[CONTRACT].plan = "standard"
    plan = admin("POST", "/smaregi/test").json
    assert "Premium Plus" in plan["checks"][-1]["message"]
    em.contracts[CONTRACT].plan = "premium_plus"
    em.contracts[CONTRACT].required_columns["birthDate"] = "1"
    required = admin("POST", "/smaregi/test").json
    assert required["ok"] is False and "birthDate" in required["checks"][-1]["message"]


def test_a_conversion_in_review_is_settled_by_the_merchant(services, admin, smaregi_em, shopify_em):
    from .test_conversions import Given

    given = Given(services, smaregi_em[0], shopify_em[0])
    assert given.convert(500).status_code == 201
    with services.db.transaction() as s:
        s.execute(update(Conversion).values(status="needs_review"))
    shopify_em[0].active_discounts(SHOP)[0]["status"] = "EXPIRED"  # deactivated when parked
    [row] = admin("GET", "/conversions?status=needs_review").json["conversions"]
    assert row["code"] is None  # undecided: no code is shown, not even to the merchant
    code = given.ledger()[0].code
    assert admin("POST", f"/conversions/{row['id']}/review", shop=OTHER,
                 json={"points_were_deducted": True}).status_code == 404  # not that shop's
    assert admin("POST", f"/conversions/{row['id']}/review", json={"points_were_deducted": True}).json["resolved"]
    assert [d["code"] for d in shopify_em[0].active_discounts(SHOP)] == [code]  # the code works again
    [found] = admin("GET", f"/conversions?q={code[6:12]}").json["conversions"]
    assert (found["status"], found["code"]) == ("completed", code)
    assert admin("GET", "/dashboard").json["conversions_today"] == {"count": 1, "points": 500}


def test_app_home_page_renders_in_the_admins_language(services):
    client = create_app(services=services).test_client()
    token = app_home_id_token(services.config.shopify_api_key, services.config.shopify_api_secret, SHOP)
    ja = client.get(f"/?shop={SHOP}&host=x&locale=ja&id_token={token}")
    assert ja.status_code == 200 and "スマレジ接続" in ja.get_data(as_text=True)
    assert "frame-ancestors https://pointbridge-test.myshopify.com https://admin.shopify.com" in \
        ja.headers["Content-Security-Policy"]
    en = client.get(f"/?shop={SHOP}&host=x&locale=en-US&id_token={token}").get_data(as_text=True)
    assert "Smaregi connection" in en and '<meta name="shopify-api-key"' in en
    with services.db.transaction() as s:
        assert s.scalar(select(Shop.domain)) == SHOP


def test_every_validation_and_reason_code_is_worded_in_both_languages():
    from app.merchant import FIELD_ERRORS
    from app.sync.reasons import REASONS
    from app.web.admin_text import EN, JA

    for code in FIELD_ERRORS:
        assert f"err_{code}" in EN and f"err_{code}" in JA, code
    for code in REASONS:  # a stored reason the admin recognises is said in its words
        assert f"reason_{code}" in EN, code
    assert set(EN) == set(JA)
