"""The block in a real browser: dev storefront → signing proxy → app → Smaregi/Shopify emulators."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from app import create_app, migrate
from app.dev import storefront
from app.dev.signing import app_home_id_token
from app.models import Shop, ShopSettings

from .conftest import CONTRACT, SHOP, serving

TARO = 8840734670934
READY = "document.querySelector('[data-pb-state]').dataset.pbState"


@pytest.fixture
def site(tmp_path, smaregi_em, shopify_em, make_services):
    em, url = smaregi_em
    db = f"sqlite:///{tmp_path / 'browser.db'}"
    migrate.upgrade(db)
    services = make_services(db, smaregi_url=url, shopify_url=shopify_em[1])
    member = em.add_member(CONTRACT, customerCode=str(TARO), lastName="山田", firstName="太郎", rank="gold",
                           points=1250, expires_on="2027-03-31")
    em.add_sale(CONTRACT, member["customerId"], earned=128, used=30, total=12800,
                when=datetime.now(UTC) - timedelta(days=2))
    em.contracts[CONTRACT].points[member["customerId"]]["point"] = 1250
    shopify_em[0].add_customer(SHOP, TARO, firstName="太郎")
    app = create_app(services=services)
    token = app_home_id_token(services.config.shopify_api_key, services.config.shopify_api_secret, SHOP)
    assert app.test_client().get(f"/?shop={SHOP}&host=x&id_token={token}").status_code == 200  # installed
    with services.db.transaction() as s:
        s.add(ShopSettings(shop_id=s.scalar(select(Shop.id)),
                           rank_labels={"gold": {"ja": "ゴールド会員", "en": "Gold Member"}}))
    with serving(app) as app_url, \
            serving(storefront.create_app(app_url, services.config.shopify_api_secret, shop=SHOP)) as front:
        yield em, shopify_em[0], member, front


def test_the_block_loads_the_live_balance_in_japanese(site, browser, tmp_path):
    _em, _, _, url = site
    browser.open(f"{url}/?customer={TARO}&locale=ja")
    assert browser.wait_for(f"{READY} === 'ready'")
    page = browser.text(".pb-points")
    assert "太郎 様" in page and "1,250 pt" in page and "2027年3月31日" in page and "ゴールド会員" in page
    assert "店舗でのお買い物" in page and "+128 pt" in page and "−30 pt" in page
    assert browser.eval("document.querySelectorAll('.pb-skeleton').length") == 0
    assert browser.eval("document.querySelector('[data-pb-points]').getAttribute('aria-busy')") == "false"
    browser.screenshot(str(tmp_path / "ja.png"))


def test_the_block_in_english_formats_dates_and_thousands(site, browser):
    _, _, _, url = site
    browser.open(f"{url}/?customer={TARO}&locale=en")
    browser.wait_for(f"{READY} === 'ready'")
    page = browser.text(".pb-points")
    assert "Hello, 太郎" in page and "1,250 pts" in page and "March 31, 2027" in page and "Gold Member" in page


def test_no_layout_shift_when_the_balance_arrives(site, browser):
    em, _, _, url = site
    em.add_fault(match=r"/customers/point", latency_s=0.8, count=1)
    browser.open(f"{url}/?customer={TARO}&locale=ja")
    top = "document.querySelector('.pb-points__subheading').getBoundingClientRect().top"
    before = browser.eval(top)  # skeleton showing
    browser.wait_for(f"{READY} === 'ready'")
    assert abs(browser.eval(top) - before) <= 2


def test_when_the_pos_is_down_the_block_says_so_and_reload_recovers(site, browser):
    em, _, _, url = site
    em.add_fault(match=r"/customers/point", status=500)
    browser.open(f"{url}/?customer={TARO}&locale=ja")
    browser.wait_for(f"{READY} === 'error'")
    page = browser.text(".pb-points")
    assert "太郎 様" in page  # the name stays
    assert "ただいまポイント情報を表示できません。" in page and "店舗でもご確認いただけます" in page
    assert browser.eval("document.querySelector('[data-pb-error]').hidden") is False
    em.clear_faults()
    browser.click("[data-pb-reload]")
    browser.wait_for(f"{READY} === 'ready'")
    assert "1,250 pt" in browser.text(".pb-points")


def test_a_guest_gets_a_sign_in_link_and_no_call(site, browser):
    em, _, _, url = site
    before = em.stats["requests"]
    browser.open(f"{url}/?customer=&locale=ja")
    assert "ログインしてポイントを確認" in browser.text(".pb-points")
    assert em.stats["requests"] == before


def test_converting_points_shows_the_code_and_the_new_balance(site, browser, tmp_path):
    em, shopify, member, url = site
    browser.open(f"{url}/?customer={TARO}&locale=ja")
    browser.wait_for(f"{READY} === 'ready'")
    assert browser.eval("document.querySelector('.pb-points__input').step") == "100"
    browser.eval("var i = document.querySelector('.pb-points__input'); i.value = '500';"
                 "i.dispatchEvent(new Event('input'))")
    assert "￥500" in browser.text(".pb-points__preview") or "¥500" in browser.text(".pb-points__preview")
    browser.click(".pb-points__form button[type=submit]")
    code = browser.wait_for("(document.querySelector('.pb-points__code') || {}).textContent")
    assert code.startswith("70934-") and code.endswith("-500")
    browser.wait_for("document.querySelector('[data-pb-balance]').textContent === '750 pt'")
    browser.wait_for(f"document.querySelector('[data-pb-coupons]').innerText.includes({code!r})")
    assert browser.text(".pb-points__code") == code  # still shown, with its copy button, after the refresh
    assert browser.eval("!!document.querySelector('.pb-points__result button')")
    assert em.balance(CONTRACT, member["customerId"]) == 750
    assert [d["code"] for d in shopify.active_discounts(SHOP)] == [code]
    browser.screenshot(str(tmp_path / "converted.png"))


def test_a_refused_conversion_says_why_and_spends_nothing(site, browser):
    em, shopify, member, url = site
    em.add_fault(match=r"POST .*/point/add", status=400, count=1)
    browser.open(f"{url}/?customer={TARO}&locale=en")
    browser.wait_for(f"{READY} === 'ready'")
    browser.click(".pb-points__form button[type=submit]")
    browser.wait_for("document.querySelector('.pb-points__message').textContent.length > 0")
    assert browser.text(".pb-points__message") == "You do not have enough points."
    assert browser.eval("document.querySelector('.pb-points__form button').disabled") is False
    assert em.balance(CONTRACT, member["customerId"]) == 1250 and shopify.active_discounts(SHOP) == []
