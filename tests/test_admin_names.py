"""`GET /admin/api/customers`: names read from Shopify when the admin shows them, for the token's
shop only, never stored; every other credential is refused."""
from __future__ import annotations

import time

import jwt
from sqlalchemy import MetaData, select

from app import create_app
from app.dev.signing import app_home_id_token

from .conftest import SHOP

OTHER = "other-shop.myshopify.com"
TARO = 8840734670934


def _client(services):
    client = create_app(services=services).test_client()
    for shop in (SHOP, OTHER):  # both installed, each with its own Shopify token
        token = app_home_id_token(services.config.shopify_api_key, services.config.shopify_api_secret, shop)
        assert client.get(f"/?shop={shop}&host=x&id_token={token}").status_code == 200
    return client


def _get(client, services, token=None, shop=SHOP, ids=str(TARO)):
    token = token or app_home_id_token(services.config.shopify_api_key, services.config.shopify_api_secret, shop)
    return client.get(f"/admin/api/customers?ids={ids}", headers={"Authorization": f"Bearer {token}"})


def test_names_come_from_the_shops_own_shopify_and_are_not_stored(services, shopify_em):
    shopify_em[0].add_customer(SHOP, TARO, firstName="太郎", lastName="山田")
    client = _client(services)
    resp = _get(client, services, ids=f"{TARO},123")
    assert resp.status_code == 200
    assert resp.json == {"customers": {str(TARO): {
        "name": "太郎 山田", "admin_url": f"https://admin.shopify.com/store/pointbridge-test/customers/{TARO}"}}}
    # Another shop's token asks its own Shopify, which has no such customer.
    assert _get(client, services, shop=OTHER).json == {"customers": {}}
    meta = MetaData()
    meta.reflect(services.db.engine)
    with services.db.engine.connect() as conn:
        for table in meta.sorted_tables:
            for row in conn.execute(select(table)):
                assert "山田" not in repr(tuple(row)), table.name


def test_every_other_credential_is_refused(services, shopify_em):
    shopify_em[0].add_customer(SHOP, TARO, firstName="太郎", lastName="山田")
    client = _client(services)
    key, secret = services.config.shopify_api_key, services.config.shopify_api_secret
    forged = app_home_id_token(key, "x" * 40, SHOP)
    assert client.get(f"/admin/api/customers?ids={TARO}").status_code == 401
    assert client.get(f"/admin/api/customers?ids={TARO}&id_token={app_home_id_token(key, secret, SHOP)}").status_code == 401
    for token in (forged, "not-a-jwt"):
        resp = _get(client, services, token=token)
        assert resp.status_code == 401 and "太郎" not in resp.get_data(as_text=True)


def test_a_customer_account_token_is_refused(services, shopify_em):
    shopify_em[0].add_customer(SHOP, TARO, firstName="太郎", lastName="山田")
    client = _client(services)
    key, secret = services.config.shopify_api_key, services.config.shopify_api_secret
    now = int(time.time())
    customer_account = jwt.encode({"aud": key, "dest": SHOP, "sub": f"gid://shopify/Customer/{TARO}",
                                   "exp": now + 300, "nbf": now - 5, "iat": now}, secret, algorithm="HS256")
    assert _get(client, services, token=customer_account).status_code == 401


def test_bad_ids_are_a_clear_error(services):
    client = _client(services)
    resp = _get(client, services, ids="1,abc")
    assert resp.status_code == 400 and resp.json["error"]["code"] == "invalid_request"


def test_when_shopify_fails_the_admin_still_answers_without_names(services, shopify_em):
    client = _client(services)
    shopify_em[0].add_fault(match="CustomerNames", status=503)
    resp = _get(client, services)
    assert resp.status_code == 200 and resp.json == {"customers": {}}


def test_every_admin_page_verifies_its_id_token(services):
    from app.web.app_home import PAGES

    client = create_app(services=services).test_client()
    key, secret = services.config.shopify_api_key, services.config.shopify_api_secret
    for page in PAGES:
        forged = app_home_id_token(key, "x" * 40, SHOP)
        resp = client.get(f"{page.path}?shop={SHOP}&host=x&id_token={forged}")
        assert resp.status_code != 200 and "pb-admin" not in resp.get_data(as_text=True)
        good = client.get(f"{page.path}?shop={SHOP}&host=x&id_token={app_home_id_token(key, secret, SHOP)}")
        assert good.status_code == 200 and "<s-app-nav>" in good.get_data(as_text=True)


def test_another_shops_id_token_opens_no_admin_page(services):
    from app.web.app_home import PAGES

    client = create_app(services=services).test_client()
    other = app_home_id_token(services.config.shopify_api_key, services.config.shopify_api_secret, OTHER)
    for page in PAGES:
        resp = client.get(f"{page.path}?shop={SHOP}&host=x&id_token={other}")
        assert resp.status_code != 200 and "pb-admin" not in resp.get_data(as_text=True)
