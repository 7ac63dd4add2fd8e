"""The shopper's endpoints: balance and conversions. Mounted twice — under the App Proxy and for
the customer-account extension — with only the proof of identity differing."""
from __future__ import annotations

from collections.abc import Callable

from flask import Blueprint, Response, jsonify, request

from ..points import conversion, returns
from ..points.balance import read_balance
from ..points.errors import InvalidRequest
from ..points.member import Shopper
from ..points.member_card import member_card
from . import services

FORM_TYPES = {"application/x-www-form-urlencoded", "multipart/form-data", "text/plain"}


def shopper_blueprint(name: str, url_prefix: str, verified_shopper: Callable[[], Shopper],
                      extra_headers: dict[str, str] | None = None) -> Blueprint:
    bp = Blueprint(name, __name__, url_prefix=url_prefix)

    @bp.after_request
    def headers(resp: Response) -> Response:
        # Per-customer answers: never cached by Shopify, a CDN or the browser (unless a route says
        # otherwise for itself, like the member card below).
        resp.headers.setdefault("Cache-Control", "no-store, private")
        resp.headers.update(extra_headers or {})
        return resp

    @bp.get("/balance")
    def balance():
        return jsonify(read_balance(services(), verified_shopper(), locale=request.args.get("locale", "ja")))

    @bp.get("/member-card")
    def card():
        card = member_card(services(), verified_shopper())
        resp = Response(status=304) if request.if_none_match.contains(card.etag) else jsonify(card.as_json())
        resp.set_etag(card.etag)
        # Kept by this browser only, and revalidated every time: on a shared device the next
        # customer's request is verified and gets their own card, never the cached one.
        resp.headers["Cache-Control"] = "private, no-cache"
        return resp

    @bp.post("/conversions")
    def create_conversion():
        shopper = verified_shopper()
        # JSON only: a cross-site <form> can only send form encodings, so this also blocks CSRF.
        if request.mimetype != "application/json":
            raise InvalidRequest("Send a JSON body with points and idempotency_key.")
        points, key = conversion.parse_request(request.get_json(silent=True))
        result = conversion.convert(services(), shopper, points, key)
        return jsonify({"conversion": conversion.conversion_json(result.conversion, result.timezone)}), \
            201 if result.created else 200

    @bp.get("/conversions")
    def list_conversions():
        return jsonify({"conversions": conversion.list_conversions(services(), verified_shopper())})

    @bp.post("/conversions/<conversion_id>/return")
    def return_conversion(conversion_id: str):
        shopper = verified_shopper()
        if request.mimetype in FORM_TYPES:  # what a cross-site <form> can send: not our block
            raise InvalidRequest("Send no body, or a JSON one.")
        result = returns.return_coupon(services(), shopper, conversion_id)
        return jsonify({"conversion": conversion.conversion_json(result.conversion, result.timezone)})

    return bp
