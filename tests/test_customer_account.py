"""/customer-account/*: the new customer accounts' backend — same rules, token instead of signature."""
from __future__ import annotations

import base64
import json
import time

import jwt
import pytest

from app.dev.signing import customer_account_token

from .conftest import SHOP
from .test_conversions import ALICE, TARO, Given, ten_tabs_convert_at_once


class AccountGiven(Given):
    """The conversion scenarios, driven through the customer-account extension's endpoints."""

    def token(self, who=TARO, **kw):
        config = self.services.config
        return customer_account_token(config.shopify_api_key, config.shopify_api_secret, SHOP, who, **kw)

    def call(self, method, path, who=TARO, token=None, **kw):
        headers = {"Authorization": f"Bearer {token or self.token(who)}"}
        return self.client.open(f"/customer-account/{path}", method=method, headers=headers, **kw)

    def convert(self, points, key=None, who=TARO, body=None, content_type="application/json"):
        payload = body if body is not None else {"points": points, "idempotency_key": key or f"acct-{time.time_ns()}"}
        return self.call("POST", "conversions", who, data=json.dumps(payload), content_type=content_type)

    def conversions(self, who=TARO):
        return self.call("GET", "conversions", who).json


@pytest.fixture
def given(services, smaregi_em, shopify_em):
    return AccountGiven(services, smaregi_em[0], shopify_em[0])


def test_a_valid_token_shows_the_customers_balance_with_cors(given):
    resp = given.call("GET", "balance?locale=ja")
    assert resp.status_code == 200 and resp.json["points"]["balance"] == 1250
    assert resp.headers["Access-Control-Allow-Origin"] == "*" and resp.headers["Cache-Control"].startswith("no-store")


def test_preflight_is_answered_without_a_token(given):
    resp = given.client.options("/customer-account/conversions", headers={
        "Origin": "https://extensions.shopifycdn.com", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type"})
    assert resp.status_code == 204
    assert "Authorization" in resp.headers["Access-Control-Allow-Headers"]
    assert resp.headers["Access-Control-Allow-Origin"] == "*"


def test_a_token_without_a_customer_is_not_logged_in(given):
    resp = given.call("GET", "balance", token=given.token(None))
    assert resp.status_code == 401 and resp.json["error"]["code"] == "not_logged_in"


def _alg_none(claims: dict) -> str:
    part = lambda d: base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()  # noqa: E731
    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


@pytest.mark.parametrize("case", ["expired", "wrong_aud", "wrong_secret", "alg_none", "garbage"])
def test_forged_or_stale_tokens_are_refused(given, case):
    config = given.services.config
    now = int(time.time())
    claims = {"dest": SHOP, "aud": config.shopify_api_key, "sub": f"gid://shopify/Customer/{TARO}",
              "exp": now + 300, "nbf": now - 5, "iat": now}
    token = {
        "expired": lambda: given.token(ttl_s=-60),
        "wrong_aud": lambda: jwt.encode({**claims, "aud": "someone-else"}, config.shopify_api_secret, "HS256"),
        "wrong_secret": lambda: jwt.encode(claims, "x" * 40, "HS256"),
        "alg_none": lambda: _alg_none(claims),
        "garbage": lambda: "not.a.token",
    }[case]()
    resp = given.call("GET", "balance", token=token)
    assert resp.status_code == 401 and resp.json["error"]["code"] == "invalid_signature"


def test_the_customer_is_only_who_sub_says(given):
    forged = given.convert(None, who=ALICE, body={"points": 100, "idempotency_key": "acct-alice-1",
                                                  "customer_id": TARO})
    assert forged.json["error"]["code"] == "insufficient_points"  # Alice's 80 points, not Taro's
    assert given.call("GET", "balance", who=ALICE).json["points"]["balance"] == 80
    assert given.balance() == 1250


def test_conversion_happy_path_and_replay(given):
    first = given.convert(500, key="acct-key-0001")
    assert first.status_code == 201 and first.json["conversion"]["balance_after"] == 750
    again = given.convert(500, key="acct-key-0001")
    assert again.status_code == 200 and again.json["conversion"] == first.json["conversion"]
    assert given.balance() == 750 and len(given.active_codes()) == 1
    assert given.conversions()["conversions"][0]["code"] == first.json["conversion"]["code"]


@pytest.mark.parametrize("points,code", [(150, "not_multiple_of_unit"), (2000, "insufficient_points")])
def test_the_same_rules_apply(given, points, code):
    assert given.convert(points).json["error"]["code"] == code
    assert given.balance() == 1250


@pytest.fixture
def pg_account(pg_url, smaregi_em, shopify_em, make_services):
    services = make_services(pg_url, smaregi_url=smaregi_em[1], shopify_url=shopify_em[1])
    return AccountGiven(services, smaregi_em[0], shopify_em[0])


@pytest.mark.postgres
def test_ten_concurrent_conversions_through_this_path_cannot_overspend(pg_account):
    headers = {"Authorization": f"Bearer {pg_account.token()}"}
    ten_tabs_convert_at_once(pg_account, lambda client, body: client.post(
        "/customer-account/conversions", data=body, content_type="application/json", headers=headers))
