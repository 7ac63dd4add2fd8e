"""Every credential against every endpoint family: only the right one opens each, and a refused
request changes nothing and reveals nothing.

The table is two lists. To cover a new endpoint, add a row to ENDPOINTS (its family names the one
credential kind that opens it in OPENED_BY); to cover a new credential or forgery, add a row to
CREDENTIALS. Every pair becomes a test. Credentials are made by tests/credentials.py, not by the app.

Expectations per pair:
- `opens`   — the family's own credential, valid, for this shop: 2xx.
- `scoped`  — the family's own credential, valid, but another shop's or another customer's: it
              may answer, about them only; this shop's and Taro's data is neither changed nor shown.
- `refused` — anything else (another kind, forged, expired, none): 401 (App Home documents: 401 or
              App Bridge's redirect for a new token); the whole database and both platforms'
              state are unchanged, and the body holds none of the shop's data.
"""
from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from urllib.parse import urlencode

import pytest
from sqlalchemy import select

from app.config import load_config
from app.dev.shopify_emulator import ShopifyEmulator
from app.dev.smaregi_emulator import SmaregiEmulator
from app.models import Base, DataRequest, PointMovement, Shop
from app.services import Services

from . import credentials as cred
from .conftest import CONTRACT, DEV_ENV, SHOP, make_env, serving, truncate_all
from .helpers import customer
from .test_conversions import ALICE, TARO, Given

OTHER = "other-shop.myshopify.com"
STRANGER = 7311000000001  # a customer of the other shop
FORGED_SECRET = "shpss_" + "f" * 32
SMAREGI_SECRET = "matrix-smaregi-webhook-secret"
LABEL_MARKER = "MATRIX-RANK-LABEL"
# Taro's point movements awaiting the merchant (one per action endpoint: the valid call changes it).
SENT_MOVEMENT, UNSENT_MOVEMENT = "0000aaaa-matrix-sent-movement", "0000bbbb-matrix-unsent-movement"
EMAIL_MARKER = "taro.matrix@example.com"


@dataclass
class Req:
    method: str
    path: str
    query: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


@dataclass(frozen=True)
class Ctx:
    api_key: str
    secret: str


# -- endpoints: (name, family, method, path, JSON body, base query) --------------------------------
@dataclass(frozen=True)
class Endpoint:
    name: str
    family: str
    method: str
    path: str
    body: Callable[[], dict | None] = lambda: None
    query: tuple[tuple[str, str], ...] = ()


def conversion_body() -> dict:
    return {"points": 100, "idempotency_key": str(uuid.uuid4())}


def settings_body() -> dict:
    return {"smaregi_contract_id": "", "yen_per_point": 7, "points_unit": 100, "points_minimum": 100,
            "points_daily_limit": 10000, "coupon_valid_days": 30, "blank_name_placeholder": "未入力",
            "rank_labels": {"gold": {"ja": "X", "en": "X"}}, "keep_store_member_codes": True,
            "sync_enabled": True}


ENDPOINTS = [
    Endpoint("POST /webhooks", "webhook", "POST", "/webhooks", lambda: customer(7311000000999, email=None)),
    Endpoint("GET /proxy/balance", "proxy", "GET", "/proxy/balance"),
    Endpoint("GET /proxy/conversions", "proxy", "GET", "/proxy/conversions"),
    Endpoint("POST /proxy/conversions", "proxy", "POST", "/proxy/conversions", conversion_body),
    Endpoint("GET /customer-account/balance", "customer_account", "GET", "/customer-account/balance"),
    Endpoint("GET /customer-account/conversions", "customer_account", "GET", "/customer-account/conversions"),
    Endpoint("POST /customer-account/conversions", "customer_account", "POST", "/customer-account/conversions",
             conversion_body),
    Endpoint("GET / (App Home)", "app_home", "GET", "/", query=(("shop", SHOP), ("host", "YWRtaW4"))),
    Endpoint("GET /admin/api/settings", "admin", "GET", "/admin/api/settings"),
    Endpoint("PUT /admin/api/settings", "admin", "PUT", "/admin/api/settings", settings_body),
    Endpoint("GET /admin/api/dashboard", "admin", "GET", "/admin/api/dashboard"),
    Endpoint("GET /admin/api/conversions", "admin", "GET", "/admin/api/conversions"),
    Endpoint("GET /admin/api/data-requests", "admin", "GET", "/admin/api/data-requests"),
    Endpoint("GET /admin/api/movements/review", "admin", "GET", "/admin/api/movements/review"),
    Endpoint("POST /admin/api/movements/<id>/recheck", "admin", "POST",
             f"/admin/api/movements/{SENT_MOVEMENT}/recheck"),
    Endpoint("POST /admin/api/movements/<id>/not_applied", "admin", "POST",
             f"/admin/api/movements/{UNSENT_MOVEMENT}/not_applied"),
]

