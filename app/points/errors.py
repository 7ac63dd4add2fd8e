"""What can go wrong for a shopper, in domain terms. app/web/errors.py maps these to the contract."""
from __future__ import annotations


class PointsError(Exception):
    message = "Something went wrong."

    def __init__(self, message: str | None = None):
        super().__init__(message or self.message)
        self.message = message or self.message


class NotLoggedIn(PointsError):
    message = "Sign in to see your points."


class Forbidden(PointsError):
    message = "This request is not allowed."


class NotRegistered(PointsError):
    message = "You are not a member yet. Register at any of our stores to start collecting points."


class InvalidRequest(PointsError):
    message = "The request is not valid."


class NotMultipleOfUnit(PointsError):
    pass


class BelowMinimum(PointsError):
    pass


class DailyLimitExceeded(PointsError):
    pass


class InsufficientPoints(PointsError):
    message = "You do not have enough points."


class NotFound(PointsError):
    message = "There is no such coupon."


class CouponUsed(PointsError):
    message = "This coupon has already been used in an order."


class ConversionInProgress(PointsError):
    message = "Another conversion is still being processed. Please wait a moment."


class PosUnavailable(PointsError):
    message = "Points are unavailable right now. You can check your balance at any store."


class PosTimeout(PointsError):
    message = "The store system did not answer in time. Please try again."


class ShopifyUnavailable(PointsError):
    message = "The discount code could not be created. No points were deducted; please try again."
