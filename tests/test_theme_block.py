"""The theme app block, rendered with python-liquid as Shopify would, and its shipped assets."""
from __future__ import annotations

import json
import re

from app.dev.theme import EXTENSION, block_source, render_block


def strings(html: str) -> dict:
    return json.loads(re.search(r'<script type="application/json" data-pb-strings>(.*?)</script>', html, re.DOTALL).group(1))


def test_a_guest_sees_only_a_sign_in_link():
    html = render_block(customer=None, locale="en")
    assert "Sign in to see your points" in html and 'href="/account/login"' in html
    assert "data-pb-points" not in html and "Balance" not in html


def test_a_customer_sees_their_name_at_once_and_a_same_size_skeleton():
    html = render_block(customer={"first_name": "Taro", "name": "Taro Yamada"}, locale="en")
    assert "Hello, Taro" in html
    assert html.count("pb-skeleton") >= 5 and 'aria-busy="true"' in html
    assert 'data-proxy="/apps/points"' in html and 'data-locale="en"' in html
    assert strings(html)["points"] == "{count} pts"  # filled in by the script, untouched by Liquid


def test_japanese_customer_and_escaping_of_the_name():
    html = render_block(customer={"first_name": "<b>太郎</b>", "name": "x"}, locale="ja")
    assert "&lt;b&gt;太郎&lt;/b&gt; 様" in html and "<b>太郎</b>" not in html
    assert "保有ポイント" in html and "最近のご利用" in html
    assert strings(html)["errors"]["insufficient_points"] == "ポイントが不足しています。"


def test_merchant_settings_change_heading_colours_and_proxy_path():
    html = render_block(customer={"first_name": "Taro"}, locale="en",
                        settings={"heading": "Rewards", "accent_color": "#123456", "proxy_path": "/tools/loyalty"})
    assert ">Rewards</h2>" in html and "--pb-accent: #123456" in html
    assert 'data-proxy="/tools/loyalty"' in html


def test_every_key_the_block_uses_exists_in_both_languages():
    source, schema = block_source()
    keys = set(re.findall(r"'(pointbridge\.[\w.]+)' \| t", source))
    for name in ("en.default.json", "ja.json"):
        data = json.loads((EXTENSION / "locales" / name).read_text(encoding="utf-8"))
        for key in keys:
            node = data
            for part in key.split("."):
                node = node[part]
            assert isinstance(node, str), f"{name}: {key}"
    assert schema["javascript"] == "points.js" and schema["target"] == "section"
    setting_labels = {s["label"] for s in schema["settings"]}
    for name in ("en.default.schema.json", "ja.schema.json"):
        data = json.loads((EXTENSION / "locales" / name).read_text(encoding="utf-8"))
        for label in setting_labels:
            node = data
            for part in label.removeprefix("t:").split("."):
                node = node[part]
            assert isinstance(node, str)


def test_assets_are_small_and_load_nothing_external():
    js = (EXTENSION / "assets" / "points.js").read_bytes()
    css = re.search(rb"<style>(.*?)</style>", (EXTENSION / "blocks" / "points.liquid").read_bytes(), re.S).group(1)
    assert len(js) < 10_000
    assert not re.search(rb"https?://", js + css)  # no external scripts, fonts or images
