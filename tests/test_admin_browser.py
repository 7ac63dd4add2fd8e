"""App Home in headless Chromium, with App Bridge stubbed and Shopify's CDN unreachable."""
from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from app import create_app
from app.dev.signing import app_home_id_token
from app.sync import directory
from app.sync.worker import Worker
from app.webhooks.dispatch import Delivery, record

from .browser import visible, with_polaris
from .conftest import CONTRACT, SHOP, serving
from .helpers import customer


@pytest.fixture
def admin_page(services, smaregi_em, browser):
    smaregi_em[0].contracts[CONTRACT].required_columns["birthDate"] = "1"
    directory.import_pages(services.db, services.smaregi.contract(CONTRACT))
    record(services.db, services.config, Delivery(SHOP, "customers/create", "w1", None, None, customer()))
    Worker(services, "w").drain()

    def token():
        return app_home_id_token(services.config.shopify_api_key, services.config.shopify_api_secret, SHOP, ttl_s=300)

    with serving(create_app(services=services)) as url:
        # What App Bridge provides: a fresh session token per request.
        browser.before_scripts(f"window.shopify = {{ idToken: () => Promise.resolve({token()!r}) }};")

        def page(path: str, locale: str = "ja", extra: str = ""):
            query = f"shop={SHOP}&host=x&locale={locale}&id_token={token()}" + (f"&{extra}" if extra else "")
            browser.open(f"{url}{path}?{query}")
            browser.wait_for("document.body.dataset.ready === '1'")

        browser.page = page
        page("/")
        yield browser, smaregi_em[0]


def figures(browser) -> dict[str, str]:
    """The dashboard's tiles as the merchant reads them: each label with its figure."""
    return dict(browser.eval("Array.from(document.querySelectorAll('#dashboard [data-stats] s-box'))"
                             ".map(b => [b.querySelector('s-heading').innerText, b.querySelector('s-text').innerText])"))


def test_dashboard_and_failures_render_in_japanese(admin_page):
    browser, _ = admin_page
    assert figures(browser) == {"同期済み": "0", "待機中": "0", "失敗": "1", "重複": "0", "保留": "0", "一時停止": "0",
                                "Webhook → POS（24時間、p50 / p95）": "—", "本日の交換": "0 (0 pt)", "要確認": "0"}
    browser.page("/members")
    problems = browser.text("[data-problems]")
    assert "8840734670934" in problems and "birthDate" in problems and "再試行" in problems


def test_settings_errors_show_next_to_the_field_and_a_fix_saves(admin_page):
    browser, _ = admin_page
    browser.page("/rules")
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
    browser.page("/members")
    browser.click("[data-retry-all]")
    browser.wait_for("!document.querySelector('[data-problems]').innerText.includes('birthDate')")
    Worker(services, "w").drain()
    assert em.member_by_code(CONTRACT, "8840734670934") is not None


def test_connection_test_reports_each_check(admin_page):
    browser, _ = admin_page
    browser.page("/connection")
    browser.click("[data-test-connection]")
    browser.wait_for("document.querySelectorAll('[data-checks] li').length === 3")
    assert "birthDate" in browser.text("[data-checks]")


PAGES = {"/": "ダッシュボード", "/connection": "スマレジ接続", "/rules": "ポイント設定", "/members": "会員と同期エラー",
         "/coupons": "クーポンとポイント履歴", "/data-requests": "顧客データの開示請求"}


def test_each_page_is_its_own_document_with_the_app_bridge_nav(admin_page, tmp_path):
    browser, _ = admin_page
    for path, title in PAGES.items():
        browser.page(path)
        assert browser.eval("document.querySelector('s-page').getAttribute('heading')") == title
        nav = browser.eval("Array.from(document.querySelectorAll('s-app-nav s-link'))"
                           ".map(a => [a.getAttribute('href'), a.textContent])")
        assert nav == [[p, t] for p, t in PAGES.items()]
        # Without App Bridge the same list is on the page, each link keeping the session's query.
        fallback = browser.eval("Array.from(document.querySelectorAll('[data-fallback-nav] a')).map(a => a.href)")
        assert len(fallback) == 6 and all("id_token=" in href and "locale=ja" in href for href in fallback)
        assert browser.eval("document.querySelector('[data-fallback-nav] [aria-current]').textContent") == title
        browser.screenshot(str(tmp_path / f"admin{path.replace('/', '-')}.png"))


