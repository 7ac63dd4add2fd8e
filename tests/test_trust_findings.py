"""Issue 10's crossings between surfaces, each replayed as the attacker did it.

Each of these was open on the landed main (3c1163a); credentials are made by tests/credentials.py
the way Shopify makes them, never by the app.
"""
from __future__ import annotations

import json
import random
import time
from urllib.parse import urlencode

import pytest
from sqlalchemy import func, select

from app import create_app
from app.models import Conversion, Shop, ShopSettings

from . import credentials as cred
from .conftest import SHOP
from .helpers import customer
from .test_conversions import ALICE, TARO, Given

OTHER = "other-shop.myshopify.com"


@pytest.fixture
def given(services, smaregi_em, shopify_em):
    return Given(services, smaregi_em[0], shopify_em[0])


def keys(services) -> tuple[str, str]:
    return services.config.shopify_api_key, services.config.shopify_api_secret


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def customer_token(services, who=TARO, shop=SHOP, **claims) -> str:
    api_key, secret = keys(services)
    return cred.sign({**cred.customer_account_claims(api_key, shop, who), **claims}, secret)


def app_home_token(services, shop=SHOP, **claims) -> str:
    api_key, secret = keys(services)
    return cred.sign({**cred.app_home_claims(api_key, shop), **claims}, secret)


def conversion_count(services) -> int:
    with services.db.transaction() as s:
        return s.scalar(select(func.count()).select_from(Conversion))


# -- 1. a customer-account token opened the merchant admin API ------------------------------------
def test_a_customers_account_token_never_opens_the_merchant_admin(given):
    client, token = given.client, customer_token(given.services)
    with given.services.db.transaction() as s:
        before = s.scalar(select(ShopSettings.yen_per_point))
    raise_price = client.put("/admin/api/settings", headers=bearer(token), json={
        "smaregi_contract_id": "", "yen_per_point": 10_000, "points_unit": 100, "points_minimum": 100,
        "points_daily_limit": 10000, "coupon_valid_days": 30, "blank_name_placeholder": "x", "rank_labels": {},
        "keep_store_member_codes": True, "sync_enabled": True})
    assert raise_price.status_code == 401 and raise_price.json["error"]["code"] == "invalid_session"
    with given.services.db.transaction() as s:
        assert s.scalar(select(ShopSettings.yen_per_point)) == before
    given.convert(100)
    for path in ("/admin/api/settings", "/admin/api/conversions", "/admin/api/data-requests", "/admin/api/dashboard"):
        resp = client.get(path, headers=bearer(token))
        assert resp.status_code == 401, path
        assert "conversions" not in resp.json and str(TARO) not in resp.get_data(as_text=True)


def at_run_time(claims: dict) -> dict:
    """Claims without the removed ones (None), times computed now: parameters are made at collection,
    minutes before a test runs in a full suite."""
    return {k: v() if callable(v) else v for k, v in claims.items() if v is not None}


@pytest.mark.parametrize("claims,why", [
    ({"iss": None}, "no iss: a customer-account token"),
    ({"iss": f"https://{OTHER}/admin"}, "iss names another shop than dest"),
    ({"iss": f"https://{SHOP}"}, "iss is not the admin"),
    ({"dest": SHOP, "iss": f"{SHOP}/admin"}, "dest without https"),
    ({"sub": None}, "no sub"),
    ({"exp": None}, "no exp"),
    ({"nbf": None}, "no nbf"),
    ({"nbf": lambda: int(time.time()) + 120}, "not valid yet"),
])
def test_the_admin_api_takes_only_a_complete_app_home_token(services, claims, why):
    client = create_app(services=services).test_client()
    api_key, secret = keys(services)
    full = cred.app_home_claims(api_key, SHOP)
    token = cred.sign(at_run_time({**full, **claims}), secret)
    resp = client.get("/admin/api/settings", headers=bearer(token))
    assert resp.status_code == 401 and resp.json["error"]["code"] == "invalid_session", why
    with services.db.transaction() as s:
        assert s.scalar(select(func.count()).select_from(Shop)) == 0  # not even a shop row


def test_app_home_tokens_get_ten_seconds_of_leeway_and_the_retry_header_after(services):
    client = create_app(services=services).test_client()
    just_expired = app_home_token(services, exp=int(time.time()) - 5)
    assert client.get("/admin/api/settings", headers=bearer(just_expired)).status_code == 200
    expired = app_home_token(services, exp=int(time.time()) - 30)
    resp = client.get("/admin/api/settings", headers=bearer(expired))
    assert resp.status_code == 401 and resp.headers["X-Shopify-Retry-Invalid-Session-Request"] == "1"