# The one credential kind that opens each family (App Home also takes its token as Bearer, as App
# Bridge sends it on fetches; the admin API takes it only that way).
OPENED_BY = {
    "webhook": {"webhook_hmac"},
    "proxy": {"proxy_signature"},
    "customer_account": {"customer_account_token"},
    "app_home": {"app_home_id_token", "admin_session_token"},
    "admin": {"admin_session_token"},
}
REFUSED_STATUS = {"webhook": {401}, "proxy": {401}, "customer_account": {401}, "admin": {401},
                  "app_home": {401, 302}}
REFUSED_CODE = {"webhook": "invalid_signature", "proxy": "invalid_signature",
                "customer_account": "invalid_signature", "admin": "invalid_session"}


# -- credentials: (name, kind, variant, how it is put on a request) --------------------------------
@dataclass(frozen=True)
class Credential:
    name: str
    kind: str | None
    variant: str  # valid | forged | other_shop | other_customer
    apply: Callable[[Ctx, Req], None]


def webhook_hmac(secret: str | None = None, shop: str = SHOP):
    def apply(ctx: Ctx, req: Req) -> None:
        req.headers["X-Shopify-Shop-Domain"] = shop
        req.headers["X-Shopify-Hmac-Sha256"] = cred.webhook_hmac(req.body, secret or ctx.secret)
    return apply


def proxy_signature(secret: str | None = None, shop: str = SHOP, who: int | None = TARO, age_s: int = 0):
    def apply(ctx: Ctx, req: Req) -> None:
        params = {**req.query, **cred.proxy_params(shop, who, timestamp=int(time.time()) - age_s)}
        req.query = {**params, "signature": cred.proxy_signature(params, secret or ctx.secret)}
    return apply


def app_home_token(ctx: Ctx, secret, shop, ttl_s, aud, none) -> str:
    claims = {**cred.app_home_claims(ctx.api_key, shop, ttl_s=ttl_s), **({"aud": aud} if aud else {})}
    return cred.alg_none(claims) if none else cred.sign(claims, secret or ctx.secret)


def id_token_query(secret=None, shop=SHOP, ttl_s=60, aud=None, none=False):
    def apply(ctx: Ctx, req: Req) -> None:
        req.query = {**req.query, "shop": shop, "host": "YWRtaW4",
                     "id_token": app_home_token(ctx, secret, shop, ttl_s, aud, none)}
    return apply


def admin_bearer(secret=None, shop=SHOP, ttl_s=60, aud=None, none=False):
    def apply(ctx: Ctx, req: Req) -> None:
        req.headers["Authorization"] = f"Bearer {app_home_token(ctx, secret, shop, ttl_s, aud, none)}"
    return apply


def customer_bearer(secret=None, shop=SHOP, who=TARO, ttl_s=300, aud=None, none=False):
    def apply(ctx: Ctx, req: Req) -> None:
        claims = {**cred.customer_account_claims(ctx.api_key, shop, who, ttl_s=ttl_s), **({"aud": aud} if aud else {})}
        token = cred.alg_none(claims) if none else cred.sign(claims, secret or ctx.secret)
        req.headers["Authorization"] = f"Bearer {token}"
    return apply


def smaregi_secret(ctx: Ctx, req: Req) -> None:
    req.headers.update({"X-Pointbridge-Secret": SMAREGI_SECRET, "Smaregi-Event": "pos:customers",
                        "Smaregi-Contract-Id": CONTRACT, "Smaregi-Event-Id": str(uuid.uuid4())})


