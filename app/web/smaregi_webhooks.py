"""POST /smaregi/webhooks: Smaregi's `pos:customers` and `pos:transactions` events.

The one credential is the shared secret Smaregi sends in `X-Pointbridge-Secret` (Smaregi signs
nothing). Unset secret: 404, as if the endpoint did not exist. Record, answer, let the worker act.
"""
from __future__ import annotations

from flask import Blueprint, jsonify, request

from ..points.errors import InvalidRequest, NotFound
from ..shopify.verify import InvalidSignature
from ..sync import smaregi_events
from . import inbound, services

bp = Blueprint("smaregi_webhooks", __name__)

SECRET_HEADER = "X-Pointbridge-Secret"


@bp.post("/smaregi/webhooks")
def receive():
    s = services()
    secret = s.config.smaregi_webhook_secret
    if not secret:
        raise NotFound("Smaregi webhooks are not configured (SMAREGI_WEBHOOK_SECRET).")
    if not smaregi_events.secret_matches(request.headers.get(SECRET_HEADER), secret):
        raise InvalidSignature("smaregi_secret_mismatch")
    try:
        payload = inbound.signed_payload(request.get_data(cache=False) or b"null")
        delivery = smaregi_events.parse(request.headers, payload)
    except (ValueError, smaregi_events.MalformedEvent) as exc:
        raise InvalidRequest(str(exc)[:200]) from None
    return jsonify({"status": smaregi_events.record(s.db, s.config, delivery)})
