"""Queries over the conversion ledger (the record of what we did to members' points)."""
from __future__ import annotations

from datetime import date
from enum import StrEnum

from sqlalchemy import bindparam, exists, func, select, union_all
from sqlalchemy.orm import Session

from ..models import Conversion, utcnow
from ..settings import EffectiveSettings


class ConversionStatus(StrEnum):
    """A conversion's state, stored as its string value (see saga.py for the transitions)."""

    RESERVED = "reserved"
    CODE_CREATED = "code_created"
    DEDUCTING = "deducting"
    DEDUCTED = "deducted"
    COMPLETED = "completed"
    COMPENSATING = "compensating"
    FAILED = "failed"
    NEEDS_REVIEW = "needs_review"
    USED = "used"  # redeemed in an order
    RETURNED = "returned"  # handed back unused: the points went back to the member
    EXPIRED = "expired"  # expired unused: the points went back to the member


S = ConversionStatus
IN_FLIGHT = (S.RESERVED, S.CODE_CREATED, S.DEDUCTING, S.DEDUCTED, S.COMPENSATING)
# A code is only ever shown once its points are known to be deducted.
CODE_SHOWN = (S.COMPLETED, S.USED, S.RETURNED, S.EXPIRED)
# Undecided conversions (in flight, or waiting for the merchant's review) may still have taken
# their points, so they count against today's limit like completed ones.
COUNTS_TOWARD_LIMIT = (*IN_FLIGHT, S.NEEDS_REVIEW, *CODE_SHOWN)


# A conversion's retries start afresh when it settles or its coupon changes: an earlier step's
# back-off must not use up those of the list write that may follow (the sweeper's, see saga.py).
RETRIES_AFRESH = {"attempts": 0, "next_attempt_at": None}
# The values that send a coupon's list entry to be rewritten after a change in the ledger.
LIST_OUTDATED = {"metafield_recorded": False, **RETRIES_AFRESH}


def shown_code(c: Conversion) -> str | None:
    """A code shown while its points may not have left the member would be a free coupon: null."""
    return c.code if c.status in CODE_SHOWN else None


def shop_today(settings: EffectiveSettings) -> date:
    """The calendar day in the shop's time zone (JST unless the shop says otherwise)."""
    return utcnow().astimezone(settings.timezone).date()


LEDGER = Conversion.__table__
_CUSTOMER = (LEDGER.c.shop_id == bindparam("shop_id")) & (LEDGER.c.shopify_customer_id == bindparam("customer_id"))
# Points converted today (shop time zone), counting completed and in-flight conversions; built
# once (on the shopper's clock), with the parameters of converted_today_params.
CONVERTED_TODAY = select(func.coalesce(func.sum(LEDGER.c.points), 0)).where(
    _CUSTOMER, LEDGER.c.local_date == bindparam("today"),
    LEDGER.c.status.in_([s.value for s in COUNTS_TOWARD_LIMIT]))
_CONVERTED_TODAY_BUT = CONVERTED_TODAY.where(LEDGER.c.id != bindparam("exclude_id"))


def converted_today_params(shop_id: int, customer_id: int, settings: EffectiveSettings) -> dict:
    return {"shop_id": shop_id, "customer_id": customer_id, "today": shop_today(settings)}


def converted_today(session: Session, shop_id: int, customer_id: int, settings: EffectiveSettings,
                    exclude_id: str | None = None) -> int:
    params = converted_today_params(shop_id, customer_id, settings)
    if exclude_id is None:
        return int(session.connection().execute(CONVERTED_TODAY, params).scalar() or 0)
    return int(session.connection().execute(_CONVERTED_TODAY_BUT, {**params, "exclude_id": exclude_id}).scalar() or 0)


# The customer's `loyalty.coupons` metafield is written whole from these rows: the coupons the
# customer can still use (the newest USABLE_LIST_LIMIT: nobody holds that many) and the
# COUPON_LIST_LIMIT others (used, returned, expired) that changed last. The proxy's listing has them
# all; a metafield is no archive, and a JSON one holds at most 128 KB (about 500 entries).
USABLE_LIST_LIMIT = 150
COUPON_LIST_LIMIT = 50
_COUPON_COLUMNS = (LEDGER.c.id, LEDGER.c.code, LEDGER.c.status, LEDGER.c.points, LEDGER.c.amount, LEDGER.c.currency,
                   LEDGER.c.expires_at, LEDGER.c.created_at, LEDGER.c.order_name)
_USABLE = (select(*_COUPON_COLUMNS).where(_CUSTOMER, LEDGER.c.status == S.COMPLETED.value)
           .order_by(LEDGER.c.created_at.desc(), LEDGER.c.id.desc()).limit(USABLE_LIST_LIMIT).subquery())
_LAST_CHANGED_OTHERS = (select(*_COUPON_COLUMNS)
                        .where(_CUSTOMER, LEDGER.c.status.in_([s.value for s in CODE_SHOWN if s != S.COMPLETED]))
                        .order_by(LEDGER.c.updated_at.desc(), LEDGER.c.id.desc()).limit(COUPON_LIST_LIMIT).subquery())
_SHOWN_COUPONS = union_all(select(_USABLE), select(_LAST_CHANGED_OTHERS))
_SHOWN_COUPONS = _SHOWN_COUPONS.order_by(_SHOWN_COUPONS.selected_columns.created_at,
                                         _SHOWN_COUPONS.selected_columns.id)
_ANY_IN_FLIGHT = select(exists().where(_CUSTOMER, LEDGER.c.status.in_([s.value for s in IN_FLIGHT]),
                                       LEDGER.c.id != bindparam("but")))


def shown_coupons(session: Session, shop_id: int, customer_id: int) -> list:
    """The rows of the customer's coupon list, oldest first (as they were once appended)."""
    return session.connection().execute(_SHOWN_COUPONS, {"shop_id": shop_id, "customer_id": customer_id}).all()


def any_in_flight(session: Session, shop_id: int, customer_id: int, but: str) -> bool:
    """Is a conversion of the customer other than `but` in flight?"""
    return bool(session.connection().execute(
        _ANY_IN_FLIGHT, {"shop_id": shop_id, "customer_id": customer_id, "but": but}).scalar())
