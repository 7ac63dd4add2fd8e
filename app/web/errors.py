"""The one place that answers errors: every `AppError` (points, verification, admin, webhooks)
becomes `{"error": {"code", "message"}}` with the status its class names."""
from __future__ import annotations

from flask import Flask, Response, jsonify

from ..errors import AppError


def contract_error(exc: AppError) -> Response:
    resp = jsonify({"error": {"code": exc.code, "message": exc.message}})
    resp.status_code = exc.status
    resp.headers.update(exc.headers)
    return resp


def register(app: Flask) -> None:
    """Registered on the app, so every blueprint (and any added later) answers the same way."""
    app.register_error_handler(AppError, contract_error)
