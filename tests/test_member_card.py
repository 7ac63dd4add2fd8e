"""The member card the register scans: the barcode and the QR decode to the member's code, and a
card is only ever the signed-in customer's own, on both shopper surfaces."""
from __future__ import annotations

import base64
import io
import json
import time
from urllib.parse import urlencode

import jwt
import pytest
import resvg_py
import zxingcpp
from PIL import Image

from app import create_app
from app.dev.signing import app_home_id_token, customer_account_token, proxy_params, proxy_query, webhook_hmac
from app.sync import directory
from app.sync.worker import Worker
from app.webhooks.dispatch import Delivery, record

from .conftest import CONTRACT, SHOP
from .helpers import customer, proxy_url

TARO, ALICE, STRANGER = 8840734670934, 8840734670935, 8840734670999


def decode(svg: str) -> list[tuple[str, str]]:
    """Rasterise the SVG as a browser would (resvg), then read it with ZXing, as a scanner would."""
    png = resvg_py.svg_to_bytes(svg_string=svg, width=800)
    image = Image.open(io.BytesIO(bytes(png)))
    return [(r.format.name, r.text) for r in zxingcpp.read_barcodes(image)]


@pytest.fixture
def app_client(services, smaregi_em):
    em, _ = smaregi_em
    em.add_member(CONTRACT, customerCode=str(TARO), lastName="山田", firstName="太郎", mailAddress="taro@example.com")
    em.add_member(CONTRACT, customerCode="S-000101", lastName="Smith", firstName="Alice",
                  mailAddress="alice@example.com")  # a store member Alice is linked to by e-mail, keeping its code
    directory.import_pages(services.db, services.smaregi.contract(CONTRACT))
    from sqlalchemy import select

    from app.models import Shop, ShopSettings

    client = create_app(services=services).test_client()
    record(services.db, services.config, Delivery(SHOP, "customers/create", "w1", None, None, customer(TARO)))
    with services.db.transaction() as s:
        s.add(ShopSettings(shop_id=s.scalar(select(Shop.id)), keep_store_member_codes=True))
    record(services.db, services.config, Delivery(SHOP, "customers/create", "w2", None, None,
                                                  customer(ALICE, email="alice@example.com", first="Alice")))
    Worker(services, "w").drain()
    return client


def proxy_card(client, services, who, **kw):
    return client.get(proxy_url(services.config.shopify_api_secret, "member-card", who), **kw)


def account_token(services, who, **kw):
    return customer_account_token(services.config.shopify_api_key, services.config.shopify_api_secret, SHOP, who, **kw)


def account_card(client, services, who=None, token=None, **kw):
    headers = {"Authorization": f"Bearer {token or account_token(services, who)}", **kw.pop("headers", {})}
    return client.get("/customer-account/member-card", headers=headers, **kw)


def test_the_barcode_and_the_qr_decode_to_the_members_code_on_the_storefront(services, app_client):
    resp = proxy_card(app_client, services, TARO)
    assert resp.status_code == 200
    card = resp.json
    assert card["member"]["code"] == str(TARO)
    assert decode(card["barcode"]["svg"]) == [("Code128", str(TARO))]
    assert decode(card["qr"]["svg"]) == [("QRCode", str(TARO))]
    for kind in ("barcode", "qr"):  # the data URI is the same drawing, for an <img> that cannot send headers
        uri = card[kind]["data_uri"]
        assert uri.startswith("data:image/svg+xml;base64,")
        assert base64.b64decode(uri.split(",", 1)[1]).decode() == card[kind]["svg"]
    assert 'fill="#fff"' in card["barcode"]["svg"] and "viewBox" in card["qr"]["svg"]  # white, scalable


def test_a_store_members_own_code_is_what_the_card_carries(services, app_client):
    card = account_card(app_client, services, ALICE).json
    assert card["member"]["code"] == "S-000101"
    assert decode(card["barcode"]["svg"]) == [("Code128", "S-000101")]
    assert decode(card["qr"]["svg"]) == [("QRCode", "S-000101")]


