"""The import section of App Home in headless Chromium: start it, follow it, see who is held."""
from __future__ import annotations

import pytest

from app.dev.signing import app_home_id_token

from .conftest import CONTRACT, SHOP
from .import_support import make_world
from .test_customer_import import new_customers


@pytest.fixture
def world(make_services, db_url, smaregi_em, shopify_em):
    yield from make_world(make_services, db_url, smaregi_em, shopify_em)


@pytest.mark.parametrize("locale,waiting,done", [("ja", "待機中", "取り込みが完了しました"),
                                                 ("en", "Queued", "Import finished")])
def test_the_merchant_starts_the_import_and_follows_it_to_the_end(world, browser, locale, waiting, done):
    world.install()
    new_customers(world, 30)
    for code in ("S-1", "S-2"):
        world.smaregi.add_member(CONTRACT, customerCode=code, lastName="鈴木", firstName="一郎",
                                 mailAddress="shared@example.com")
    world.customer(8_000_000_000_001, email="shared@example.com")
    world.directory_ready()
    token = app_home_id_token(world.services.config.shopify_api_key, world.services.config.shopify_api_secret, SHOP,
                              ttl_s=300)
    browser.before_scripts(f"window.shopify = {{ idToken: () => Promise.resolve({token!r}) }};")
    browser.open(f"{world.app_url}/members?shop={SHOP}&host=x&locale={locale}&id_token={token}")
    browser.wait_for("document.body.dataset.ready === '1'")
    browser.wait_for("document.querySelector('[data-import-state]').textContent.length > 0")

    browser.click("[data-import-start]")
    browser.wait_for(f"document.querySelector('[data-import-state]').textContent.includes({waiting!r})")
    assert browser.eval("document.querySelector('[data-import-start]').hidden")  # one import at a time
    world.run()
    browser.wait_for(f"document.querySelector('[data-import-state]').textContent.includes({done!r})")
    assert browser.text("[data-import-count=counted]") == "31"
    assert browser.text("[data-import-count=created]") == "30"
    assert browser.text("[data-import-count=held]") == "1"
    # The held customer by the name Shopify has for them, linked to them in Shopify admin.
    link = browser.wait_for("document.querySelector('[data-import-held-list] a')"
                            " && document.querySelector('[data-import-held-list] a').href")
    assert link.endswith("/customers/8000000000001")