# -- 3. a parameter name holding "=" re-split to name another customer ------------------------------
def reading_of(query: str, secret: str, signed_params: dict) -> str:
    """The query as the attacker sends it, carrying the signature Shopify made for `signed_params`."""
    return f"{query}&signature={cred.proxy_signature(signed_params, secret)}"


def resplit_attack(secret: str, alice: int, taro: int) -> tuple[dict, str]:
    """Alice adds a parameter named `a=1logged_in_customer_id` with value `<taro>m` to her own
    storefront request; Shopify signs it with her id. The same signed text, split differently,
    names Taro as `logged_in_customer_id` and parks Alice's id under `mlogged_in_customer_id`."""
    now = str(int(time.time()))
    signed = {"a=1logged_in_customer_id": f"{taro}m", "logged_in_customer_id": str(alice),
              "path_prefix": "/apps/points", "shop": SHOP, "timestamp": now}
    resplit = {"a": "1", "logged_in_customer_id": str(taro), "mlogged_in_customer_id": str(alice),
               "path_prefix": "/apps/points", "shop": SHOP, "timestamp": now}
    assert cred.proxy_signature_base(signed) == cred.proxy_signature_base(resplit)  # the attack is real
    return signed, reading_of(urlencode(resplit), secret, signed)


def test_a_resplit_query_cannot_name_another_customer(given):
    secret = keys(given.services)[1]
    signed, forged = resplit_attack(secret, ALICE, TARO)
    for path in ("balance", "conversions"):
        resp = given.client.get(f"/proxy/{path}?{forged}")
        assert resp.status_code == 401 and resp.json["error"]["code"] == "invalid_signature", path
        assert str(TARO) not in resp.get_data(as_text=True)
    before = conversion_count(given.services)
    resp = given.client.post(f"/proxy/conversions?{forged}", data=json.dumps({"points": 500, "idempotency_key": "k-1"}),
                             content_type="application/json")
    assert resp.status_code == 401 and conversion_count(given.services) == before and given.balance() == 1250
    # Alice's own request, the one Shopify signed, is refused too: its parameter name holds "=".
    own = given.client.get(f"/proxy/balance?{reading_of(urlencode(signed), secret, signed)}")
    assert own.status_code == 401 and own.json["error"]["code"] == "invalid_signature"


@pytest.mark.parametrize("case", ["name_holds_equals", "value_holds_equals", "identity_text_across_a_value",
                                  "identity_text_in_a_name", "customer_not_digits"])
def test_queries_that_could_be_read_two_ways_are_refused(given, case):
    secret = keys(given.services)[1]
    base = cred.proxy_params(SHOP, ALICE)
    params = {
        "name_holds_equals": {**base, "x=y": "1"},
        "value_holds_equals": {**base, "x": "y=1"},
        "identity_text_across_a_value": {**base, "a": "xlogged_in_customer_", "id": str(TARO)},
        "identity_text_in_a_name": {**base, "xshop": "1"},
        "customer_not_digits": {**base, "logged_in_customer_id": f"{ALICE}x"},
    }[case]
    resp = given.client.get(f"/proxy/balance?{cred.signed_query(params, secret)}")
    assert resp.status_code == 401 and resp.json["error"]["code"] == "invalid_signature"


def test_harmless_extra_parameters_still_pass(given):
    secret = keys(given.services)[1]
    params = {**cred.proxy_params(SHOP, ALICE), "customer_id": str(TARO), "locale": "ja", "extra": ["1", "2"]}
    resp = given.client.get(f"/proxy/balance?{cred.signed_query(params, secret)}")
    assert resp.status_code == 200 and resp.json["points"]["balance"] == 80  # Alice's, never Taro's


# -- 6. an App Home id_token for another shop's dest was exchanged ----------------------------------
@pytest.mark.parametrize("shop_param,dest", [(SHOP, OTHER), (OTHER, SHOP), (None, SHOP)])
def test_an_id_token_for_another_shop_is_refused_and_never_exchanged(services, shopify_em, shop_param, dest):
    client = create_app(services=services).test_client()
    query = {"host": "YWRtaW4", "id_token": app_home_token(services, shop=dest)}
    if shop_param:
        query["shop"] = shop_param
    resp = client.get(f"/?{urlencode(query)}")
    assert resp.status_code == 401 and resp.json["error"]["code"] == "invalid_signature"
    assert shopify_em[0].counts["token_exchange"] == 0  # the Shopify stand-in was never asked
    with services.db.transaction() as s:
        assert s.scalars(select(Shop)).all() == []  # no shop row, no token written