def test_connection_results_and_filters_are_in_japanese(admin_page):
    browser, _ = admin_page
    browser.page("/connection")
    browser.click("[data-test-connection]")
    browser.wait_for("document.querySelectorAll('[data-checks] li').length === 3")
    checks = browser.text("[data-checks]")
    assert "アプリが契約にログインできました。" in checks and "会員とポイントを読み取れます。" in checks
    assert "スマレジで Shopify にない項目が必須になっています：birthDate" in checks
    assert "The app signed in" not in checks and "Smaregi requires" not in checks
    browser.page("/coupons")
    options = browser.eval("Array.from(document.querySelectorAll('[data-field=conv_status] option'))"
                           ".map(o => o.textContent)")
    assert options == ["すべての状態", "完了", "要確認", "失敗", "処理中", "取り消し中", "注文で使用済み",
                       "返還済み（ポイント返還）", "期限切れ（ポイント返還）"]
    assert not any("_" in o for o in options)


def test_customers_are_shown_by_their_shopify_name_with_a_link(admin_page, shopify_em):
    browser, _ = admin_page
    shopify_em[0].add_customer(SHOP, 8840734670934, firstName="太郎", lastName="山田")
    browser.page("/members")
    browser.wait_for("!!document.querySelector('[data-problems] [data-customer] a')")
    link = browser.eval("(a => [a.textContent, a.href, a.target])"
                        "(document.querySelector('[data-problems] [data-customer] a'))")
    assert link == ["太郎 山田", "https://admin.shopify.com/store/pointbridge-test/customers/8840734670934", "_top"]


def test_a_customer_shopify_no_longer_has_shows_as_an_id(admin_page, shopify_em):
    browser, _ = admin_page
    shopify_em[0].shops[SHOP].customers.clear()
    browser.page("/members")
    assert browser.text("[data-problems] [data-customer]") == "顧客 8840734670934"


def test_connect_smaregi_sends_the_whole_tab_to_smaregi_and_shows_the_proven_contract(admin_page, services):
    from .smaregi_connect_support import sign_in

    browser, em = admin_page
    browser.page("/connection")
    section = browser.text("#setup")
    assert f"接続中の契約ID：{CONTRACT}" in section and "SMAREGI_CONTRACT_ID" in section
    assert "JPY" in section and "Asia/Tokyo" in section
    assert browser.eval("document.querySelectorAll('#setup input').length") == 0  # no typed contract id
    browser.eval("window.open = function (url, target) { window.__opened = [url, target]; }")
    browser.click("[data-connect-smaregi]")
    url, target = browser.wait_for("window.__opened")
    assert target == "_top" and url.startswith(f"{services.smaregi.id_base}/authorize?")
    em.signin_contract = "sb_proven01"
    handed = create_app(services=services).test_client().get(sign_in(url))  # Smaregi's redirect back
    assert handed.status_code == 302
    admin = urlsplit(handed.headers["Location"])  # this shop's admin, its connection page
    assert admin.netloc == SHOP and admin.path.endswith("/connection")
    browser.page("/connection", extra=admin.query)  # as Shopify admin loads it, with the handed-over code
    browser.wait_for("document.querySelector('[data-contract-status]').textContent.includes('sb_proven01')")
    assert "sb_proven01" in browser.text("[data-connect-outcome]")
    assert "スマレジへのログインで確認済み" in browser.text("#setup")
    assert "smaregi_code" not in browser.eval("location.search")  # the one-time code leaves the URL


def test_a_held_customer_is_explained_and_the_merchant_chooses_the_member(admin_page, services):
    from .test_email_linking import HANAKO, store_hanako, unverified
    from .test_member_sync import drain, link_of, queue_customer

    browser, em = admin_page
    em.contracts[CONTRACT].required_columns.clear()
    store = store_hanako(em)
    directory.refresh_window(services.db, services.smaregi.contract(CONTRACT))  # the store member is known
    queue_customer(services, unverified(email="hanako@example.com"))
    drain(services)
    browser.page("/")
    assert figures(browser)["保留"] == "1"
    browser.page("/members")
    problems = browser.text("[data-problems]")
    assert "Shopifyでメールアドレスを確認していない" in problems and "S-000101 とつなぐ" in problems
    browser.eval("Array.from(document.querySelectorAll('[data-problems] button'))"
                 ".find(function (b) { return b.textContent === 'S-000101 とつなぐ'; }).click()")
    browser.wait_for("!document.querySelector('[data-problems]').innerText.includes('S-000101')")
    assert link_of(services, HANAKO).smaregi_customer_id == store["customerId"]


