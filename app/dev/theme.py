"""Render the theme app extension's block the way Shopify's Liquid would, with python-liquid.

Only what the block uses is emulated: `t` (with the extension's locale files and interpolation),
`asset_url`, `json`, the `customer`, `request.locale`, `routes` and `block` objects, and the
`{% schema %}` tag (read for setting defaults, rendered as nothing).
"""
from __future__ import annotations

import json
import re
from functools import cache
from typing import Any

from liquid import Environment
from markupsafe import Markup

from ..config import ROOT

EXTENSION = ROOT / "extensions" / "pointbridge-points"
SCHEMA = re.compile(r"{%-?\s*schema\s*-?%}(.*?){%-?\s*endschema\s*-?%}", re.DOTALL)


@cache
def _locale(name: str) -> dict[str, Any]:
    path = EXTENSION / "locales" / (f"{name}.json" if name != "en" else "en.default.json")
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def translate(key: str, locale: str, **variables: Any) -> str:
    for source in (_locale(locale), _locale("en")):
        node: Any = source
        for part in key.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, str):
            return re.sub(r"{{\s*(\w+)\s*}}", lambda m: str(variables.get(m.group(1), m.group(0))), node)
    return f"translation missing: {locale}.{key}"


def block_source(name: str = "points") -> tuple[str, dict[str, Any]]:
    source = (EXTENSION / "blocks" / f"{name}.liquid").read_text(encoding="utf-8")
    match = SCHEMA.search(source)
    schema = json.loads(match.group(1)) if match else {}
    return SCHEMA.sub("", source), schema


def render_block(*, customer: dict[str, Any] | None, locale: str = "en", settings: dict[str, Any] | None = None,
                 asset_base: str = "/assets", login_url: str = "/account/login", block_id: str = "pb1") -> str:
    source, schema = block_source()
    defaults = {s["id"]: s.get("default") for s in schema.get("settings", [])}
    env = Environment(autoescape=False)
    env.filters["t"] = lambda key, **kw: translate(key, locale, **kw)
    env.filters["asset_url"] = lambda name: f"{asset_base}/{name}"
    env.filters["json"] = lambda value: json.dumps(value, ensure_ascii=False)
    html = env.from_string(source).render(
        customer=customer, request={"locale": {"iso_code": locale}}, routes={"account_login_url": login_url},
        block={"id": block_id, "shopify_attributes": "", "settings": {**defaults, **(settings or {})}})
    assets = ""
    if schema.get("stylesheet"):
        assets += f'<link rel="stylesheet" href="{asset_base}/{schema["stylesheet"]}">'
    if schema.get("javascript"):
        assets += f'<script src="{asset_base}/{schema["javascript"]}" defer></script>'
    return Markup(assets + html)
