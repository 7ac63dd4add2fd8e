"""The App Proxy (`https://{shop}/apps/points/*` → `/proxy/*`): the storefront block's backend.

The customer is `logged_in_customer_id` from a request whose signature verified, and nothing else.
"""
from __future__ import annotations

from flask import request

from ..points.errors import NotLoggedIn
from ..points.member import Shopper
from . import services
from .shopper import shopper_blueprint


def verified_shopper() -> Shopper:
    proof = services().verifier.app_proxy(request.method, dict(request.headers), request.url)
    if proof.customer_id is None:
        raise NotLoggedIn()
    return Shopper(proof.shop_domain, proof.customer_id)


bp = shopper_blueprint("proxy", "/proxy", verified_shopper)