def test_earning_rules_show_field_errors_then_save_and_the_summary_has_a_total(admin_page):
    browser, _ = admin_page
    browser.page("/rules")
    assert browser.text("[data-earning] s-table-row:first-child s-table-cell:first-child") == "全顧客"
    browser.eval("document.getElementById('earn_hold_days').value = ''")
    browser.click("[data-earning-form] button[type=submit]")
    browser.wait_for("document.querySelector('[data-earning-form] [data-error=earn_hold_days]').textContent.length > 0")
    assert browser.text("[data-earning-form] [data-error=earn_hold_days]") == "整数で入力してください。"
    assert browser.text("[data-earning-saved]") == "上の項目を修正してください。"
    assert browser.text("[data-saved]") == ""  # the point rules' form is not touched
    browser.eval("document.getElementById('earn_hold_days').value = '7';"
                 "document.getElementById('earn_on').value = 'fulfilled'")
    browser.click("[data-earning-form] button[type=submit]")
    browser.wait_for("document.querySelector('[data-earning-saved]').textContent === '保存しました。'")
    browser.page("/rules")
    assert browser.eval("[document.getElementById('earn_hold_days').value, document.getElementById('earn_on').value]") \
        == ["7", "fulfilled"]


def test_a_member_withdrawn_at_the_register_is_listed_in_the_admins_words(admin_page, services):
    from app.sync import operations, smaregi_events

    browser, em = admin_page
    em.contracts[CONTRACT].required_columns.clear()
    operations.retry_failed(services.db)
    Worker(services, "w").drain()
    member = em.member_by_code(CONTRACT, "8840734670934")
    em.edit_member(CONTRACT, member["customerId"], status="3")  # 退会 at the register
    event = {"contractId": CONTRACT, "event": "pos:customers", "action": "edited", "customerIds": [member["customerId"]]}
    smaregi_events.record(services.db, services.config, smaregi_events.parse({"Smaregi-Event-Id": "e1"}, event))
    Worker(services, "w").drain()
    browser.page("/members")
    row = browser.text("[data-problems]")
    assert "スマレジで退会" in row and "レジで会員が退会しました。" in row and "withdrawn" not in row


def test_with_polaris_loaded_the_rules_use_its_fields_and_errors(admin_page):
    browser, _ = admin_page
    with_polaris(browser)
    browser.page("/rules")
    minimum = "document.querySelector('[data-field=points_minimum]')"
    assert browser.eval(f"{minimum}.value") == "100"  # the settings went into Polaris's field
    assert browser.eval("document.getElementById('points_minimum').checkVisibility()") is False  # no fallback shown
    assert browser.eval("document.querySelector('[data-field=sync_enabled]').checked") is True
    browser.eval(f"{minimum}.value = '150'")
    browser.click("[data-rules-form] [data-save]")  # Polaris's button, not the hidden native one
    browser.wait_for(f"{minimum}.hasAttribute('error')")
    assert browser.eval(f"{minimum}.getAttribute('error')") == "最低交換ポイントは交換単位（100）の倍数にしてください。"
    assert browser.eval("document.querySelector('[data-error=points_minimum]').checkVisibility()") is False  # once
    browser.eval(f"{minimum}.value = '200'")
    browser.click("[data-rules-form] [data-save]")
    browser.wait_for("document.querySelector('[data-saved]').textContent === '保存しました。'")
    assert browser.eval(f"{minimum}.hasAttribute('error')") is False
    browser.page("/rules")
    assert browser.eval(f"{minimum}.value") == "200"


