"""Connect Smaregi: the admin's start and finish (admin session token) and Smaregi's redirect back
in between, which only passes the browser on to the shop's admin (see app/connect.py)."""
from __future__ import annotations

from urllib.parse import urlencode

from flask import Blueprint, Response, jsonify, render_template, request

from .. import connect
from . import services
from .admin import authenticated
from .admin_text import texts

bp = Blueprint("smaregi_connect", __name__)

# The URL holds a one-time code: never cached, never sent on as a Referer.
NO_STORE = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}


@bp.post("/admin/api/smaregi/connect")
@authenticated
def start(shop):
    return jsonify({"authorize_url": connect.start(services(), shop.shop_id)})


@bp.post("/admin/api/smaregi/connect/finish")
@authenticated
def finish(shop):
    """App Home, opened by the callback's redirect, hands over what Smaregi sent back."""
    body = request.get_json(silent=True)
    body = body if isinstance(body, dict) else {}

    def text(name: str) -> str | None:
        value = body.get(name)
        return value if isinstance(value, str) and 0 < len(value) <= 512 else None

    done = connect.finish(services(), shop.shop_id, text("state"), text("code"), text("error"))
    return jsonify({"contract_id": done.contract_id, "changed": done.changed})


@bp.get(connect.CALLBACK_PATH)
def callback():
    """Smaregi's redirect back. Binds nothing: it sends the browser to the admin of the shop that
    started this sign-in, where only that shop's signed-in staff can finish it."""
    states = request.args.getlist("state")
    try:
        domain = connect.returned_to(services(), states[0] if len(states) == 1 else None)
    except connect.ConnectRefused as exc:
        lang, t = texts(request.accept_languages.best_match(["ja", "en"]) or "ja")
        html = render_template("smaregi_connected.html", lang=lang, t=t, outcome=exc.reason, contract=None, back=None)
        return Response(html, status=400, headers=NO_STORE)
    handed = {"smaregi_state": states[0]}
    for name in ("code", "error"):
        if request.args.get(name):
            handed[f"smaregi_{name}"] = request.args[name]
    admin = f"https://{domain}/admin/apps/{services().config.shopify_api_key}/connection?{urlencode(handed)}"
    return Response(status=302, headers={"Location": admin, **NO_STORE})
