"""Queries over the conversion ledger (the record of what we did to members' points)."""
from __future__ import annotations

from datetime import date

from sqlalchemy import func, select

from ..db import Database
from ..models import Conversion, utcnow
from ..settings import EffectiveSettings

IN_FLIGHT = ("reserved", "code_created", "deducting", "deducted")
COUNTS_TOWARD_LIMIT = IN_FLIGHT + ("completed",)


def shop_today(settings: EffectiveSettings) -> date:
    """The calendar day in the shop's time zone (JST unless the shop says otherwise)."""
    return utcnow().astimezone(settings.timezone).date()


def points_converted_today(db: Database, shop_id: int, customer_id: int, settings: EffectiveSettings) -> int:
    with db.transaction() as session:
        return int(session.scalar(select(func.coalesce(func.sum(Conversion.points), 0)).where(
            Conversion.shop_id == shop_id, Conversion.shopify_customer_id == customer_id,
            Conversion.local_date == shop_today(settings), Conversion.status.in_(COUNTS_TOWARD_LIMIT))) or 0)