CREDENTIALS = [
    Credential("no credential", None, "forged", lambda ctx, req: None),
    Credential("webhook HMAC", "webhook_hmac", "valid", webhook_hmac()),
    Credential("webhook HMAC, wrong secret", "webhook_hmac", "forged", webhook_hmac(secret=FORGED_SECRET)),
    Credential("webhook HMAC, another shop", "webhook_hmac", "other_shop", webhook_hmac(shop=OTHER)),
    Credential("proxy signature", "proxy_signature", "valid", proxy_signature()),
    Credential("proxy signature, wrong secret", "proxy_signature", "forged", proxy_signature(secret=FORGED_SECRET)),
    Credential("proxy signature, expired", "proxy_signature", "forged", proxy_signature(age_s=600)),
    Credential("proxy signature, another shop", "proxy_signature", "other_shop",
               proxy_signature(shop=OTHER, who=STRANGER)),
    Credential("proxy signature, another customer", "proxy_signature", "other_customer", proxy_signature(who=ALICE)),
    Credential("App Home id_token", "app_home_id_token", "valid", id_token_query()),
    Credential("App Home id_token, wrong secret", "app_home_id_token", "forged", id_token_query(secret=FORGED_SECRET)),
    Credential("App Home id_token, alg none", "app_home_id_token", "forged", id_token_query(none=True)),
    Credential("App Home id_token, expired", "app_home_id_token", "forged", id_token_query(ttl_s=-60)),
    Credential("App Home id_token, wrong aud", "app_home_id_token", "forged", id_token_query(aud="another-app")),
    Credential("App Home id_token, another shop", "app_home_id_token", "other_shop", id_token_query(shop=OTHER)),
    Credential("admin session token", "admin_session_token", "valid", admin_bearer()),
    Credential("admin session token, wrong secret", "admin_session_token", "forged", admin_bearer(secret=FORGED_SECRET)),
    Credential("admin session token, alg none", "admin_session_token", "forged", admin_bearer(none=True)),
    Credential("admin session token, expired", "admin_session_token", "forged", admin_bearer(ttl_s=-60)),
    Credential("admin session token, wrong aud", "admin_session_token", "forged", admin_bearer(aud="another-app")),
    Credential("admin session token, another shop", "admin_session_token", "other_shop", admin_bearer(shop=OTHER)),
    Credential("customer-account token", "customer_account_token", "valid", customer_bearer()),
    Credential("customer-account token, wrong secret", "customer_account_token", "forged",
               customer_bearer(secret=FORGED_SECRET)),
    Credential("customer-account token, alg none", "customer_account_token", "forged", customer_bearer(none=True)),
    Credential("customer-account token, expired", "customer_account_token", "forged", customer_bearer(ttl_s=-60)),
    Credential("customer-account token, wrong aud", "customer_account_token", "forged",
               customer_bearer(aud="another-app")),
    Credential("customer-account token, another shop", "customer_account_token", "other_shop",
               customer_bearer(shop=OTHER, who=STRANGER)),
    Credential("customer-account token, another customer", "customer_account_token", "other_customer",
               customer_bearer(who=ALICE)),
    Credential("Smaregi webhook secret", "smaregi_secret", "valid", smaregi_secret),
]


def expectation(credential: Credential, endpoint: Endpoint) -> str:
    if credential.kind not in OPENED_BY[endpoint.family] or credential.variant == "forged":
        return "refused"
    return "opens" if credential.variant == "valid" else "scoped"


# -- the world: one shop with Taro's points, a coupon, settings and a data export ------------------
@dataclass
class World:
    services: Services
    smaregi: SmaregiEmulator
    shopify: ShopifyEmulator
    client: object
    ctx: Ctx
    markers: list[str]
    taro: dict

    def db_state(self) -> dict:
        with self.services.db.engine.connect() as conn:
            state = {t.name: sorted(repr(tuple(r)) for r in conn.execute(select(t))) for t in Base.metadata.sorted_tables}
        return {**state, "platforms": self.platform_state()}

    def platform_state(self) -> dict:
        contract = self.smaregi.contracts[CONTRACT]
        return {"points": {k: dict(v) for k, v in contract.points.items()},
                "members": {k: dict(v) for k, v in contract.customers.items()},
                "transactions": len(contract.transactions),
                "codes": sorted(d["code"] for shop in (SHOP, OTHER) for d in self.shopify.active_discounts(shop)),
                "shopify_counts": dict(self.shopify.counts)}

    def victim_state(self) -> dict:
        """This shop's settings and every row about Taro, and Taro's points and codes."""
        out: dict = {}
        with self.services.db.engine.connect() as conn:
            shop_id = conn.scalar(select(Shop.id).where(Shop.domain == SHOP))
            for t in Base.metadata.sorted_tables:
                if t.name == "shops":
                    rows = conn.execute(select(t).where(t.c.id == shop_id))
                elif "shop_id" in t.c:
                    stmt = select(t).where(t.c.shop_id == shop_id)
                    if "shopify_customer_id" in t.c:
                        stmt = stmt.where(t.c.shopify_customer_id == TARO)
                    elif t.name == "webhook_deliveries":
                        continue  # the shop's own valid webhooks are the family's business
                    rows = conn.execute(stmt)
                else:
                    continue
                out[t.name] = sorted(repr(tuple(r)) for r in rows)
        taro = self.taro["customerId"]
        out["taro_points"] = dict(self.smaregi.contracts[CONTRACT].points[taro])
        out["taro_codes"] = sorted(d["code"] for d in self.shopify.active_discounts(SHOP)
                                   if f"gid://shopify/Customer/{TARO}" in d.get("customers", []))
        return out


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def world(request, tmp_path_factory):
    with ExitStack() as stack:
        if request.param == "sqlite":
            from app import migrate

            url = f"sqlite:///{tmp_path_factory.mktemp('matrix') / 'test.db'}"
            migrate.upgrade(url)
        else:
            url = request.getfixturevalue("pg_migrated")
        config = load_config(DEV_ENV)
        smaregi = SmaregiEmulator(clients={config.smaregi_client_id: config.smaregi_client_secret},
                                  contracts=[CONTRACT], reads_per_s=1000, writes_per_s=1000)
        shopify = ShopifyEmulator(config.shopify_api_key, config.shopify_api_secret)
        smaregi_url = stack.enter_context(serving(smaregi.create_app()))
        shopify_url = stack.enter_context(serving(shopify.create_app()))
        services = Services.build(load_config(make_env(url, smaregi_url, shopify_url,
                                                       SMAREGI_WEBHOOK_SECRET=SMAREGI_SECRET)))
        stack.callback(services.db.dispose)
        truncate_all(services.db)
        given = Given(services, smaregi, shopify)
        ctx = Ctx(services.config.shopify_api_key, services.config.shopify_api_secret)
        coupon = given.convert(500, key="matrix-taro-coupon").json["conversion"]["code"]
        token = cred.sign(cred.app_home_claims(ctx.api_key, SHOP), ctx.secret)
        saved = given.client.put("/admin/api/settings", headers={"Authorization": f"Bearer {token}"}, json={
            **settings_body(), "yen_per_point": 1, "rank_labels": {"gold": {"ja": LABEL_MARKER, "en": LABEL_MARKER}}})
        assert saved.status_code == 200, saved.json
        with services.db.transaction() as s:
            shop_id = s.scalar(select(Shop.id).where(Shop.domain == SHOP))
            s.add(DataRequest(shop_id=shop_id, shopify_customer_id=TARO,
                              request_id="matrix-1", export={"customer": {"email": EMAIL_MARKER}}))
            for movement_id, sent in ((SENT_MOVEMENT, -100), (UNSENT_MOVEMENT, None)):
                s.add(PointMovement(id=movement_id, shop_id=shop_id, shopify_customer_id=TARO,
                                    smaregi_customer_id=given.taro["customerId"], kind="take_back",
                                    reason="purchase_reversal", points=-100, sent_points=sent, owed_change=0,
                                    state="needs_review", attempts=12, order_id=5001, error="matrix"))
        yield World(services, smaregi, shopify, given.client, ctx, [coupon, LABEL_MARKER, EMAIL_MARKER, str(TARO)],
                    given.taro)


