"""The import's two surfaces and their one credential each: the admin API (App Home session token)
and the bulk callback URL (its random per-request token). Every other credential, a forged one and
another shop's are refused, and nothing changes."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid

import jwt
import pytest
from sqlalchemy import select

from app import create_app
from app.merchant import admin_shop
from app.models import CustomerImport, ImportBatch
from app.sync import customer_import

from .conftest import SHOP
from .helpers import proxy_url

OTHER = "other-shop.myshopify.com"


def session_token(services, shop=SHOP, secret=None, **claims):
    """An App Home session token as Shopify signs it."""
    now = int(time.time())
    body = {"iss": f"https://{shop}/admin", "dest": f"https://{shop}", "aud": services.config.shopify_api_key,
            "sub": "42", "exp": now + 60, "nbf": now - 5, "iat": now, "jti": str(uuid.uuid4()),
            "sid": str(uuid.uuid4()), **claims}
    return jwt.encode({k: v for k, v in body.items() if v is not None}, secret or services.config.shopify_api_secret,
                      "HS256")


@pytest.fixture
def web(services):
    return create_app(services=services).test_client()


def imports_of(services, domain):
    shop_id = admin_shop(services, domain).shop_id
    with services.db.transaction() as s:
        return [(i.id, i.state) for i in s.scalars(select(CustomerImport).where(CustomerImport.shop_id == shop_id))]


def other_credentials(services, body=b"{}"):
    """Every credential but the admin session token, as headers (and a path for the proxy one)."""
    secret = services.config.shopify_api_secret
    now = int(time.time())
    return {
        "none": {},
        "forged session token": {"Authorization": f"Bearer {session_token(services, secret='x' * 40)}"},
        "expired session token": {"Authorization": f"Bearer {session_token(services, exp=now - 60, nbf=now - 120)}"},
        "wrong audience": {"Authorization": f"Bearer {session_token(services, aud='someone-else')}"},
        "webhook hmac": {"X-Shopify-Hmac-Sha256": base64.b64encode(hmac.new(secret.encode(), body,
                                                                           hashlib.sha256).digest()).decode(),
                         "X-Shopify-Shop-Domain": SHOP, "X-Shopify-Topic": "customers/create"},
        "smaregi webhook secret": {"X-Pointbridge-Secret": "whatever-the-merchant-set"},
        "non-ascii bearer": {"Authorization": "Bearer トークン"},
    }


def customer_account_header(services):
    now = int(time.time())
    token = jwt.encode({"dest": SHOP, "aud": services.config.shopify_api_key, "exp": now + 300, "nbf": now - 5,
                        "iat": now, "sub": "gid://shopify/Customer/1"}, services.config.shopify_api_secret, "HS256")
    return {"Authorization": f"Bearer {token}"}


def test_a_customer_account_token_does_not_open_the_admin_import_api(services, web):
    customer_import.start(services.db, admin_shop(services, SHOP).shop_id)
    before = imports_of(services, SHOP)
    assert web.post("/admin/api/import/cancel", headers=customer_account_header(services)).status_code == 401
    assert imports_of(services, SHOP) == before


@pytest.mark.parametrize("method,path", [("GET", "/admin/api/import"), ("POST", "/admin/api/import"),
                                         ("POST", "/admin/api/import/cancel")])
def test_the_admin_import_api_refuses_every_other_credential(services, web, method, path):
    customer_import.start(services.db, admin_shop(services, SHOP).shop_id)
    before = imports_of(services, SHOP)
    for name, headers in other_credentials(services).items():
        resp = web.open(path, method=method, headers=headers, data=b"{}", content_type="application/json")
        assert resp.status_code == 401, name
        assert "import" not in (resp.get_json(silent=True) or {}), name
    signed = proxy_url(services.config.shopify_api_secret, "balance", 1).split("?", 1)[1]
    assert web.open(f"{path}?{signed}", method=method).status_code == 401  # an app-proxy signature
    assert imports_of(services, SHOP) == before  # nothing changed


def test_another_shops_token_sees_and_changes_only_its_own_import(services, web):
    ours, _ = customer_import.start(services.db, admin_shop(services, SHOP).shop_id)
    theirs = {"Authorization": f"Bearer {session_token(services, OTHER)}"}
    assert web.get("/admin/api/import", headers=theirs).get_json()["import"]["state"] == "none"
    assert web.post("/admin/api/import/cancel", headers=theirs).status_code == 200
    assert imports_of(services, SHOP) == [(ours.id, "queued")]  # ours was not cancelled
    started = web.post("/admin/api/import", headers=theirs)
    assert started.status_code == 202 and started.get_json()["import"]["id"] != ours.id
    assert imports_of(services, SHOP) == [(ours.id, "queued")]
    mine = {"Authorization": f"Bearer {session_token(services)}"}
    body = web.get("/admin/api/import", headers=mine).get_json()
    assert body["import"]["id"] == ours.id and body["import"]["state"] == "queued" and body["held"] == []


def test_the_admin_can_start_follow_and_cancel_an_import(services, web):
    mine = {"Authorization": f"Bearer {session_token(services)}"}
    assert web.get("/admin/api/import", headers=mine).get_json()["import"] == {
        "state": "none", "counted": 0, "linked": 0, "created": 0, "held": 0, "failed": 0, "id": None,
        "phase": None, "reason": None, "time_left_s": None, "created_at": None, "finished_at": None}
    first = web.post("/admin/api/import", headers=mine).get_json()["import"]
    again = web.post("/admin/api/import", headers=mine).get_json()["import"]
    assert first["state"] == "queued" and again["id"] == first["id"]  # one at a time
    assert web.post("/admin/api/import/cancel", headers=mine).get_json()["import"]["state"] == "cancelled"


def batch(services, domain, token):
    shop_id = admin_shop(services, domain).shop_id
    with services.db.transaction() as s:
        imp = CustomerImport(shop_id=shop_id, state="running", phase="match", lines_read=0)
        s.add(imp)
        s.flush()
        b = ImportBatch(import_id=imp.id, kind="create", token_hash=hashlib.sha256(token.encode()).hexdigest(),
                        state="sent")
        s.add(b)
        s.flush()
        return b.id


def callback_state(services, batch_id):
    with services.db.transaction() as s:
        return s.get(ImportBatch, batch_id).callback_at


def test_the_bulk_callback_needs_its_own_token(services, web):
    token, theirs = "t" * 43, "o" * 43
    ours = batch(services, SHOP, token)
    other = batch(services, OTHER, theirs)
    body = json.dumps({"requestId": 1, "result": []}).encode()
    wrong_paths = ["/smaregi/bulk-callback/" + "x" * 43, "/smaregi/bulk-callback/" + token[:-1],
                   "/smaregi/bulk-callback/" + token + "x", "/smaregi/bulk-callback/" + "t" * 500]
    for path in wrong_paths:
        for name, headers in {**other_credentials(services, body), "customer": customer_account_header(services),
                              "session token": {"Authorization": f"Bearer {session_token(services)}"}}.items():
            resp = web.post(path, data=body, headers=headers, content_type="application/json")
            assert resp.status_code == 404, (path, name)
    assert callback_state(services, ours) is None and callback_state(services, other) is None

    assert web.post(f"/smaregi/bulk-callback/{theirs}", data=body, content_type="application/json").status_code == 200
    assert callback_state(services, ours) is None  # another shop's token touches only its own batch
    assert callback_state(services, other) is not None

    assert web.get(f"/smaregi/bulk-callback/{token}").status_code == 405
    assert web.post(f"/smaregi/bulk-callback/{token}", data=b"not json").status_code == 200  # a hint, body unread
    assert callback_state(services, ours) is not None
