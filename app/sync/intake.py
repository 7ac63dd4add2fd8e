"""Customer and lifecycle deliveries (app/webhooks/dispatch.py hands them here). Milliseconds, in
the dispatcher's transaction, never a call to the POS.

A customer's state is kept only if its `updated_at` is not older than what we hold; an update that
changes nothing Smaregi holds queues nothing.
"""
from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, case, func, or_, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from .. import privacy
from ..config import Config
from ..models import LinkState, MemberLink, Shop, ShopSettings, utcnow
from ..settings import is_syncable
from ..shops import ensure_shop
from ..webhooks.delivery import Delivery, MalformedPayload, parse_time, positive_id
from .mapping import customer_state, fingerprint

log = logging.getLogger(__name__)

CUSTOMER_TOPICS = {"customers/create", "customers/update"}
PRIVACY_TOPICS = {"customers/data_request", "customers/redact"}
LIFECYCLE_TOPICS = PRIVACY_TOPICS | {"app/uninstalled", "shop/redact"}
NOTIFY_CHANNEL = "pointbridge_sync"


def validate(topic: str, payload: Any) -> None:
    """Checked before anything is written: a malformed body changes nothing."""
    if topic in CUSTOMER_TOPICS:
        positive_id(payload.get("id"), "customer id")
        parse_time(payload.get("updated_at"))
        if payload.get("default_address") is not None and not isinstance(payload["default_address"], dict):
            raise MalformedPayload("default_address is not an object")
    if topic in PRIVACY_TOPICS:
        customer = payload.get("customer")
        if not isinstance(customer, dict) or not isinstance(customer.get("id"), int) or isinstance(customer["id"], bool):
            raise MalformedPayload("customer.id missing or not an integer")


def handle_customer(session: Session, config: Config, delivery: Delivery) -> str:
    """customers/create and customers/update: the newest state of the customer, queued for sync."""
    conn = session.connection()  # Core, not the ORM: the hot path needs no objects
    statements = _statements(conn.dialect.name)
    shop = shop_row(session, delivery.shop_domain)
    syncable = is_syncable(config, shop.smaregi_contract_id, shop.sync_enabled, shop.uninstalled_at)
    outcome = record_customer(conn, shop.id, syncable, delivery.payload)
    if outcome == "queued" and statements.notify is not None:
        conn.execute(statements.notify)  # delivered at commit
    return outcome


def handle_lifecycle(session: Session, config: Config, delivery: Delivery) -> str:
    if delivery.topic == "shop/redact":
        return privacy.redact_shop(session, config, delivery.shop_domain)
    shop = session.scalar(select(Shop).where(Shop.domain == delivery.shop_domain))
    if shop is None:
        return "unknown_shop"  # nothing of theirs is stored
    if delivery.topic == "app/uninstalled":
        return privacy.uninstalled(session, shop)
    if delivery.topic == "customers/data_request":
        return privacy.data_request(session, shop, delivery.payload)
    return privacy.redact_customer(session, config, shop, delivery.payload)


def record_customer(conn: Connection, shop_id: int, syncable: bool, payload: dict[str, Any]) -> str:
    """One atomic upsert: insert the link, or update it unless what we hold is newer.

    The WHERE of the upsert is the "never let an older updated_at win" rule, evaluated under the
    row lock the upsert takes, so concurrent deliveries for one customer cannot interleave. A state
    whose fingerprint we already hold keeps the link as it is (no new work).
    """
    now = utcnow()
    state = customer_state(payload)
    row = conn.execute(_statements(conn.dialect.name).link, {
        "shop_id": shop_id, "shopify_customer_id": payload["id"], "desired": state,
        "desired_hash": fingerprint(state), "shopify_updated_at": parse_time(payload.get("updated_at")) or now,
        "state": LinkState.PENDING if syncable else LinkState.PAUSED, "now": now}).first()
    if row is None:
        return "stale"
    if row.next_attempt_at != now:
        return "unchanged"  # e.g. our own metafield write echoed back as customers/update
    return "queued" if row.state == LinkState.PENDING else "paused"


def shop_row(session: Session, domain: str):
    """The shop a delivery is for (id, contract, switches), created if we have not seen it yet."""
    statements = _statements(session.connection().dialect.name)
    row = session.connection().execute(statements.shop, {"domain": domain}).first()
    if row is None:
        # A shop can send webhooks before anyone opened App Home: record it, sync when a contract applies.
        ensure_shop(session, domain)
        row = session.connection().execute(statements.shop, {"domain": domain}).first()
    return row


@dataclass(frozen=True)
class _Statements:
    shop: Any
    link: Any
    notify: Any


@functools.cache
def _statements(dialect: str) -> _Statements:
    """Built once per dialect: this is the webhook hot path, and building SQLAlchemy statements per
    call costs more than the database does."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    shops, links = Shop.__table__, MemberLink.__table__
    settings = ShopSettings.__table__
    shop = (select(shops.c.id, shops.c.smaregi_contract_id, shops.c.uninstalled_at, settings.c.sync_enabled)
            .select_from(shops.outerjoin(settings, settings.c.shop_id == shops.c.id))
            .where(shops.c.domain == bindparam("domain")))
    link = insert(links).values(
        shop_id=bindparam("shop_id"), shopify_customer_id=bindparam("shopify_customer_id"),
        desired=bindparam("desired"), desired_hash=bindparam("desired_hash"),
        shopify_updated_at=bindparam("shopify_updated_at"), state=bindparam("state"), attempts=0,
        next_attempt_at=bindparam("now"), event_received_at=bindparam("now"), created_at=bindparam("now"),
        updated_at=bindparam("now"))
    new, old = link.excluded, links.c
    same = old.desired_hash == new.desired_hash

    def keep_if_same(column):
        return case((same, old[column]), else_=new[column])

    link = link.on_conflict_do_update(
        index_elements=["shop_id", "shopify_customer_id"],
        set_={"shopify_updated_at": new.shopify_updated_at, "desired": new.desired,
              "desired_hash": new.desired_hash, "updated_at": new.updated_at,
              "state": keep_if_same("state"), "attempts": keep_if_same("attempts"),
              "next_attempt_at": keep_if_same("next_attempt_at"),
              "last_error": case((same, old.last_error), else_=None),
              "event_received_at": case((same, old.event_received_at),
                                        else_=func.coalesce(old.event_received_at, new.event_received_at))},
        where=or_(old.shopify_updated_at.is_(None), new.shopify_updated_at >= old.shopify_updated_at),
    ).returning(links.c.next_attempt_at, links.c.state)
    notify = text(f"NOTIFY {NOTIFY_CHANNEL}") if dialect == "postgresql" else None
    return _Statements(shop, link, notify)
