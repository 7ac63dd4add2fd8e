"""The shop's currency and IANA time zone come from Shopify at install, and codes and days follow them."""
from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from app import create_app, migrate
from app.dev.signing import app_home_id_token
from app.models import Shop
from app.points import ledger
from app.points.member import forget_settings

from .conftest import SHOP
from .smaregi_connect_support import admin_token
from .test_conversions import TARO, Given
from .vcr_support import RECORDING, cassettes


def open_app_home(client, services):
    token = app_home_id_token(services.config.shopify_api_key, services.config.shopify_api_secret, SHOP)
    return client.get(f"/?shop={SHOP}&host=x&id_token={token}")


def stored_profile(services):
    with services.db.transaction() as s:
        shop = s.scalar(select(Shop).where(Shop.domain == SHOP))
        return shop.currency, shop.timezone, shop.profile_read_at is not None


def test_install_reads_the_shops_currency_and_zone_and_the_admin_names_them(services, shopify_em):
    shopify_em[0].set_profile(SHOP, currency="USD", timezone="America/Los_Angeles")
    client = create_app(services=services).test_client()
    assert open_app_home(client, services).status_code == 200
    assert stored_profile(services) == ("USD", "America/Los_Angeles", True)
    settings = client.get("/admin/api/settings", headers={"Authorization": f"Bearer {admin_token(services, SHOP)}"})
    assert (settings.json["currency"], settings.json["timezone"]) == ("USD", "America/Los_Angeles")
    reads = shopify_em[0].counts["graphql"]
    assert open_app_home(client, services).status_code == 200
    assert shopify_em[0].counts["graphql"] == reads  # read once, not on every load


def test_a_failed_read_keeps_the_defaults_and_is_tried_again_on_the_next_load(services, shopify_em):
    em, _ = shopify_em
    em.set_profile(SHOP, currency="EUR", timezone="Europe/Berlin")
    em.add_fault(match=r"\bshop\s*\{", status=503, count=2)  # shopifyapp retries once
    client = create_app(services=services).test_client()
    assert open_app_home(client, services).status_code == 200  # the admin opens all the same
    assert stored_profile(services) == ("JPY", "Asia/Tokyo", False)
    assert open_app_home(client, services).status_code == 200
    assert stored_profile(services) == ("EUR", "Europe/Berlin", True)


def test_an_unreadable_zone_or_currency_is_not_stored(services, shopify_em):
    shopify_em[0].set_profile(SHOP, currency="usd", timezone="Mars/Olympus_Mons")
    client = create_app(services=services).test_client()
    assert open_app_home(client, services).status_code == 200
    assert stored_profile(services) == ("JPY", "Asia/Tokyo", False)


def test_a_us_shop_gets_dollar_codes_and_its_own_day_boundary(services, smaregi_em, shopify_em, monkeypatch):
    shopify_em[0].set_profile(SHOP, currency="USD", timezone="America/Los_Angeles")
    given = Given(services, smaregi_em[0], shopify_em[0])
    given.settings(points_daily_limit=500)
    forget_settings()
    now = [datetime(2026, 12, 2, 7, 30, tzinfo=UTC)]  # 23:30 on 1 Dec in Los Angeles; 16:30 on 2 Dec in Tokyo
    monkeypatch.setattr(ledger, "utcnow", lambda: now[0])

    first = given.convert(500)
    assert first.status_code == 201
    conversion = first.json["conversion"]
    assert (conversion["currency"], conversion["amount"]) == ("USD", 500)
    assert conversion["expires_at"] == "2026-12-31T23:59:59-08:00"  # 30 days after 1 Dec, at midnight there
    [code] = given.active_codes()
    assert "USD" in code["title"]  # the code ends at that same midnight in Los Angeles (as an instant)
    assert datetime.fromisoformat(code["endsAt"]) == datetime.fromisoformat("2026-12-31T23:59:59-08:00")
    assert given.convert(500).json["error"]["code"] == "daily_limit_exceeded"  # still 1 Dec there

    now[0] = datetime(2026, 12, 2, 8, 30, tzinfo=UTC)  # 00:30 on 2 Dec in Los Angeles; still 2 Dec in Tokyo
    second = given.convert(500)
    assert second.status_code == 201, second.json  # a new day in the shop's zone
    balance = given.client.get(f"/proxy/balance?{_proxy(services)}").json
    assert balance["as_of"].endswith(("-08:00", "-07:00")) and balance["conversion"]["remaining_today"] == 0


def _proxy(services) -> str:
    from .helpers import proxy_url

    return proxy_url(services.config.shopify_api_secret, "balance", TARO).split("?", 1)[1]


# -- wire format ------------------------------------------------------------------------------------------------
@pytest.fixture
def wire(tmp_path, make_services, request):
    url = f"sqlite:///{tmp_path / 'wire.db'}"
    migrate.upgrade(url)
    if RECORDING:
        em, live = request.getfixturevalue("shopify_em")
        em.set_profile(SHOP, currency="JPY", timezone="Asia/Tokyo")
        services = make_services(url, shopify_url=live)
        origins = {f"{live}/{SHOP}/": f"https://{SHOP}/"}
    else:
        services = make_services(url)
        services.shop_tokens.admin_base = services.admin.admin_base = "https://{shop}"  # cassette only
        origins = {}
    return services, cassettes("shopify", origins)


def test_shop_profile_query_wire_format(wire):
    services, cassette = wire
    with cassette("shop_profile") as c:
        assert open_app_home(create_app(services=services).test_client(), services).status_code == 200
    exchange, profile = c.requests
    assert exchange.uri == f"https://{SHOP}/admin/oauth/access_token"
    assert profile.uri == f"https://{SHOP}/admin/api/{services.config.shopify_api_version}/graphql.json"
    assert "shop { currencyCode ianaTimezone }" in json.loads(profile.body)["query"]
    answer = json.loads(c.responses[1]["body"]["string"])["data"]["shop"]
    assert answer == {"currencyCode": "JPY", "ianaTimezone": "Asia/Tokyo"}
    assert stored_profile(services) == ("JPY", "Asia/Tokyo", True)
