"""The App Proxy (`https://{shop}/apps/points/*` → `/proxy/*`): the storefront block's backend.

The customer is `logged_in_customer_id` from a request whose signature verified, and nothing else.
"""
from __future__ import annotations

from flask import Blueprint, jsonify, request

from ..points import conversion
from ..points.balance import read_balance
from ..points.errors import InvalidRequest, NotLoggedIn
from ..points.member import Shopper
from . import errors, services

bp = Blueprint("proxy", __name__, url_prefix="/proxy")
errors.register(bp)


def verified_shopper() -> Shopper:
    proof = services().verifier.app_proxy(request.method, dict(request.headers), request.url)
    if proof.customer_id is None:
        raise NotLoggedIn()
    return Shopper(proof.shop_domain, proof.customer_id)


@bp.after_request
def no_store(resp):
    # Per-customer answers: never cached by Shopify, a CDN or the browser.
    resp.headers["Cache-Control"] = "no-store, private"
    return resp


@bp.get("/balance")
def balance():
    shopper = verified_shopper()
    view = read_balance(services(), shopper, locale=request.args.get("locale", "en"))
    resp = jsonify(view.payload)
    resp.headers["Server-Timing"] = f"pos;dur={view.pos_ms:.1f}"  # how much of the wait was Smaregi
    return resp


@bp.post("/conversions")
def create_conversion():
    shopper = verified_shopper()
    # JSON only: a cross-site <form> can only send form encodings, so this also blocks CSRF.
    if request.mimetype != "application/json":
        raise InvalidRequest("Send a JSON body with points and idempotency_key.")
    points, key = conversion.parse_request(request.get_json(silent=True))
    result = conversion.convert(services(), shopper, points, key)
    body = {"conversion": conversion.conversion_json(result.conversion, result.timezone)}
    return jsonify(body), 201 if result.created else 200


@bp.get("/conversions")
def list_conversions():
    shopper = verified_shopper()
    return jsonify({"conversions": conversion.list_conversions(services(), shopper)})
