"""Queries over the conversion ledger (the record of what we did to members' points)."""
from __future__ import annotations

from datetime import date

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..models import Conversion, utcnow
from ..settings import EffectiveSettings

IN_FLIGHT = ("reserved", "code_created", "deducting", "deducted", "compensating")
COUNTS_TOWARD_LIMIT = (*IN_FLIGHT, "completed")


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
