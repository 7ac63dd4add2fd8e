"""The earning rule, applied by the worker: move each order's points to its target.

Target = floor(earning base / earn_yen_per_point), and 0 when the order is cancelled, has no
customer, or its trigger (first seen paid, or first seen fulfilled) plus the hold days has not come
(shop time zone). The worker plans a grant or a take-back of the difference from what the order's
movements already hold, so duplicates, replays and out-of-order deliveries never double-count and a
partial refund takes back only the difference. A coupon of ours in the order's discount codes marks
that conversion used; its points come back in full on cancellation and in proportion to refunds.

What an order holds is counted per member: when the order's customer changes, the first member's
points are taken back and the new customer is granted. An order keeps the rule (rate, trigger, hold
days) it was first granted under, so a later change of the shop's rules applies to new orders and
only cancellations and refunds take points back. A coupon already given back (handed back or
expired) that an order turns out to have used is marked used and its points are taken back.
"""
from __future__ import annotations

import logging
import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from datetime import time as day_time
from decimal import ROUND_FLOOR, Decimal

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from ..models import Conversion, Order, PointMovement, Shop, utcnow
from ..points import movements
from ..points.ledger import LIST_OUTDATED, ConversionStatus
from ..points.movements import COMMITTED, MovementKind, MovementReason, Target
from ..settings import EffectiveSettings, effective_settings

log = logging.getLogger(__name__)

LEASE = timedelta(seconds=60)
BATCH = 20
BUDGET_S = 5.0  # per job run: orders first, then the movements they planned
SENDERS = 4  # movements in flight at once (a member's owed points are decided under its row lock)


@dataclass(frozen=True)
class Rule:
    yen_per_point: int
    on: str  # "paid" | "fulfilled"
    hold_days: int

    @classmethod
    def of(cls, order: Order, settings: EffectiveSettings) -> Rule:
        """The rule the order was first granted under, else the shop's rule now."""
        if order.earn_rule:
            return cls(**order.earn_rule)
        return cls(settings.earn_yen_per_point, settings.earn_on, settings.earn_hold_days)

    def stored(self) -> dict:
        return {"yen_per_point": self.yen_per_point, "on": self.on, "hold_days": self.hold_days}


@dataclass(frozen=True)
class Earning:
    points: int  # what the order should have earned by now
    potential: int  # what it will earn once its trigger and hold days have come
    grant_on: date | None  # when the potential is granted (shop time zone); None: waiting for fulfilment


def earning_of(order: Order, settings: EffectiveSettings, now: datetime) -> Earning:
    f, rule = order.facts, Rule.of(order, settings)
    if rule.yen_per_point <= 0 or f.get("cancelled") or order.shopify_customer_id is None:
        return Earning(0, 0, None)
    on_paid = rule.on == "paid"
    if on_paid and not f.get("paid"):
        return Earning(0, 0, None)
    potential = int((Decimal(f["base"]) / rule.yen_per_point).to_integral_value(ROUND_FLOOR))
    trigger = order.paid_seen_at if on_paid else order.fulfilled_seen_at
    if trigger is None:  # paid, waiting for fulfilment
        return Earning(0, potential if f.get("paid") else 0, None)
    grant_on = trigger.astimezone(settings.timezone).date() + timedelta(days=rule.hold_days)
    if now < datetime.combine(grant_on, day_time(0), tzinfo=settings.timezone):
        return Earning(0, potential, grant_on)
    return Earning(potential, potential, grant_on)


def grant_moment(earning: Earning, settings: EffectiveSettings) -> datetime | None:
    if earning.grant_on is None or earning.points == earning.potential:
        return None
    return datetime.combine(earning.grant_on, day_time(0), tzinfo=settings.timezone)


def coupon_points_back(order: Order, conversion: Conversion) -> int:
    """Cancelled: all of the coupon's points; refunded: floor(points x refunded share)."""
    if order.facts.get("cancelled"):
        return conversion.points
    first = Decimal(order.base_when_paid or "0")
    if first <= 0:
        return 0
    share = max(Decimal(0), 1 - Decimal(order.facts["base"]) / first)
    return min(conversion.points, math.floor(conversion.points * share))


