"""Customer-account UI extension backend (new customer accounts, where theme blocks do not render).

Same endpoints, domain functions and JSON as the App Proxy; only the proof of identity differs: a
customer-account session token (HS256, `aud`, `dest`, `exp`/`nbf`), the customer taken from `sub`.
"""
from __future__ import annotations

from flask import Response, request

from ..points.errors import NotLoggedIn
from ..points.member import Shopper
from . import services
from .shopper import shopper_blueprint

# Extensions run in a sandboxed origin: any origin may call; the bearer token is the proof.
CORS = {"Access-Control-Allow-Origin": "*", "Access-Control-Allow-Headers": "Authorization, Content-Type",
        "Access-Control-Allow-Methods": "GET, POST, OPTIONS", "Access-Control-Max-Age": "7200"}


def verified_shopper() -> Shopper:
    proof = services().verifier.customer_account(request.method, dict(request.headers), request.url)
    if proof.customer_id is None:
        raise NotLoggedIn()
    return Shopper(proof.shop_domain, proof.customer_id)


bp = shopper_blueprint("customer_account", "/customer-account", verified_shopper, extra_headers=CORS)


@bp.before_request
def preflight():
    # Answered before routing (Flask would otherwise answer OPTIONS itself with 200); no token needed.
    if request.method == "OPTIONS":
        return Response(status=204)
    return None
