"""The coupons and point movements page of App Home in headless Chromium (ja): a conversion and a point
movement waiting for the merchant and the ledger audit's difference, each a row of its table with the
buttons that settle it, with Polaris's components and with the offline fallback."""
from __future__ import annotations

import json

import pytest
from sqlalchemy import select, update

from app.dev.signing import app_home_id_token
from app.models import Conversion, MemberLink, PointMovement, Shop
from app.points import audit, movements
from app.points.movements import MovementKind, MovementReason
from app.sync import reasons

from .browser import with_polaris
from .conftest import CONTRACT, SHOP, serving
from .test_conversions import TARO, Given

RENDERINGS = pytest.mark.parametrize("polaris", [False, True], ids=["fallback", "polaris"])


@pytest.fixture
def coupons_page(services, smaregi_em, shopify_em, browser):
    given = Given(services, smaregi_em[0], shopify_em[0])
    assert given.convert(500).status_code == 201
    shopify_em[0].active_discounts(SHOP)[0]["status"] = "EXPIRED"  # deactivated when parked for review
    with services.db.transaction() as s:
        s.execute(update(Conversion).values(status="needs_review"))
        grant = movements.plan(s, shop_id=s.scalar(select(Shop.id)), customer_id=TARO, kind=MovementKind.GRANT,
                               reason=MovementReason.ONLINE_PURCHASE, points=40)
        s.execute(update(PointMovement).where(PointMovement.id == grant.id).values(
            state="needs_review", next_attempt_at=None,
            error=reasons.text("movement_member_gone")))
    smaregi_em[0].edit_member(CONTRACT, given.taro["customerId"], customerCode="CARD-0042")  # changed at the register

    def token():
        return app_home_id_token(services.config.shopify_api_key, services.config.shopify_api_secret, SHOP, ttl_s=300)

    def page(polaris: bool):
        if polaris:
            with_polaris(browser)
        browser.open(f"{url}/coupons?shop={SHOP}&host=x&locale=ja&id_token={token()}")
        browser.wait_for("document.body.dataset.ready === '1'")
        return browser

    with serving(given.client.application) as url:
        browser.before_scripts(f"window.shopify = {{ idToken: () => Promise.resolve({token()!r}) }};")
        yield page


def rows(browser, body: str) -> list[dict]:
    """Each row of a table as the merchant reads it: the text of its cells (the actions' cell left out
    when it has buttons) and the labels of its buttons that show."""
    return browser.eval(f"""Array.from(document.querySelectorAll({json.dumps(body + ' > s-table-row')})).map(r => ({{
      cells: Array.from(r.children).filter(c => !c.querySelector('s-button')).map(c => c.innerText),
      buttons: Array.from(r.querySelectorAll('s-button'))
        .map(s => Array.from(s.children).filter(c => c.checkVisibility()).map(c => c.textContent).join('|'))}}))""")


def press(browser, body: str, label: str, polaris: bool) -> None:
    """Click the button with this label as the merchant can: Polaris's s-button, or offline the native
    button inside it (whichever shows)."""
    target = "s" if polaris else "s.querySelector('button')"
    shown = browser.eval(f"""(s => {{ var b = {target}; var shown = b.checkVisibility(); b.click(); return shown; }})(
      Array.from(document.querySelectorAll({json.dumps(body + ' s-button')}))
        .find(s => s.querySelector('[data-label]').textContent === {json.dumps(label)}))""")
    assert shown, f"{label}: the button clicked is not the one that shows"


def wait_for_names(browser, body: str) -> None:
    browser.wait_for(f"!!document.querySelector({json.dumps(body + ' [data-customer] a')})")


@RENDERINGS
def test_the_merchant_settles_a_conversion_and_a_point_movement_from_their_rows(coupons_page, services, polaris):
    browser = coupons_page(polaris)
    wait_for_names(browser, "[data-conversions]")
    [conversion] = rows(browser, "[data-conversions]")
    assert conversion["cells"][1:] == ["太郎", "", "500", "要確認"]  # no code shown while undecided
    assert conversion["buttons"] == ["減算済み：コードを有効にする", "未減算：コードを取り消す"]
    [movement] = rows(browser, "[data-movements-review]")
    assert movement["cells"][1:] == ["太郎", "オンライン購入", "+40", "—",
                                     "スマレジに会員がいなくなりました（レジで退会または削除）。"]  # by code
    assert movement["buttons"] == ["もう一度試す（未反映）", "スマレジに未反映：取り下げる"]
    # Polaris gives its tables their semantics; offline the same elements are told their roles.
    roles = browser.eval("['#movements-review s-table', '[data-conversions] s-table-row', '[data-conversions] s-table-cell']"
                         ".map(s => document.querySelector(s).getAttribute('role'))")
    assert roles == ([None, None, None] if polaris else ["table", "row", "cell"])

    press(browser, "[data-conversions]", "減算済み：コードを有効にする", polaris)
    browser.wait_for("document.querySelector('[data-conversions]').innerText.includes('完了')")
    wait_for_names(browser, "[data-conversions]")
    [conversion] = rows(browser, "[data-conversions]")
    with services.db.transaction() as s:
        code = s.scalar(select(Conversion.code))
    assert conversion == {"cells": [conversion["cells"][0], "太郎", code, "500", "完了 — POS で確認済み。", ""],
                          "buttons": []}

    press(browser, "[data-movements-review]", "スマレジに未反映：取り下げる", polaris)
    browser.wait_for("document.querySelector('[data-movements-review]').innerText.includes('確認が必要なものはありません。')")
    assert rows(browser, "[data-movements-review]") == [{"cells": ["確認が必要なものはありません。"], "buttons": []}]
    with services.db.transaction() as s:
        assert s.scalar(select(PointMovement.state).where(PointMovement.kind == "grant")) == "refused"


@RENDERINGS
def test_the_merchant_checks_now_sees_the_difference_and_fixes_it(coupons_page, services, polaris):
    browser = coupons_page(polaris)
    assert "まだ照合していません。" in browser.text("#audit")
    assert rows(browser, "[data-audit]") == [{"cells": ["差異はありません。"], "buttons": []}]
    press(browser, "#audit", "今すぐ照合", polaris)
    browser.wait_for("document.querySelector('[data-audit-status]').innerText === '照合待ち…'")
    audit.run_due(services)  # what the worker's scheduler does next
    browser.wait_for("document.querySelector('[data-audit]').innerText.includes('CARD-0042')", timeout_s=10)
    wait_for_names(browser, "[data-audit]")
    assert rows(browser, "[data-audit]") == [{
        "cells": ["スマレジで会員コードが変更されています", "太郎", f"{TARO} → CARD-0042"],
        "buttons": ["新しいコードを使う", "確認済み（閉じる）"]}]
    press(browser, "[data-audit]", "新しいコードを使う", polaris)
    browser.wait_for("document.querySelector('[data-audit]').innerText.includes('差異はありません。')")
    with services.db.transaction() as s:
        assert s.scalar(select(MemberLink.member_code).where(MemberLink.shopify_customer_id == TARO)) == "CARD-0042"
