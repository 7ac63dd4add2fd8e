"""The one place that maps domain errors to the contract's error codes and statuses."""
from __future__ import annotations

from flask import Response, jsonify

from ..points import errors as e
from ..shopify.verify import InvalidSignature

ERRORS: dict[type[Exception], tuple[str, int]] = {
    InvalidSignature: ("invalid_signature", 401),
    e.NotLoggedIn: ("not_logged_in", 401),
    e.Forbidden: ("forbidden", 403),
    e.NotRegistered: ("not_registered", 404),
    e.InvalidRequest: ("invalid_request", 400),
    e.BelowMinimum: ("below_minimum", 422),
    e.NotMultipleOfUnit: ("not_multiple_of_unit", 422),
    e.DailyLimitExceeded: ("daily_limit_exceeded", 422),
    e.InsufficientPoints: ("insufficient_points", 422),
    e.ConversionInProgress: ("conversion_in_progress", 409),
    e.CouponUsed: ("coupon_used", 409),
    e.NotFound: ("not_found", 404),
    e.PosUnavailable: ("pos_unavailable", 503),
    e.PosTimeout: ("pos_timeout", 504),
    e.ShopifyUnavailable: ("shopify_unavailable", 503),
}

MESSAGES = {"invalid_signature": "The request could not be verified."}


def error_response(code: str, status: int, message: str) -> Response:
    resp = jsonify({"error": {"code": code, "message": message}})
    resp.status_code = status
    return resp


def contract_error(exc: Exception) -> Response:
    for cls in type(exc).__mro__:
        if cls in ERRORS:
            code, status = ERRORS[cls]
            message = MESSAGES.get(code) or getattr(exc, "message", "") or str(exc)
            return error_response(code, status, message)
    raise exc


def register(bp) -> None:
    """Shopper-facing blueprints answer every failure in the contract's JSON shape."""
    for cls in ERRORS:
        bp.register_error_handler(cls, contract_error)
