"""Order deliveries (orders/paid, orders/updated, orders/cancelled, orders/fulfilled; REST payloads).

The rule is state, not events: we keep the newest state of each order (an older `updated_at`
changes nothing) as the few facts the earning rule needs, note when an order was first seen paid
and first seen fulfilled (the trigger moments), and queue it for the worker (earning.py), which
moves Smaregi by the difference. No POS call here.
"""
from __future__ import annotations

import functools
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import bindparam, case, func, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from ..config import Config
from ..models import Order, Shop, utcnow
from ..sync.intake import NOTIFY_CHANNEL, shop_row
from ..webhooks.delivery import Delivery, MalformedPayload, parse_time, positive_id

ORDER_TOPICS = {"orders/paid", "orders/updated", "orders/cancelled", "orders/fulfilled"}
PAID_STATUSES = {"paid", "partially_refunded", "refunded"}  # not pending, authorized, partially_paid
# Amounts below 10^15: far above any order, and it keeps the arithmetic bounded ("1e400000000" is a
# finite Decimal).
MAX_DIGITS = 15
MAX_QUANTITY = 10**9


def _money(value: Any, what: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, str | int | float | None):
        raise MalformedPayload(f"{what} is not an amount")
    try:
        amount = Decimal(str(value if value is not None else "0"))
    except (InvalidOperation, ValueError):
        raise MalformedPayload(f"{what} is not an amount") from None
    if not amount.is_finite() or amount.adjusted() >= MAX_DIGITS:  # (no arithmetic: it could overflow)
        raise MalformedPayload(f"{what} is not an amount")
    return amount


