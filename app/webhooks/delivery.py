"""One verified Shopify webhook delivery, and the checks every topic family shares."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

FUTURE_LEEWAY = timedelta(days=1)  # clocks differ; a day ahead is not a clock, it is a bad value


class MalformedPayload(Exception):
    """The body is signed by Shopify but is not what the topic promises."""


@dataclass(frozen=True)
class Delivery:
    shop_domain: str
    topic: str
    webhook_id: str
    event_id: str | None
    triggered_at: datetime | None
    payload: dict[str, Any]


def parse_time(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise MalformedPayload("updated_at is not a date-time") from None
    if moment.tzinfo is None:
        raise MalformedPayload("updated_at has no time zone")
    try:
        moment = moment.astimezone(UTC)
    except OverflowError:
        raise MalformedPayload("updated_at is out of range") from None
    if moment > datetime.now(UTC) + FUTURE_LEEWAY:  # it would make every later delivery look stale
        raise MalformedPayload("updated_at is in the future")
    return moment


MAX_ID = 2**63 - 1  # Shopify's ids are 64-bit; the database's BIGINT is signed


def positive_id(value: Any, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value <= MAX_ID:
        raise MalformedPayload(f"{what} missing or not a positive 64-bit integer")
    return value
