"""The ledger audit's section of App Home, in headless Chromium (ja): the button, the listed
difference in the merchant's words, and the one-click fix."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from app import create_app
from app.dev.signing import app_home_id_token
from app.models import MemberLink
from app.points import audit
from app.sync import directory
from app.sync.worker import Worker
from app.webhooks.dispatch import Delivery, record

from .conftest import CONTRACT, SHOP, serving
from .helpers import customer

TARO = 8840734670934


@pytest.fixture
def admin_page(services, smaregi_em, browser):
    em = smaregi_em[0]
    member = em.add_member(CONTRACT, customerCode=str(TARO), lastName="山田", firstName="太郎")
    directory.import_pages(services.db, services.smaregi.contract(CONTRACT))
    record(services.db, services.config, Delivery(SHOP, "customers/create", "w1", None, None, customer(TARO)))
    Worker(services, "w").drain()
    em.edit_member(CONTRACT, member["customerId"], customerCode="CARD-0042")  # changed at the register

    def token():
        return app_home_id_token(services.config.shopify_api_key, services.config.shopify_api_secret, SHOP, ttl_s=300)

    with serving(create_app(services=services)) as url:
        browser.before_scripts(f"window.shopify = {{ idToken: () => Promise.resolve({token()!r}) }};")
        browser.open(f"{url}/coupons?shop={SHOP}&host=x&locale=ja&id_token={token()}")
        browser.wait_for("document.body.dataset.ready === '1'")
        yield browser


def test_the_merchant_checks_now_sees_the_difference_and_fixes_it(admin_page, services):
    browser = admin_page
    assert "まだ照合していません。" in browser.text("#audit")
    browser.click("[data-audit-run]")
    browser.wait_for("document.querySelector('[data-audit-status]').innerText === '照合待ち…'")
    audit.run_due(services)  # what the worker's scheduler does next
    browser.wait_for("document.querySelector('[data-audit]').innerText.includes('CARD-0042')", timeout_s=10)
    row = browser.text("[data-audit]")
    assert "スマレジで会員コードが変更されています" in row and f"{TARO} → CARD-0042" in row
    browser.eval("Array.from(document.querySelectorAll('[data-audit] button'))"
                 ".find(function (b) { return b.textContent === '新しいコードを使う'; }).click()")
    browser.wait_for("document.querySelector('[data-audit]').innerText.includes('差異はありません。')")
    with services.db.transaction() as s:
        assert s.scalar(select(MemberLink.member_code)) == "CARD-0042"