def _object(value: Any, what: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise MalformedPayload(f"{what} is not an object")
    return value


def _list(value: Any, what: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise MalformedPayload(f"{what} is not a list")
    return value


def _shop_money(payload: dict[str, Any], field: str) -> Decimal:
    """The amount in the shop's currency (`*_set.shop_money`), else the plain field."""
    shop_money = _object(_object(payload.get(f"{field}_set"), f"{field}_set").get("shop_money"), f"{field}_set")
    money = shop_money.get("amount")
    return _money(money if money is not None else payload.get(field), field)


def _quantity(line: dict[str, Any], field: str) -> int:
    quantity = line.get(field, line.get("quantity", 0))
    if quantity is None:
        return 0
    if isinstance(quantity, bool) or not isinstance(quantity, int) or not 0 <= quantity <= MAX_QUANTITY:
        raise MalformedPayload("line item quantity is not a count")
    return quantity


def _base(payload: dict[str, Any], subtotal: str, quantity: str) -> Decimal:
    """A subtotal in shop money minus the gift-card lines (gift cards earn nothing)."""
    gift_cards = Decimal(0)
    for line in _list(payload.get("line_items"), "line_items"):
        if isinstance(line, dict) and line.get("gift_card"):
            gift_cards += _shop_money(line, "price") * _quantity(line, quantity)
    return max(Decimal(0), _shop_money(payload, subtotal) - gift_cards)


def facts(payload: dict[str, Any]) -> dict[str, Any]:
    """What the earning rule reads from an order (contract: "Online earning and giving points back")."""
    base = _base(payload, "current_subtotal_price", "current_quantity")
    codes = sorted({str(d.get("code")).strip().upper() for d in _list(payload.get("discount_codes"), "discount_codes")
                    if isinstance(d, dict) and d.get("code")})
    return {"base": str(base), "paid": payload.get("financial_status") in PAID_STATUSES,
            "fulfilled": payload.get("fulfillment_status") == "fulfilled",
            "cancelled": bool(payload.get("cancelled_at")), "codes": codes}


def paid_base(payload: dict[str, Any], current: Decimal) -> Decimal:
    """The base as paid, before any refund, for the refunded share of a coupon's points. Read from
    the payload itself, so a first delivery that is already refunded still knows it: `subtotal_price`
    (after discounts, before shipping and taxes) is not reduced by refunds, unlike
    `current_subtotal_price`; gift cards at their ordered `quantity`. Never below the current base
    (an edit that added items); the current base when the payload has no `subtotal_price`."""
    if payload.get("subtotal_price") is None and payload.get("subtotal_price_set") is None:
        return current
    return max(current, _base(payload, "subtotal_price", "quantity"))


def customer_id_of(payload: dict[str, Any]) -> int | None:
    customer = payload.get("customer")
    if isinstance(customer, dict) and isinstance(customer.get("id"), int) and not isinstance(customer["id"], bool):
        return customer["id"]
    return None


def validate(topic: str, payload: Any) -> None:
    positive_id(payload.get("id"), "order id")
    parse_time(payload.get("updated_at"))
    customer = payload.get("customer")
    if isinstance(customer, dict) and customer.get("id") is not None:
        positive_id(customer["id"], "customer id")
    paid_base(payload, Decimal(facts(payload)["base"]))


def handle_order(session: Session, config: Config, delivery: Delivery) -> str:
    """One statement: the shop is found by its domain inside the upsert (and, on Postgres, the
    worker is notified by it), so an order's ack costs the delivery's insert and this."""
    conn = session.connection()
    payload, now = delivery.payload, utcnow()
    state = facts(payload)
    values = {
        "domain": delivery.shop_domain, "shopify_order_id": payload["id"],
        "shopify_customer_id": customer_id_of(payload), "name": str(payload.get("name") or "")[:64] or None,
        "shopify_updated_at": parse_time(payload.get("updated_at")) or now, "facts": state,
        "paid_seen_at": now if state["paid"] else None, "fulfilled_seen_at": now if state["fulfilled"] else None,
        "base_when_paid": str(paid_base(payload, Decimal(state["base"]))) if state["paid"] else None,
        "now": now}
    upsert = _upsert(conn.dialect.name)
    row = conn.execute(upsert, values).first()
    if row is None and not _shop_known(conn, delivery.shop_domain):
        shop_row(session, delivery.shop_domain)  # its first delivery: the shop is recorded now
        row = conn.execute(upsert, values).first()
    return "queued" if row is not None else "stale"


def _shop_known(conn, domain: str) -> bool:
    return conn.execute(select(Shop.id).where(Shop.domain == domain)).first() is not None


@functools.cache
def _upsert(dialect: str):
    """Insert the order, or take the newer state; trigger moments are kept from the first time seen."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    orders, shops = Order.__table__, Shop.__table__
    names = ("shopify_order_id", "shopify_customer_id", "name", "shopify_updated_at", "facts",
             "paid_seen_at", "fulfilled_seen_at", "base_when_paid")
    stamps = ("next_attempt_at", "created_at", "updated_at")
    row = select(shops.c.id, *[bindparam(n, type_=orders.c[n].type).label(n) for n in names],
                 *[bindparam("now", type_=orders.c[n].type).label(n) for n in stamps]).where(
        shops.c.domain == bindparam("domain"))
    stmt = insert(orders).from_select(["shop_id", *names, *stamps], row)
    new, old = stmt.excluded, orders.c
    returning = [orders.c.id]
    if dialect == "postgresql":  # the worker settles it now, not at its next poll (delivered at commit)
        returning.append(func.pg_notify(NOTIFY_CHANNEL, ""))
    return stmt.on_conflict_do_update(
        index_elements=["shop_id", "shopify_order_id"],
        set_={"shopify_customer_id": func.coalesce(new.shopify_customer_id, old.shopify_customer_id),
              "name": func.coalesce(new.name, old.name), "shopify_updated_at": new.shopify_updated_at,
              "facts": new.facts, "paid_seen_at": func.coalesce(old.paid_seen_at, new.paid_seen_at),
              "fulfilled_seen_at": func.coalesce(old.fulfilled_seen_at, new.fulfilled_seen_at),
              "base_when_paid": case((old.base_when_paid.is_(None), new.base_when_paid), else_=old.base_when_paid),
              "next_attempt_at": new.next_attempt_at, "updated_at": new.updated_at},
        where=or_(old.shopify_updated_at.is_(None), new.shopify_updated_at >= old.shopify_updated_at),
    ).returning(*returning)
