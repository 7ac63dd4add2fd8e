"""Recording Shopify webhook deliveries. Milliseconds, one transaction, never a call to the POS.

Deliveries come more than once, late and out of order. A delivery is recorded once (by webhook
id, or by topic + event id); a customer's state is kept only if its `updated_at` is not older than
what we hold; an update that changes nothing Smaregi holds queues nothing.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from ..config import Config
from ..db import Database, insert_ignoring_conflict
from ..models import MemberLink, Shop, WebhookDelivery, utcnow
from ..settings import effective_settings
from .mapping import customer_state, fingerprint

log = logging.getLogger(__name__)

CUSTOMER_TOPICS = {"customers/create", "customers/update"}
NOTIFY_CHANNEL = "pointbridge_sync"


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
    return moment


def validate(topic: str, payload: Any) -> None:
    """Checked before anything is written: a malformed body changes nothing."""
    if not isinstance(payload, dict):
        raise MalformedPayload("body is not a JSON object")
    if topic in CUSTOMER_TOPICS:
        customer_id = payload.get("id")
        if not isinstance(customer_id, int) or isinstance(customer_id, bool) or customer_id <= 0:
            raise MalformedPayload("customer id missing or not a positive integer")
        parse_time(payload.get("updated_at"))
        if payload.get("default_address") is not None and not isinstance(payload["default_address"], dict):
            raise MalformedPayload("default_address is not an object")


def record(db: Database, config: Config, delivery: Delivery) -> str:
    """Record one verified delivery. Returns the outcome (for logs and tests)."""
    validate(delivery.topic, delivery.payload)
    with db.transaction() as session:
        first_time = insert_ignoring_conflict(session, WebhookDelivery, {
            "shop_domain": delivery.shop_domain, "topic": delivery.topic, "webhook_id": delivery.webhook_id,
            "event_id": delivery.event_id, "triggered_at": delivery.triggered_at, "received_at": utcnow(),
        })
        if first_time is None:
            outcome = "duplicate"
        elif delivery.topic in CUSTOMER_TOPICS:
            shop = _shop(session, delivery.shop_domain)
            outcome = record_customer(session, config, shop, delivery.payload)
            if outcome == "queued" and session.get_bind().dialect.name == "postgresql":
                session.execute(text(f"NOTIFY {NOTIFY_CHANNEL}"))  # delivered at commit
        else:
            outcome = "ignored"
        if first_time is not None:
            session.execute(WebhookDelivery.__table__.update().where(WebhookDelivery.id == first_time)
                            .values(outcome=outcome))
    log.info("webhook.recorded", extra={"shop": delivery.shop_domain, "topic": delivery.topic,
                                        "webhook_id": delivery.webhook_id, "outcome": outcome})
    return outcome


def record_customer(session: Session, config: Config, shop: Shop, payload: dict[str, Any]) -> str:
    customer_id = payload["id"]
    updated_at = parse_time(payload.get("updated_at")) or utcnow()
    state = customer_state(payload)
    state_hash = fingerprint(state)
    insert_ignoring_conflict(session, MemberLink, {
        "shop_id": shop.id, "shopify_customer_id": customer_id, "state": "new", "attempts": 0,
        "created_at": utcnow(), "updated_at": utcnow()}, ["shop_id", "shopify_customer_id"])
    # The row lock serialises concurrent deliveries for one customer (SQLite: the write lock).
    link = session.scalar(select(MemberLink).where(MemberLink.shop_id == shop.id,
                                                   MemberLink.shopify_customer_id == customer_id)
                          .with_for_update().execution_options(populate_existing=True))
    if link.shopify_updated_at is not None and updated_at < link.shopify_updated_at:
        return "stale"
    link.shopify_updated_at = updated_at
    if link.desired_hash == state_hash and link.state != "new":
        return "unchanged"  # e.g. our own metafield write echoed back as customers/update
    link.desired = state
    link.desired_hash = state_hash
    settings = effective_settings(session, shop, config)
    link.state = "pending" if settings.syncable else "paused"
    link.attempts = 0
    link.last_error = None
    link.next_attempt_at = utcnow()
    link.event_received_at = link.event_received_at or utcnow()
    return "queued" if link.state == "pending" else "paused"


def _shop(session: Session, domain: str) -> Shop:
    # A shop can send webhooks before anyone opened App Home: record it, sync when a contract applies.
    insert_ignoring_conflict(session, Shop, {"domain": domain, "created_at": utcnow(), "updated_at": utcnow()},
                             ["domain"])
    return session.scalar(select(Shop).where(Shop.domain == domain))