def test_with_polaris_loaded_buttons_badges_tables_and_filters_are_its_own(admin_page):
    browser, em = admin_page
    with_polaris(browser)
    browser.page("/")
    assert browser.eval("document.querySelector('#dashboard [data-stats]').matches(':defined')")  # Polaris's grid
    assert figures(browser)["失敗"] == "1" and figures(browser)["本日の交換"] == "0 (0 pt)"
    browser.page("/connection")
    browser.click("[data-test-connection]")
    browser.wait_for("document.querySelectorAll('[data-checks] li').length === 3")
    badges = browser.eval("Array.from(document.querySelectorAll('[data-checks] s-badge'))"
                          ".map(b => [b.textContent, b.getAttribute('tone')])")
    assert badges == [["正常", "success"], ["正常", "success"], ["要対応", "critical"]]
    browser.page("/connection", extra="smaregi_state=forged")  # a sign-in this app never started
    browser.wait_for("!document.querySelector('[data-connect-outcome]').hidden")
    outcome = browser.eval("(b => [b.localName, b.getAttribute('tone'), b.textContent])"
                           "(document.querySelector('[data-connect-outcome]'))")
    assert outcome[:2] == ["s-banner", "critical"] and outcome[2].startswith("このログインのリンクは無効です")

    browser.page("/members")
    # The static button and the ones the script builds show Polaris's label, not the native button.
    assert visible(browser, "[data-retry-all] [data-label]") and not visible(browser, "[data-retry-all] button")
    state = browser.eval("(b => [b.localName, b.textContent, b.getAttribute('tone')])"
                         "(document.querySelector('[data-problems] s-badge'))")
    assert state == ["s-badge", "失敗", "critical"]
    # Polaris gives its table its semantics; the fallback's roles are not added over them.
    assert browser.eval("document.querySelector('[data-problems] s-table-row').hasAttribute('role')") is False
    assert not visible(browser, "[data-problems] s-button button")
    em.contracts[CONTRACT].required_columns.clear()
    browser.click("[data-problems] s-button")  # Retry, built by PB.button: the click reaches its handler
    browser.wait_for("!document.querySelector('[data-problems]').innerText.includes('birthDate')")

    browser.page("/coupons")
    browser.eval("window.__asked = []; var f = window.fetch;"
                 "window.fetch = function (u, o) { window.__asked.push(u); return f(u, o); }")
    browser.eval("(s => { s.value = 'S-0001'; s.dispatchEvent(new Event('input', {bubbles: true})); })"
                 "(document.querySelector('[data-field=conv_q]'))")
    browser.eval("(s => { s.value = 'needs_review'; s.dispatchEvent(new Event('change', {bubbles: true})); })"
                 "(document.querySelector('[data-field=conv_status]'))")
    browser.wait_for("window.__asked.some(u => u.endsWith('/conversions?q=S-0001&status=needs_review'))")
    assert not visible(browser, "#conv_q") and not visible(browser, "#conv_status")


TILE_HEIGHTS = "Array.from(document.querySelectorAll('#dashboard s-box')).map(b => b.getBoundingClientRect().height)"


def test_without_polaris_the_dashboard_is_tiles_sized_before_their_figures_come(admin_page):
    browser, _ = admin_page
    assert browser.eval("getComputedStyle(document.querySelector('#dashboard [data-stats]')).display") == "grid"
    assert figures(browser)["失敗"] == "1"
    filled = browser.eval(TILE_HEIGHTS)
    # The page comes with every tile and a "—" for its figure, so nothing moves when the figures arrive.
    browser.eval("document.querySelectorAll('#dashboard s-box s-text').forEach(t => { t.textContent = '—'; })")
    assert browser.eval(TILE_HEIGHTS) == filled and len(filled) == 9


def test_without_polaris_the_tables_read_as_tables_and_the_native_buttons_work(admin_page):
    browser, em = admin_page
    browser.page("/members")
    roles = browser.eval("[document.querySelector('#problems s-table').getAttribute('role'),"
                         " document.querySelector('#problems s-table-header').getAttribute('role'),"
                         " document.querySelector('[data-problems] s-table-row').getAttribute('role'),"
                         " document.querySelector('[data-problems] s-table-cell').getAttribute('role')]")
    assert roles == ["table", "columnheader", "row", "cell"]
    assert visible(browser, "[data-retry-all] button") and not visible(browser, "[data-retry-all] [data-label]")
    assert browser.text("[data-problems] s-badge") == "失敗"
    em.contracts[CONTRACT].required_columns.clear()
    browser.click("[data-problems] s-button button")  # the native Retry a merchant offline clicks
    browser.wait_for("!document.querySelector('[data-problems]').innerText.includes('birthDate')")
    browser.page("/data-requests")
    assert browser.text("[data-requests]") == "開示請求はありません。"
