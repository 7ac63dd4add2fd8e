"""The member card on the dev storefront, in a real browser: tap, full screen, and what the screen
shows decodes, as the register's scanner would read it, to the member's code."""
from __future__ import annotations

import zxingcpp
from PIL import Image

from .test_storefront_browser import READY, TARO, site  # noqa: F401 (a fixture)

OPEN = "[data-pb-card-open]"
SHOWN = ("(function(){var b=document.querySelector('[data-pb-card]');"
         "return !b.hidden && b.querySelector('[data-pb-card-qr]').complete"
         " && b.querySelector('[data-pb-card-barcode]').naturalWidth > 0;})()")


def test_a_tap_shows_the_card_full_screen_and_the_screen_scans_to_the_members_code(site, browser, tmp_path):  # noqa: F811
    _, _, _, url = site
    browser.open(f"{url}/?customer={TARO}&locale=ja")
    browser.wait_for(f"{READY} === 'ready'")
    assert browser.text(OPEN) == "会員証を表示"
    browser.click(OPEN)
    browser.wait_for(SHOWN)
    box = browser.eval("(function(){var r=document.querySelector('[data-pb-card]').getBoundingClientRect();"
                       "return [r.left, r.top, r.width === innerWidth, r.height === innerHeight,"
                       " getComputedStyle(document.querySelector('[data-pb-card]')).backgroundColor];})()")
    assert box == [0, 0, True, True, "rgb(255, 255, 255)"]  # covers the page, white
    assert browser.text(".pb-card__code") == str(TARO)
    shot = tmp_path / "card.png"
    browser.screenshot(str(shot))
    found = {(r.format.name, r.text) for r in zxingcpp.read_barcodes(Image.open(shot))}
    assert found == {("Code128", str(TARO)), ("QRCode", str(TARO))}
    browser.click("[data-pb-card]")  # a tap closes it
    assert browser.wait_for("document.querySelector('[data-pb-card]').hidden")