def settle(session: Session, order: Order, settings: EffectiveSettings, now: datetime) -> list[str]:
    """Plan what this order still owes the member or the member owes back; returns movement ids."""
    planned = []
    earning = earning_of(order, settings, now)
    if earning.points and not order.earn_rule:
        order.earn_rule = Rule.of(order, settings).stored()
    # Per member: a coupon's take-back (conversion_id set) is the conversion's, not the order's.
    held = dict(session.execute(
        select(PointMovement.shopify_customer_id, func.sum(PointMovement.points)).where(
            PointMovement.shop_id == order.shop_id, PointMovement.order_id == order.shopify_order_id,
            PointMovement.kind.in_((MovementKind.GRANT, MovementKind.TAKE_BACK)),
            PointMovement.conversion_id.is_(None), PointMovement.state.in_(COMMITTED))
        .group_by(PointMovement.shopify_customer_id)).all())
    targets = {customer_id: 0 for customer_id in held}  # the order is no longer theirs
    if order.shopify_customer_id is not None:
        targets[order.shopify_customer_id] = earning.points
    for customer_id, target in targets.items():
        difference = target - int(held.get(customer_id) or 0)
        if difference:
            kind, reason = ((MovementKind.GRANT, MovementReason.ONLINE_PURCHASE) if difference > 0
                            else (MovementKind.TAKE_BACK, MovementReason.PURCHASE_REVERSAL))
            planned.append(movements.plan(session, shop_id=order.shop_id, customer_id=customer_id, kind=kind,
                                          reason=reason, points=difference, order_id=order.shopify_order_id).id)
    for code in order.facts.get("codes") or []:
        planned += _coupon(session, order, code)
    session.execute(update(Order).where(Order.id == order.id).values(
        next_attempt_at=grant_moment(earning, settings), leased_until=None))
    return planned


def _coupon(session: Session, order: Order, code: str) -> list[str]:
    c = session.scalar(select(Conversion).where(Conversion.shop_id == order.shop_id, Conversion.code == code)
                       .with_for_update())
    if c is None:
        return []
    planned = []
    if c.order_id is None and c.shopify_customer_id == order.shopify_customer_id and c.status in USABLE:
        # (Shopify scopes our codes to their customer: another customer's order cannot have used it.)
        planned += _used_by(session, c, order)
    if c.order_id != order.shopify_order_id:
        return planned
    back = coupon_points_back(order, c) - c.points_returned
    if back <= 0:
        return planned
    c.points_returned += back
    return [*planned, movements.plan(session, shop_id=c.shop_id, customer_id=c.shopify_customer_id,
                                     kind=MovementKind.GIVE_BACK, reason=MovementReason.COUPON_GIVEN_BACK,
                                     points=back, smaregi_customer_id=c.smaregi_customer_id,
                                     order_id=order.shopify_order_id, conversion_id=c.id).id]


# A coupon an order can turn out to have used: live, counted used by Shopify, or given back meanwhile
# (a checkout started before the hand-back or the expiry, delivered after it).
USABLE = (ConversionStatus.COMPLETED, ConversionStatus.USED, ConversionStatus.RETURNED, ConversionStatus.EXPIRED)


def _used_by(session: Session, c: Conversion, order: Order) -> list[str]:
    """Mark the conversion used by this order; points already given back for it are taken back
    (stopping at 0, the rest owed), so the shopper never keeps both the discount and the points."""
    # What the hand-back or expiry actually moved (a give-back Smaregi refused gave nothing back).
    given_back = int(session.scalar(select(func.coalesce(func.sum(PointMovement.points), 0)).where(
        PointMovement.conversion_id == c.id, PointMovement.kind == MovementKind.GIVE_BACK,
        PointMovement.state.in_(COMMITTED))) or 0)
    c.status, c.order_id, c.order_name = ConversionStatus.USED, order.shopify_order_id, order.name
    c.points_returned = 0
    for column, value in LIST_OUTDATED.items():  # the coupon list shows it used
        setattr(c, column, value)
    log.info("coupon.used", extra={"conversion_id": c.id, "order_id": order.shopify_order_id})
    if given_back <= 0:
        return []
    log.warning("coupon.used_after_give_back", extra={"conversion_id": c.id, "order_id": order.shopify_order_id,
                                                      "points": given_back})
    return [movements.plan(session, shop_id=c.shop_id, customer_id=c.shopify_customer_id,
                           kind=MovementKind.TAKE_BACK, reason=MovementReason.ONLINE_CONVERSION, points=-given_back,
                           smaregi_customer_id=c.smaregi_customer_id, order_id=order.shopify_order_id,
                           conversion_id=c.id).id]


