"""App Home in headless Chromium, with App Bridge stubbed and Shopify's CDN unreachable."""
from __future__ import annotations

import time

import pytest

from app import create_app
from app.dev.signing import app_home_id_token
from app.sync.worker import Worker
from app.webhooks.dispatch import Delivery, record

from .conftest import CONTRACT, SHOP, serving
from .helpers import customer


@pytest.fixture
def admin_page(services, smaregi_em, browser):
    smaregi_em[0].contracts[CONTRACT].required_columns["birthDate"] = "1"
    from app.sync import directory

    directory.import_pages(services.db, services.smaregi.contract(CONTRACT))
    record(services.db, services.config, Delivery(SHOP, "customers/create", "w1", None, None, customer()))
    Worker(services, "w").drain()

    def token():
        return app_home_id_token(services.config.shopify_api_key, services.config.shopify_api_secret, SHOP, ttl_s=300)

    with serving(create_app(services=services)) as url:
        # What App Bridge provides: a fresh session token per request.
        browser.before_scripts(f"window.shopify = {{ idToken: () => Promise.resolve({token()!r}) }};")
        browser.open(f"{url}/?shop={SHOP}&host=x&locale=ja&id_token={token()}")
        browser.wait_for("document.body.dataset.ready === '1'")
        yield browser, smaregi_em[0]


def test_dashboard_and_failures_render_in_japanese(admin_page):
    browser, _ = admin_page
    dashboard = browser.text("[data-dashboard]")
    assert "失敗" in dashboard and "本日の交換" in dashboard
    problems = browser.text("[data-problems]")
    assert "8840734670934" in problems and "birthDate" in problems and "再試行" in problems


def test_settings_errors_show_next_to_the_field_and_a_fix_saves(admin_page):
    browser, _ = admin_page
    browser.eval("document.getElementById('points_minimum').value = '150'")
    browser.click("[data-rules-form] button[type=submit]")
    browser.wait_for("document.querySelector('[data-error=points_minimum]').textContent.length > 0")
    assert browser.text("[data-error=points_minimum]") == "最低交換ポイントは交換単位（100）の倍数にしてください。"
    browser.eval("document.getElementById('points_minimum').value = '200'")
    browser.click("[data-rules-form] button[type=submit]")
    browser.wait_for("document.querySelector('[data-saved]').textContent === '保存しました。'")
    assert browser.text("[data-error=points_minimum]") == ""


def test_retry_from_the_page_resyncs_once_the_cause_is_fixed(admin_page, services):
    browser, em = admin_page
    em.contracts[CONTRACT].required_columns.clear()
    browser.click("[data-retry-all]")
    browser.wait_for("!document.querySelector('[data-problems]').innerText.includes('birthDate')")
    Worker(services, "w").drain()
    assert em.member_by_code(CONTRACT, "8840734670934") is not None


def test_connection_test_reports_each_check(admin_page):
    browser, _ = admin_page
    browser.click("[data-test-connection]")
    browser.wait_for("document.querySelectorAll('[data-checks] li').length === 3")
    assert "birthDate" in browser.text("[data-checks]")


def test_connect_smaregi_sends_the_whole_tab_to_smaregi_and_shows_the_proven_contract(admin_page, services):
    from .smaregi_connect_support import sign_in

    browser, em = admin_page
    section = browser.text("#setup")
    assert f"接続中の契約ID：{CONTRACT}" in section and "SMAREGI_CONTRACT_ID" in section
    assert "JPY" in section and "Asia/Tokyo" in section and "契約ID" not in browser.eval(
        "Array.from(document.querySelectorAll('#setup input')).map(i => i.name).join(',')")
    browser.eval("window.open = function (url, target) { window.__opened = [url, target]; }")
    browser.click("[data-connect-smaregi]")
    url, target = browser.wait_for("window.__opened")
    assert target == "_top" and url.startswith(f"{services.smaregi.id_base}/authorize?")
    em.signin_contract = "sb_proven01"
    assert create_app(services=services).test_client().get(sign_in(url)).status_code == 200
    browser.eval("setTimeout(function () { location.reload(); }, 0)")
    time.sleep(0.5)
    browser.wait_for("document.body.dataset.ready === '1' && "
                     "document.querySelector('[data-contract-status]').textContent.includes('sb_proven01')")
    assert "スマレジへのログインで確認済み" in browser.text("#setup")
