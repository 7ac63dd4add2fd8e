"""What can go wrong for a shopper, in domain terms, each with its contract code and status."""
from __future__ import annotations

from ..errors import AppError


class PointsError(AppError):
    """A failure of the points features, told to the shopper or the merchant as is."""


class NotLoggedIn(PointsError):
    code, status = "not_logged_in", 401
    message = "Sign in to see your points."


class Forbidden(PointsError):
    code, status = "forbidden", 403
    message = "This request is not allowed."


class NotRegistered(PointsError):
    code, status = "not_registered", 404
    message = "You are not a member yet. Register at any of our stores to start collecting points."


class InvalidRequest(PointsError):
    code, status = "invalid_request", 400
    message = "The request is not valid."


class NotMultipleOfUnit(PointsError):
    code, status = "not_multiple_of_unit", 422


class BelowMinimum(PointsError):
    code, status = "below_minimum", 422


class DailyLimitExceeded(PointsError):
    code, status = "daily_limit_exceeded", 422


class InsufficientPoints(PointsError):
    code, status = "insufficient_points", 422
    message = "You do not have enough points."


class NotFound(PointsError):
    code, status = "not_found", 404
    message = "Nothing of yours has that id."


class CouponUsed(PointsError):
    code, status = "coupon_used", 409
    message = "This coupon has already been used in an order."


class ConversionInProgress(PointsError):
    code, status = "conversion_in_progress", 409
    message = "Another conversion is still being processed. Please wait a moment."


class PosUnavailable(PointsError):
    code, status = "pos_unavailable", 503
    message = "Points are unavailable right now. You can check your balance at any store."


class PosTimeout(PointsError):
    code, status = "pos_timeout", 504
    message = "The store system did not answer in time. Please try again."


class ShopifyUnavailable(PointsError):
    code, status = "shopify_unavailable", 503
    message = "The discount code could not be created. No points were deducted; please try again."
