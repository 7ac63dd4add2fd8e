"""The block in a real browser: dev storefront → signing proxy → app → Smaregi emulator."""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from app import create_app, migrate
from app.dev import storefront
from app.models import Shop, ShopSettings

from .browser import rendered_dom
from .conftest import CONTRACT, SHOP, serving

TARO = 8840734670934


@pytest.fixture
def site(tmp_path, smaregi_em, shopify_em, make_services):
    em, url = smaregi_em
    db = f"sqlite:///{tmp_path / 'browser.db'}"
    migrate.upgrade(db)
    services = make_services(db, smaregi_url=url)
    member = em.add_member(CONTRACT, customerCode=str(TARO), lastName="山田", firstName="太郎", rank="gold",
                           points=1250, expires_on="2027-03-31")
    em.add_sale(CONTRACT, member["customerId"], earned=128, used=30, total=12800,
                when=datetime.now(timezone.utc) - timedelta(days=2))
    em.contracts[CONTRACT].points[member["customerId"]]["point"] = 1250
    with services.db.transaction() as s:
        s.add(Shop(domain=SHOP))
    with services.db.transaction() as s:
        s.add(ShopSettings(shop_id=s.scalar(select(Shop.id)),
                           rank_labels={"gold": {"ja": "ゴールド会員", "en": "Gold Member"}}))
    with serving(create_app(services=services)) as app_url:
        front = storefront.create_app(app_url, services.config.shopify_api_secret, shop=SHOP)
        with serving(front) as front_url:
            yield em, front_url


def text(dom: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", dom))


def test_the_block_loads_the_live_balance_in_japanese(site, tmp_path):
    em, url = site
    dom = rendered_dom(f"{url}/?customer={TARO}&locale=ja", screenshot=str(tmp_path / "ja.png"))
    page = text(dom)
    assert "太郎 様" in page
    assert "1,250 pt" in page
    assert "2027年3月31日" in page
    assert "ゴールド会員" in page
    assert "店舗でのお買い物" in page and "+128 pt" in page and "−30 pt" in page
    assert 'data-pb-state="ready"' in dom and "pb-skeleton" not in dom


def test_the_block_in_english_formats_dates_and_thousands(site):
    em, url = site
    page = text(rendered_dom(f"{url}/?customer={TARO}&locale=en"))
    assert "Hello, 太郎" in page and "1,250 pts" in page and "March 31, 2027" in page and "Gold Member" in page


def test_when_the_pos_is_down_the_block_says_so_and_offers_a_reload(site):
    em, url = site
    em.add_fault(match=r"/customers/point", status=500)
    dom = rendered_dom(f"{url}/?customer={TARO}&locale=ja")
    page = text(dom)
    assert "太郎 様" in page  # the name stays
    assert "ただいまポイント情報を表示できません。" in page and "店舗でもご確認いただけます" in page
    assert re.search(r'<div class="pb-points__error" data-pb-error="" role="alert">', dom)  # no longer hidden
    assert "再読み込み" in page


def test_a_guest_gets_a_sign_in_link_and_no_call(site):
    em, url = site
    before = em.stats["requests"]
    page = text(rendered_dom(f"{url}/?customer=&locale=ja"))
    assert "ログインしてポイントを確認" in page
    assert em.stats["requests"] == before
