"""Managed installation and expiring offline tokens (token exchange, refresh under a per-shop lock)."""
from __future__ import annotations

import multiprocessing
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from app import create_app
from app.dev.signing import app_home_id_token
from app.models import Shop, utcnow
from app.shopify.tokens import ShopNotAuthorized

from .conftest import SHOP, make_env


def _load_app_home(services, token: str, **headers):
    client = create_app(services=services).test_client()
    return client.get(f"/?shop={SHOP}&host=YWRtaW4&id_token={token}", headers=headers)


def _token(services, **kw) -> str:
    return app_home_id_token(services.config.shopify_api_key, services.config.shopify_api_secret, SHOP, **kw)


def _shop(services) -> Shop | None:
    with services.db.transaction() as s:
        return s.scalar(select(Shop).where(Shop.domain == SHOP))


def test_first_app_home_load_installs_with_an_expiring_offline_token(services, shopify_em):
    em, _ = shopify_em
    resp = _load_app_home(services, _token(services))
    assert resp.status_code == 200
    assert "frame-ancestors https://pointbridge-test.myshopify.com https://admin.shopify.com" in \
        resp.headers["Content-Security-Policy"]
    assert em.counts["token_exchange"] == 1
    shop = _shop(services)
    assert shop.installed_at is not None and shop.refresh_token_enc
    live = em.shop(SHOP).access_token
    assert live not in shop.access_token_enc and "emu-rt-" not in shop.refresh_token_enc  # encrypted at rest
    assert services.cipher.decrypt(shop.access_token_enc) == live
    assert timedelta(minutes=55) < shop.access_token_expires_at - utcnow() <= timedelta(hours=1)

    # A later load with a usable token exchanges nothing.
    assert _load_app_home(services, _token(services)).status_code == 200
    assert em.counts["token_exchange"] == 1


def test_forged_id_token_redirects_to_the_patch_page_and_stores_nothing(services, shopify_em):
    forged = app_home_id_token(services.config.shopify_api_key, "a-forged-secret-of-sufficient-length-000", SHOP)
    resp = _load_app_home(services, forged)
    assert resp.status_code == 302 and "/auth/patch-id-token" in resp.headers["Location"]
    assert shopify_em[0].counts["token_exchange"] == 0
    assert _shop(services) is None


def test_expired_session_token_on_a_fetch_asks_app_bridge_to_retry(services):
    client = create_app(services=services).test_client()
    stale = _token(services, ttl_s=-60)
    resp = client.get("/", headers={"Authorization": f"Bearer {stale}"})
    assert resp.status_code == 401
    assert resp.headers["X-Shopify-Retry-Invalid-Session-Request"] == "1"
    assert _shop(services) is None


def test_token_is_refreshed_before_it_expires_and_the_old_one_dies(services, shopify_em):
    em, _ = shopify_em
    _load_app_home(services, _token(services))
    old = services.shop_tokens.access_token(SHOP).token
    with services.db.transaction() as s:
        s.execute(update(Shop).values(access_token_expires_at=utcnow() + timedelta(seconds=120)))
    services.shop_tokens.forget(SHOP)  # as after a minute: the process re-reads the (now nearly expired) token
    fresh = services.shop_tokens.access_token(SHOP)
    assert em.counts["refresh"] == 1 and fresh.token != old
    assert fresh.expires_at - utcnow() > timedelta(minutes=55)
    # Admin calls work with the new token.
    em.add_customer(SHOP, 42, firstName="Taro")
    data = services.admin.graphql(SHOP, "query($id: ID!) { customer(id: $id) { id } }",
                                  {"id": "gid://shopify/Customer/42"})
    assert data["customer"]["id"] == "gid://shopify/Customer/42"
    assert services.shop_tokens.access_token(SHOP).token == fresh.token  # no second refresh
    assert em.counts["refresh"] == 1


def test_uninstalled_shop_has_no_token(services):
    _load_app_home(services, _token(services))
    with services.db.transaction() as s:
        services.shop_tokens.revoke(s, s.scalar(select(Shop)))
    with pytest.raises(ShopNotAuthorized):
        services.shop_tokens.access_token(SHOP)


def _refresh_in_another_process(env, start, results):
    from app.config import load_config
    from app.services import Services

    services = Services.build(load_config(env))
    start.wait(10)
    results.put(services.shop_tokens.access_token(SHOP).token)


@pytest.mark.postgres
def test_two_processes_refreshing_at_once_make_exactly_one_refresh(pg_url, shopify_em, make_services):
    em, url = shopify_em
    services = make_services(pg_url, shopify_url=url)
    _load_app_home(services, _token(services))
    with services.db.transaction() as s:
        s.execute(update(Shop).values(access_token_expires_at=utcnow() + timedelta(seconds=30)))
    em.token_latency_s = 0.5  # the first refresh is still in flight when the second process asks
    ctx = multiprocessing.get_context("spawn")
    start, results = ctx.Event(), ctx.Queue()
    env = make_env(pg_url, shopify_url=url)
    procs = [ctx.Process(target=_refresh_in_another_process, args=(env, start, results)) for _ in range(2)]
    for p in procs:
        p.start()
    start.set()
    tokens = {results.get(timeout=30) for _ in procs}
    for p in procs:
        p.join(10)
    assert em.counts["refresh"] == 1
    assert tokens == {em.shop(SHOP).access_token}
