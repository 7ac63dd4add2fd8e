"""Second independent review: reproductions. Each test fails against the reviewed code (main at
0463731) because of the finding its comment names, and passes once that finding is fixed."""
from __future__ import annotations

import json

from app.dev.signing import app_home_id_token, customer_account_token, proxy_params, proxy_query

from .conftest import SHOP
from .helpers import deliver, proxy_url
from .test_online_earning import TARO, order, pg_shopper, shopper  # noqa: F401  (fixtures)


def _admin(s, method, path, **kw):
    cfg = s.services.config
    token = app_home_id_token(cfg.shopify_api_key, cfg.shopify_api_secret, SHOP)
    return s.client.open(f"/admin/api{path}", method=method, headers={"Authorization": f"Bearer {token}"}, **kw)


def _coupon(s, points=500):
    resp = s.convert(points)
    assert resp.status_code == 201, resp.json
    return resp.json["conversion"]


# probe
def test_probe_nul_return_proxy(pg_shopper):
    s = pg_shopper
    resp = s.client.post(proxy_url(s.services.config.shopify_api_secret, "conversions/ab%00cd/return", TARO))
    assert resp.status_code == 404, resp.data


def test_probe_nul_return_account(pg_shopper):
    s = pg_shopper
    cfg = s.services.config
    token = customer_account_token(cfg.shopify_api_key, cfg.shopify_api_secret, SHOP, TARO)
    resp = s.client.post("/customer-account/conversions/ab%00cd/return", headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 404, resp.data


def test_probe_nul_admin_q(pg_shopper):
    resp = _admin(pg_shopper, "GET", "/conversions?q=%00")
    assert resp.status_code < 500, resp.data
    resp = _admin(pg_shopper, "GET", "/conversions?status=%00")
    assert resp.status_code < 500, resp.data


def test_probe_nul_admin_review(pg_shopper):
    resp = _admin(pg_shopper, "POST", "/conversions/a%00b/review", json={"points_were_deducted": False})
    assert resp.status_code == 404, resp.data


def test_probe_nul_order_name(pg_shopper):
    s = pg_shopper
    o = order(subtotal="1000")
    o["name"] = "#50\u000001"
    resp = deliver(s.client, s.services.config.shopify_api_secret, "orders/paid", o)
    assert resp.status_code in (200, 400), resp.data


def test_probe_nul_code(pg_shopper):
    s = pg_shopper
    o = order(subtotal="1000", codes=["AB\u0000C"])
    resp = deliver(s.client, s.services.config.shopify_api_secret, "orders/paid", o)
    assert resp.status_code in (200, 400), resp.data
    s.settle()


def test_probe_nul_customer(pg_shopper):
    from .helpers import customer
    s = pg_shopper
    c = customer(123456)
    c["first_name"] = "太\u0000郎"
    resp = deliver(s.client, s.services.config.shopify_api_secret, "customers/create", c)
    assert resp.status_code in (200, 400), resp.data


def test_probe_nul_key(pg_shopper):
    s = pg_shopper
    resp = s.convert(500, key="abcdefgh\u00a0\u3000")
    assert resp.status_code in (201, 400), resp.data
    resp = s.client.get(proxy_url(s.services.config.shopify_api_secret, "balance", TARO, extra={"locale": "x\x00"}))
    assert resp.status_code < 500, resp.data


def test_F2_expired_coupons_of_a_shop_that_cannot_be_reached_do_not_block_every_other_shops_give_backs(shopper):  # noqa: F811
    import uuid as _uuid
    from datetime import date, datetime, timedelta, timezone

    from sqlalchemy import update

    from app.models import Conversion, Shop
    from app.points.returns import EXPIRY_BATCH, give_back_expired

    coupon = _coupon(shopper)  # Taro, 1250 → 750
    now = datetime.now(timezone.utc)
    with shopper.services.db.transaction() as s:
        s.execute(update(Conversion).values(expires_at=now - timedelta(minutes=5)))
        gone = Shop(domain="gone-shop.myshopify.com", installed_at=now - timedelta(days=90),
                    uninstalled_at=now - timedelta(days=1))
        s.add(gone)
        s.flush()
        for i in range(EXPIRY_BATCH):  # its coupons expired before Taro's
            s.add(Conversion(id=str(_uuid.uuid4()), shop_id=gone.id, shopify_customer_id=1000 + i,
                             smaregi_customer_id=str(900 + i), idempotency_key=f"gone-key-{i:04d}", points=100,
                             amount=100, currency="JPY", code=f"0{i:04d}-GONEGO-100", local_date=date(2026, 10, 1),
                             status="completed", expires_at=now - timedelta(days=2), metafield_recorded=True))
    for _ in range(3):  # three runs of the job (15 minutes of the worker)
        give_back_expired(shopper.services)
    shopper.settle()
    [listed] = shopper.conversions()["conversions"]
    assert listed["status"] == "expired" and shopper.balance() == 1250, (listed["status"], shopper.balance())
