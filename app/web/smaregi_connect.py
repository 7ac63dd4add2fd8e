"""Connect Smaregi: the admin's start (admin session token) and Smaregi's redirect back (its
`state` is the only credential; see app/connect.py)."""
from __future__ import annotations

from flask import Blueprint, Response, jsonify, render_template, request

from .. import connect
from . import services
from .admin import authenticated
from .admin_text import texts

bp = Blueprint("smaregi_connect", __name__)

# What the merchant reads on the page Smaregi sends them back to; the status says the same.
REFUSED_STATUS = {"smaregi_unavailable": 502}


@bp.post("/admin/api/smaregi/connect")
@authenticated
def start(shop):
    return jsonify({"authorize_url": connect.start(services(), shop.shop_id)})


@bp.get(connect.CALLBACK_PATH)
def callback():
    lang, t = texts(request.accept_languages.best_match(["ja", "en"]) or "ja")
    states = request.args.getlist("state")
    status, shop, contract, outcome = 200, None, None, "connected"
    try:
        done = connect.finish(services(), states[0] if len(states) == 1 else None, request.args.get("code"),
                              request.args.get("error"))
        shop, contract = done.shop_domain, done.contract_id
    except connect.ConnectRefused as exc:
        shop, outcome = exc.shop_domain, exc.reason
        status = REFUSED_STATUS.get(exc.reason, 400)
    back = f"https://{shop}/admin/apps/{services().config.shopify_api_key}" if shop else None
    html = render_template("smaregi_connected.html", lang=lang, t=t, outcome=outcome, contract=contract, back=back)
    # The URL held a one-time code: never cached, never sent on as a Referer.
    return Response(html, status=status, headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"})
