"""Every verified Shopify delivery: recorded once, then handed to its topic family's handler.

One transaction, milliseconds, never a call to the POS. Deliveries come more than once, late and
out of order: a delivery is recorded once (by webhook id, or by topic + event id), and each
handler keeps only state that is not older than what it holds, so each is idempotent in place.
"""
from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy import bindparam
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from ..config import Config
from ..db import Database
from ..models import WebhookDelivery, utcnow
from ..orders import intake as orders
from ..sync import intake as customers
from .delivery import Delivery, MalformedPayload

__all__ = ["Delivery", "MalformedPayload", "record"]

log = logging.getLogger(__name__)

Handler = Callable[[Session, Config, Delivery], str]
# topic → (validate the payload before anything is written, handle it in the recording transaction)
FAMILIES: dict[str, tuple[Callable[[str, Any], None], Handler]] = {
    **{t: (customers.validate, customers.handle_customer) for t in customers.CUSTOMER_TOPICS},
    **{t: (customers.validate, customers.handle_lifecycle) for t in customers.LIFECYCLE_TOPICS},
    **{t: (orders.validate, orders.handle_order) for t in orders.ORDER_TOPICS},
}


def record(db: Database, config: Config, delivery: Delivery) -> str:
    """Record one verified delivery. Returns the outcome (for logs and tests)."""
    if not isinstance(delivery.payload, dict):
        raise MalformedPayload("body is not a JSON object")
    family = FAMILIES.get(delivery.topic)
    if family is not None:
        family[0](delivery.topic, delivery.payload)
    with db.transaction() as session:
        conn = session.connection()
        first_time = conn.execute(_delivery_statement(conn.dialect.name), {
            "shop_domain": delivery.shop_domain, "topic": delivery.topic, "webhook_id": delivery.webhook_id,
            "event_id": delivery.event_id, "triggered_at": delivery.triggered_at, "received_at": utcnow(),
        }).scalar()
        if first_time is None:
            outcome = "duplicate"
        elif family is None:
            outcome = "ignored"
        else:
            outcome = family[1](session, config, delivery)
    log.info("webhook.recorded", extra={"shop": delivery.shop_domain, "topic": delivery.topic,
                                        "webhook_id": delivery.webhook_id, "outcome": outcome})
    return outcome


@functools.cache
def _delivery_statement(dialect: str):
    """Built once per dialect: this is the webhook hot path."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    deliveries = WebhookDelivery.__table__
    return (insert(deliveries).values(**{c: bindparam(c) for c in (
        "shop_domain", "topic", "webhook_id", "event_id", "triggered_at", "received_at")})
        .on_conflict_do_nothing().returning(deliveries.c.id))