def test_a_customer_account_token_never_installs_the_app(services, shopify_em):
    client = create_app(services=services).test_client()
    resp = client.get(f"/?shop={SHOP}&host=YWRtaW4&id_token={customer_token(services)}")
    assert resp.status_code == 401
    assert shopify_em[0].counts["token_exchange"] == 0
    with services.db.transaction() as s:
        assert s.scalars(select(Shop)).all() == []


# -- 7. a sub of any type was taken for a customer; non-ASCII signatures gave 500 ---------------------
@pytest.mark.parametrize("sub", [f"gid://shopify/StaffMember/{TARO}", str(TARO), "86421", f"gid://shopify/Customer/{TARO}x",
                                 f"gid://shopify/Customer/{TARO}/1", f"gid://shopify/Order/{TARO}", "gid://shopify/Customer/",
                                 f"gid://shopify/Customer/{TARO}\n", "gid://shopify/Customer/١٢٣", 8840734670934])
def test_only_a_customer_gid_is_a_customer(given, sub):
    resp = given.client.get("/customer-account/balance", headers=bearer(customer_token(given.services, sub=sub)))
    assert resp.status_code == 401 and resp.json["error"]["code"] == "invalid_signature"
    assert str(TARO) not in resp.get_data(as_text=True)


@pytest.mark.parametrize("claims,code", [
    ({"iss": f"https://{SHOP}/admin"}, "invalid_signature"),  # an App Home token
    ({"exp": None}, "invalid_signature"),
    ({"dest": "not a shop"}, "invalid_signature"),
    ({"nbf": lambda: int(time.time()) + 120}, "invalid_signature"),
    ({"sub": None}, "not_logged_in"),
])
def test_customer_account_tokens_are_checked_claim_by_claim(given, claims, code):
    api_key, secret = keys(given.services)
    full = {**cred.customer_account_claims(api_key, SHOP, TARO), **claims}
    token = cred.sign(at_run_time(full), secret)
    resp = given.client.get("/customer-account/balance", headers=bearer(token))
    assert resp.status_code == 401 and resp.json["error"]["code"] == code


def test_an_app_home_token_is_refused_by_the_customer_account_endpoints(given):
    before = conversion_count(given.services)
    token = app_home_token(given.services, sub=f"gid://shopify/Customer/{TARO}")
    for method, path in (("GET", "balance"), ("GET", "conversions"), ("POST", "conversions")):
        resp = given.client.open(f"/customer-account/{path}", method=method, headers=bearer(token),
                                 json={"points": 100, "idempotency_key": "app-home-1"} if method == "POST" else None)
        assert resp.status_code == 401 and resp.json["error"]["code"] == "invalid_signature"
    assert conversion_count(given.services) == before and given.balance() == 1250
    assert given.client.options("/customer-account/balance").status_code == 204  # preflight needs no token


@pytest.mark.parametrize("signature", ["é" * 64, "ｆ" * 64, "00", "A" * 64, "", "zz" * 32])
def test_a_non_ascii_or_malformed_proxy_signature_is_401_not_500(given, signature):
    secret = keys(given.services)[1]
    query = cred.signed_query(cred.proxy_params(SHOP, TARO), secret, signature=signature or None)
    if not signature:
        query = query.split("&signature=")[0] + "&signature="
    resp = given.client.get(f"/proxy/balance?{query}")
    assert resp.status_code == 401 and resp.json["error"]["code"] == "invalid_signature"


@pytest.mark.parametrize("hmac_header", ["é" * 44, "ｈｍａｃ", None, "", "bm90IHRoZSBobWFj"])
def test_a_non_ascii_missing_or_wrong_webhook_hmac_is_401_not_500(services, hmac_header):
    client = create_app(services=services).test_client()
    body = json.dumps(customer()).encode()
    headers = {"X-Shopify-Topic": "customers/create", "X-Shopify-Shop-Domain": SHOP,
               "X-Shopify-Webhook-Id": "w-ascii", "Content-Type": "application/json"}
    if hmac_header is not None:
        headers["X-Shopify-Hmac-Sha256"] = hmac_header
    # Werkzeug's test client encodes header text as latin-1, as a real server decodes it.
    resp = client.post("/webhooks", data=body, headers={k: v.encode("utf-8").decode("latin-1") for k, v in headers.items()})
    assert resp.status_code == 401 and resp.json["error"]["code"] == "invalid_signature"
    with services.db.transaction() as s:
        assert s.scalars(select(Shop)).all() == []


