"""POST /smaregi/webhooks: Smaregi's `pos:customers` and `pos:transactions` events.

The one credential is the shared secret Smaregi sends in `X-Pointbridge-Secret` (Smaregi signs
nothing). Unset secret: 404, as if the endpoint did not exist. Record, answer, let the worker act.
"""
from __future__ import annotations

import json

from flask import Blueprint, jsonify, request

from ..sync import smaregi_events
from . import services
from .errors import error_response

bp = Blueprint("smaregi_webhooks", __name__)

SECRET_HEADER = "X-Pointbridge-Secret"


@bp.post("/smaregi/webhooks")
def receive():
    s = services()
    secret = s.config.smaregi_webhook_secret
    if not secret:
        return error_response("not_found", 404, "Smaregi webhooks are not configured (SMAREGI_WEBHOOK_SECRET).")
    if not smaregi_events.secret_matches(request.headers.get(SECRET_HEADER), secret):
        return error_response("invalid_signature", 401, "The request could not be verified.")
    try:
        payload = json.loads(request.get_data(cache=False) or b"null")
        delivery = smaregi_events.parse(request.headers, payload)
    except (ValueError, smaregi_events.MalformedEvent) as exc:
        return error_response("invalid_request", 400, str(exc)[:200])
    return jsonify({"status": smaregi_events.record(s.db, s.config, delivery)})