def test_the_card_is_cached_by_this_browser_only_and_revalidated(services, app_client):
    first = proxy_card(app_client, services, TARO)
    assert first.headers["Cache-Control"] == "private, no-cache"
    etag = first.headers["ETag"]
    again = proxy_card(app_client, services, TARO, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.data == b""
    # Another customer on the same browser sends Taro's ETag: they get their own card, not a 304.
    other = account_card(app_client, services, ALICE, headers={"If-None-Match": etag})
    assert other.status_code == 200 and other.json["member"]["code"] == "S-000101"
    assert other.headers["ETag"] != etag
    assert other.headers["Access-Control-Allow-Origin"] == "*"


def test_a_customer_without_a_member_gets_not_registered(services, app_client):
    resp = proxy_card(app_client, services, STRANGER)
    assert resp.status_code == 404 and resp.json["error"]["code"] == "not_registered"
    assert resp.headers["Cache-Control"].startswith("no-store")


def test_another_customers_card_is_never_served(services, app_client):
    config = services.config
    secret, key = config.shopify_api_secret, config.shopify_api_key
    # The proxy: only the signed logged_in_customer_id counts.
    smuggled = app_client.get(proxy_url(secret, "member-card", ALICE, extra={"customer_id": str(TARO)}))
    assert smuggled.json["member"]["code"] == "S-000101"
    params = proxy_params(SHOP, ALICE)
    query = proxy_query(params, secret)
    swapped = query.replace(f"logged_in_customer_id={ALICE}", f"logged_in_customer_id={TARO}")
    forged_proxy = app_client.get(f"/proxy/member-card?{swapped}")
    forged_hmac = app_client.get(f"/proxy/member-card?{urlencode({**params, 'signature': '0' * 64})}")
    unsigned = app_client.get(f"/proxy/member-card?{urlencode(params)}")
    wrong_secret = app_client.get(f"/proxy/member-card?{proxy_query(proxy_params(SHOP, TARO), 'not-the-secret')}")
    for resp in (forged_proxy, forged_hmac, unsigned, wrong_secret):  # non-ASCII: h1's verification fix
        assert resp.status_code == 401 and resp.json["error"]["code"] == "invalid_signature", resp.json

    # The customer-account surface: only a customer-account token, and only its own `sub`.
    now = int(time.time())
    claims = {"dest": SHOP, "aud": key, "exp": now + 300, "nbf": now - 5, "iat": now, "jti": "j",
              "sub": f"gid://shopify/Customer/{TARO}"}
    forged = jwt.encode(claims, "a-forged-secret-that-is-not-the-apps-0123", "HS256")
    wrong_audience = jwt.encode({**claims, "aud": "another-app"}, secret, "HS256")
    expired = account_token(services, TARO, now=now - 3600)
    # (An App Home token or a non-customer `sub` here is issue 10's verification fix, on h1's branch.)
    refused = [account_card(app_client, services, token=t) for t in (forged, wrong_audience, expired)]
    assert [r.status_code for r in refused] == [401] * 3
    assert all(r.json["error"]["code"] == "invalid_signature" for r in refused)
    assert account_card(app_client, services, token=account_token(services, None)).json["error"]["code"] == \
        "not_logged_in"
    # Other surfaces' credentials on this endpoint.
    body = json.dumps({}).encode()
    hmac_only = app_client.get("/customer-account/member-card",
                               headers={"X-Shopify-Hmac-Sha256": webhook_hmac(body, secret)})
    smaregi_secret = app_client.get("/customer-account/member-card", headers={"X-Pointbridge-Secret": "anything"})
    proxy_signed = app_client.get(f"/customer-account/member-card?{proxy_query(proxy_params(SHOP, TARO), secret)}")
    app_home = app_home_id_token(key, secret, SHOP)
    app_home_on_proxy = app_client.get("/proxy/member-card", headers={"Authorization": f"Bearer {app_home}"})
    for resp in (hmac_only, smaregi_secret, proxy_signed, app_home_on_proxy):
        assert resp.status_code == 401 and "member" not in resp.json
    assert account_card(app_client, services, TARO).json["member"]["code"] == str(TARO)  # his own, still