def test_errors_keep_one_shape_everywhere(services):
    """Webhook, admin and shopper errors come from the same vocabulary and the same handler."""
    client = create_app(services=services).test_client()
    secret = keys(services)[1]
    body = b"{not json"
    bad_body = client.post("/webhooks", data=body, headers={
        "X-Shopify-Topic": "customers/create", "X-Shopify-Shop-Domain": SHOP, "X-Shopify-Webhook-Id": "w-shape",
        "X-Shopify-Hmac-Sha256": cred.webhook_hmac(body, secret)})
    admin = client.get("/admin/api/settings")
    shopper = client.get("/proxy/balance")
    for resp, status, code in ((bad_body, 400, "invalid_request"), (admin, 401, "invalid_session"),
                               (shopper, 401, "invalid_signature")):
        assert resp.status_code == status and resp.is_json
        assert set(resp.json) == {"error"} and set(resp.json["error"]) == {"code", "message"}
        assert resp.json["error"]["code"] == code and resp.json["error"]["message"]


# -- every reading of a signed text, not just the ones we thought of ----------------------------------
def readings(text: str) -> list[list[tuple[str, str]]]:
    """Every query whose signature base is `text` with no `=` inside a name or value (each `=` a
    separator) and names in strictly increasing order, as the base sorts them."""
    seps = [i for i, ch in enumerate(text) if ch == "="]
    out: list[list[tuple[str, str]]] = []

    def walk(k: int, start: int, prev: str | None, acc: list[tuple[str, str]]) -> None:
        key = text[start:seps[k]]
        if prev is not None and key <= prev:
            return
        if k == len(seps) - 1:
            out.append([*acc, (key, text[seps[k] + 1:])])
            return
        for nxt in range(seps[k] + 1, seps[k + 1] + 1):  # where the next name starts
            walk(k + 1, nxt, key, [*acc, (key, text[seps[k] + 1:nxt])])

    walk(0, 0, None, [])
    return out


FRAGMENTS = ["logged_in_customer_id", "shop", "timestamp", "=", str(TARO), "a", "m", "z", "1", "_id", "id",
             "customer_", "logged_in_", ".myshopify.com", "evil", "path_prefix"]


def test_no_reading_of_a_signed_text_names_anyone_but_the_signed_customer():
    """Alice chooses any extra parameters, Shopify signs them with her id; of all the queries that
    carry the same signed text, the app accepts only ones naming Alice in her shop."""
    from app.shopify.verify import InvalidSignature, ShopifyVerifier

    secret = "shpss_" + "9" * 32
    verifier = ShopifyVerifier("api-key", secret)
    now = str(int(time.time()))
    issue = {"a=1logged_in_customer_id": f"{TARO}m"}
    rng = random.Random(10)
    attackers = [issue] + [{"".join(rng.choice(FRAGMENTS) for _ in range(rng.randint(1, 3))):
                            "".join(rng.choice(FRAGMENTS) for _ in range(rng.randint(0, 3)))
                            for _ in range(rng.randint(1, 2))} for _ in range(60)]
    tried = accepted = 0
    for extra in attackers:
        signed = {**extra, "logged_in_customer_id": str(ALICE), "path_prefix": "/apps/points", "shop": SHOP,
                  "timestamp": now}
        text = cred.proxy_signature_base(signed)
        candidates = readings(text) if text.count("=") <= 7 else []
        if extra is not issue and (len(candidates) > 3000 or tried > 40_000):
            continue
        signature = cred.proxy_signature(signed, secret)
        for reading in candidates:
            tried += 1
            try:
                proof = verifier.app_proxy("GET", {}, f"https://app.example/proxy/balance?"
                                                      f"{urlencode([*reading, ('signature', signature)])}")
            except InvalidSignature:
                continue
            accepted += 1
            assert (proof.customer_id, proof.shop_domain) == (ALICE, SHOP), (signed, reading)
    assert tried > 25_000 and accepted > 0  # the search ran, and the honest readings still pass