def build(endpoint: Endpoint, credential: Credential, ctx: Ctx) -> Req:
    body = endpoint.body()
    req = Req(endpoint.method, endpoint.path, dict(endpoint.query),
              body=json.dumps(body, ensure_ascii=False).encode() if body is not None else b"")
    if body is not None:
        req.headers["Content-Type"] = "application/json"
    if endpoint.family == "webhook":  # everything Shopify sends but the proof
        req.headers.update({"X-Shopify-Topic": "customers/create", "X-Shopify-Shop-Domain": SHOP,
                            "X-Shopify-Webhook-Id": str(uuid.uuid4()), "X-Shopify-Event-Id": str(uuid.uuid4()),
                            "X-Shopify-API-Version": "2026-10", "X-Shopify-Triggered-At": "2026-11-20T01:00:00Z"})
    credential.apply(ctx, req)
    return req


def send(world: World, req: Req):
    url = req.path + ("?" + urlencode(req.query) if req.query else "")
    return world.client.open(url, method=req.method, data=req.body, headers=req.headers)


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: e.name)
@pytest.mark.parametrize("credential", CREDENTIALS, ids=lambda c: c.name)
def test_only_the_right_credential_opens_each_endpoint(world, credential, endpoint):
    expected = expectation(credential, endpoint)
    before_all, before_victim = world.db_state(), world.victim_state()
    resp = send(world, build(endpoint, credential, world.ctx))
    text = resp.get_data(as_text=True)
    if expected == "opens":
        assert resp.status_code in (200, 201), (resp.status_code, text[:300])
        return
    assert resp.status_code < 500, (resp.status_code, text[:300])
    assert not [m for m in world.markers if m in text], f"{expected} answer shows the shop's data: {text[:300]}"
    assert world.victim_state() == before_victim
    if expected == "refused":
        assert resp.status_code in REFUSED_STATUS[endpoint.family], (resp.status_code, text[:300])
        if endpoint.family in REFUSED_CODE:
            assert resp.json["error"]["code"] == REFUSED_CODE[endpoint.family]
        assert world.db_state() == before_all


def test_the_table_covers_every_family_and_kind():
    """A new family without its credential, or a credential kind nothing lists, is a table error."""
    assert {e.family for e in ENDPOINTS} == set(OPENED_BY)
    kinds = {c.kind for c in CREDENTIALS} - {None}
    assert set().union(*OPENED_BY.values()) <= kinds
    assert {c.variant for c in CREDENTIALS} == {"valid", "forged", "other_shop", "other_customer"}
