"""Queries over the conversion ledger (the record of what we did to members' points)."""
from __future__ import annotations

from datetime import date
from enum import StrEnum

from sqlalchemy import func, select
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


def shown_code(c: Conversion) -> str | None:
    """A code shown while its points may not have left the member would be a free coupon: null."""
    return c.code if c.status in CODE_SHOWN else None


def shop_today(settings: EffectiveSettings) -> date:
    """The calendar day in the shop's time zone (JST unless the shop says otherwise)."""
    return utcnow().astimezone(settings.timezone).date()


def converted_today(session: Session, shop_id: int, customer_id: int, settings: EffectiveSettings,
                    exclude_id: str | None = None) -> int:
    """Points converted today (shop time zone), counting completed and in-flight conversions."""
    query = select(func.coalesce(func.sum(Conversion.points), 0)).where(
        Conversion.shop_id == shop_id, Conversion.shopify_customer_id == customer_id,
        Conversion.local_date == shop_today(settings), Conversion.status.in_(COUNTS_TOWARD_LIMIT))
    if exclude_id is not None:
        query = query.where(Conversion.id != exclude_id)
    return int(session.scalar(query) or 0)
