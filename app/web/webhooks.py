"""POST /webhooks: every Shopify topic. Verify the HMAC over the raw body, record, acknowledge."""
from __future__ import annotations

import hashlib

from flask import Blueprint, jsonify, request

from ..points.errors import InvalidRequest
from ..webhooks import dispatch
from . import inbound, services

bp = Blueprint("webhooks", __name__)


@bp.post("/webhooks")
def receive():
    s = services()
    body = request.get_data(cache=False)  # the raw bytes: the HMAC is over exactly these
    verified = s.verifier.webhook("POST", dict(request.headers), request.url, body)
    try:
        payload = inbound.signed_payload(body)
        delivery = dispatch.Delivery(
            shop_domain=verified.shop_domain, topic=verified.topic,
            webhook_id=verified.webhook_id or hashlib.sha256(body).hexdigest(),
            event_id=verified.event_id, triggered_at=verified.triggered_at, payload=payload)
        outcome = dispatch.record(s.db, s.config, delivery)
    except (ValueError, dispatch.MalformedPayload) as exc:
        raise InvalidRequest(str(exc)[:200]) from None
    if outcome in ("uninstalled", "shop_redacted"):
        s.shop_tokens.forget(verified.shop_domain)  # this process's copy of the revoked token
    return jsonify({"status": outcome})