def target_for(session: Session, shop: Shop, config) -> tuple[EffectiveSettings, Target]:
    settings = effective_settings(session, shop, config)
    return settings, Target(settings.contract_id, settings.point_expiry_months,
                            utcnow().astimezone(settings.timezone).date())


# -- the worker's job ------------------------------------------------------------------------------------
def run(services) -> float:
    """Settle due orders and send the movements that are due. Returns seconds until the next run."""
    deadline = time.monotonic() + BUDGET_S
    more = True
    while time.monotonic() < deadline and more:
        # A batch of orders, then a batch of movements: sends start at once, not after a whole
        # backlog of orders is settled (a batch of orders settles faster than its points can go).
        settled = settle_due(services)
        more = send_due(services, deadline) > 0 or settled == BATCH  # one movement per member a batch
    return 0.0 if more else 0.5  # out of time with work left: again at once


def settle_due(services, limit: int = BATCH) -> int:
    now = utcnow()
    with services.db.transaction() as session:
        orders = session.scalars(select(Order).where(
            Order.next_attempt_at.is_not(None), Order.next_attempt_at <= now,
            or_(Order.leased_until.is_(None), Order.leased_until < now))
            .order_by(Order.next_attempt_at).limit(limit).with_for_update(skip_locked=True)).all()
        settings_by_shop: dict[int, EffectiveSettings] = {}
        for order in orders:
            if order.shop_id not in settings_by_shop:
                settings_by_shop[order.shop_id] = effective_settings(session, session.get(Shop, order.shop_id),
                                                                     services.config)
            settle(session, order, settings_by_shop[order.shop_id], now)
    return len(orders)


def send_due(services, deadline: float) -> int:
    """Drive the due movements a few at a time: each waits on its own rate-limit slot and Smaregi's
    answer, so one at a time would leave the contract's write budget unused."""
    ids = movements.claim_due(services, limit=SENDERS * 2)  # no more than can go soon: the rest stay claimable
    targets: dict[int, Target] = {}
    with services.db.transaction() as session:
        shop_of = dict(session.execute(select(PointMovement.id, PointMovement.shop_id)
                                       .where(PointMovement.id.in_(ids))).all())
        for shop_id in set(shop_of.values()):
            targets[shop_id] = target_for(session, session.get(Shop, shop_id), services.config)[1]

    def one(movement_id: str) -> None:
        target = targets[shop_of[movement_id]]
        if target.contract_id is None:
            return
        try:
            movements.drive(services, movement_id, target, deadline=max(deadline, time.monotonic() + 2.0))
        except Exception:
            log.exception("movement.drive_failed", extra={"movement_id": movement_id})

    list(_senders.map(one, ids))
    return len(ids)


_senders = ThreadPoolExecutor(max_workers=SENDERS, thread_name_prefix="movement")


def pending(session: Session, shop_id: int, customer_id: int, settings: EffectiveSettings) -> dict:
    """Points the customer's orders will earn but that are not granted yet (contract: `pending`)."""
    now = utcnow()
    orders = session.scalars(select(Order).where(Order.shop_id == shop_id, Order.shopify_customer_id == customer_id,
                                                 Order.created_at >= now - timedelta(days=400))).all()
    points, dates = 0, []
    for order in orders:
        earning = earning_of(order, settings, now)
        if earning.potential > earning.points:
            points += earning.potential - earning.points
            if earning.grant_on is not None:  # None: it waits for fulfilment, no date known
                dates.append(earning.grant_on)
    waiting = int(session.scalar(select(func.coalesce(func.sum(PointMovement.points), 0)).where(
        PointMovement.shop_id == shop_id, PointMovement.shopify_customer_id == customer_id,
        PointMovement.kind == MovementKind.GRANT, PointMovement.state == movements.S.PLANNED)) or 0)
    points += waiting  # granted by the app, not yet in Smaregi (e.g. no linked member yet)
    next_on = min(dates) if dates else None
    return {"points": points, "next_on": next_on.isoformat() if next_on and points else None}
