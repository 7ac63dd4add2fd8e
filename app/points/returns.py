"""Coupon points given back: a customer hands back an unused coupon, or one expires unused.

Either way the code is withdrawn in Shopify first (so it can no longer be used), then the
conversion moves to `returned` / `expired` together with a planned give-back movement in one
transaction, and the movement is sent (in the request for a shopper, by the worker otherwise).
A code Shopify counts as used, or that an order the app has seen used, is never given back.
"""
from __future__ import annotations

import logging
import time
from datetime import timedelta

from sqlalchemy import case, or_, select, update

from ..models import Conversion, PointMovement, Shop, utcnow
from ..services import Services
from ..settings import effective_settings
from ..shopify.admin import ShopifyRejected, ShopifyUnavailable
from ..shopify.discounts import Discounts
from ..shopify.tokens import ShopNotAuthorized
from . import errors as e
from . import movements
from .conversion import ConversionResult
from .ledger import LIST_OUTDATED, ConversionStatus
from .member import Shopper, linked_member, shop_and_settings_in
from .movements import MovementKind, MovementReason, Target

log = logging.getLogger(__name__)

S = ConversionStatus
SHOPIFY_FAILURES = (ShopifyRejected, ShopifyUnavailable, ShopNotAuthorized)
GIVE_BACK_BUDGET_S = 3.0
EXPIRY_BATCH = 20
WITHDRAW_FAILED = "withdraw_failed"
EXPIRY_RETRY_FIRST, EXPIRY_RETRY_MAX = timedelta(minutes=2), timedelta(hours=1)


class _Used(Exception):
    pass


def return_coupon(services: Services, shopper: Shopper, conversion_id: str) -> ConversionResult:
    """The customer hands back an unused coupon. Again: the same answer, nothing changes."""
    with services.db.transaction() as session:
        shop_id, settings = shop_and_settings_in(session, services.config, shopper.shop_domain)
        c = session.scalar(select(Conversion).where(Conversion.id == conversion_id, Conversion.shop_id == shop_id,
                                                    Conversion.shopify_customer_id == shopper.customer_id))
        if c is not None:
            session.expunge(c)
            registered = _registered(session, settings.contract_id, shop_id, shopper.customer_id)
    if c is None:
        raise e.NotFound()  # unknown, or another customer's: the same answer
    if c.status == S.RETURNED:
        return _answer(services, c, settings.timezone)
    if not registered:  # withdrawn or deleted at the register: the points would have nowhere to go
        raise e.NotRegistered()
    if not settings.coupon_return_unused:
        raise e.Forbidden("This store does not take coupons back.")
    if c.status == S.USED or c.order_id is not None:
        raise e.CouponUsed()
    if c.status != S.COMPLETED or (c.expires_at and c.expires_at <= utcnow()):
        raise e.NotFound()  # not a live coupon: undecided, failed, or expired (its points come back by themselves)
    try:
        _withdraw(services, shopper.shop_domain, c)
    except _Used:
        raise e.CouponUsed() from None
    except SHOPIFY_FAILURES:
        raise e.ShopifyUnavailable("The coupon could not be withdrawn just now. Nothing changed; please try again.") \
            from None
    movement_id = _give_back(services, c, S.RETURNED, lease=True)
    if movement_id is None:  # an order or another request moved it on meanwhile
        return return_coupon(services, shopper, conversion_id)
    target = Target(settings.contract_id, None, utcnow().astimezone(settings.timezone).date())
    movements.drive(services, movement_id, target, deadline=time.monotonic() + GIVE_BACK_BUDGET_S,
                    shopper_waiting=True)
    return _answer(services, _load(services, c.id), settings.timezone)


def _registered(session, contract_id: str, shop_id: int, customer_id: int) -> bool:
    try:
        linked_member(session, contract_id, shop_id, customer_id)
    except e.NotRegistered:
        return False
    return True


def _answer(services: Services, c: Conversion, tz) -> ConversionResult:
    """The returned conversion with the balance after its give-back (None until Smaregi applied it)."""
    with services.db.transaction() as session:
        balance = session.scalar(select(PointMovement.balance_after).where(
            PointMovement.conversion_id == c.id, PointMovement.kind == MovementKind.GIVE_BACK)
            .order_by(PointMovement.created_at.desc()).limit(1))
    c.balance_after = balance
    return ConversionResult(c, False, tz)


def _withdraw(services: Services, shop: str, c: Conversion) -> None:
    """Delete the code in Shopify unless an order already used it (then mark it used)."""
    discounts = Discounts(services.admin)
    usage = discounts.usage(shop, c.code)
    if usage is not None and usage.used > 0:
        with services.db.transaction() as session:
            session.execute(update(Conversion).where(Conversion.id == c.id, Conversion.status == S.COMPLETED)
                            .values(status=S.USED, **LIST_OUTDATED, updated_at=utcnow()))
        log.info("coupon.used_by_count", extra={"conversion_id": c.id})
        raise _Used()
    if usage is not None:
        try:
            discounts.delete(shop, usage.discount_id)
        except ShopifyRejected:
            discounts.deactivate(shop, usage.discount_id)


def _give_back(services: Services, c: Conversion, status: ConversionStatus, *, lease: bool) -> str | None:
    """completed → returned/expired with its give-back planned, or None if the conversion moved on."""
    with services.db.transaction() as session:
        moved = session.execute(update(Conversion).where(Conversion.id == c.id, Conversion.status == S.COMPLETED,
                                                         Conversion.order_id.is_(None))
                                .values(status=status, points_returned=c.points, **LIST_OUTDATED, updated_at=utcnow(),
                                        error_code=case((Conversion.error_code == WITHDRAW_FAILED, None),
                                                        else_=Conversion.error_code),
                                        error_message=case((Conversion.error_code == WITHDRAW_FAILED, None),
                                                           else_=Conversion.error_message))
                                .returning(Conversion.id)).first()
        if moved is None:
            return None
        m = movements.plan(session, shop_id=c.shop_id, customer_id=c.shopify_customer_id,
                           kind=MovementKind.GIVE_BACK, reason=MovementReason.COUPON_GIVEN_BACK, points=c.points,
                           smaregi_customer_id=c.smaregi_customer_id, conversion_id=c.id)
        if lease:  # the request sends it; the worker only if the request could not
            m.leased_until = utcnow() + timedelta(seconds=30)
        movement_id = m.id
    log.info("coupon.given_back", extra={"conversion_id": c.id, "status": str(status), "points": c.points})
    return movement_id


def _load(services: Services, conversion_id: str) -> Conversion:
    with services.db.transaction() as session:
        c = session.get(Conversion, conversion_id)
        session.expunge(c)
    return c


def give_back_expired(services: Services) -> float:
    """The worker's job: coupons that expired unused give their points back (code withdrawn first).
    Returns seconds until the next run: well within the hour the contract allows."""
    now = utcnow()
    with services.db.transaction() as session:
        # A shop that uninstalled the app cannot withdraw its codes, and one whose withdrawal failed
        # waits out its back-off: neither may hold the head of the queue for every other shop.
        due = session.scalars(select(Conversion).join(Shop, Shop.id == Conversion.shop_id).where(
            Conversion.status == S.COMPLETED, Conversion.expires_at < now, Conversion.order_id.is_(None),
            Shop.uninstalled_at.is_(None),
            or_(Conversion.next_attempt_at.is_(None), Conversion.next_attempt_at <= now))
            .order_by(Conversion.expires_at).limit(EXPIRY_BATCH)).all()
        shops = {c.shop_id: session.get(Shop, c.shop_id) for c in due}
        rules = {shop_id: effective_settings(session, shop, services.config) for shop_id, shop in shops.items()}
        for c in due:
            session.expunge(c)
    for c in due:
        try:
            if not rules[c.shop_id].coupon_return_unused:
                with services.db.transaction() as session:  # expired, points not given back (the shop's rule)
                    session.execute(update(Conversion).where(Conversion.id == c.id, Conversion.status == S.COMPLETED)
                                    .values(status=S.EXPIRED, **LIST_OUTDATED, updated_at=utcnow()))
                continue
            _withdraw(services, shops[c.shop_id].domain, c)
            _give_back(services, c, S.EXPIRED, lease=False)
        except _Used:
            continue
        except SHOPIFY_FAILURES as exc:
            _withdraw_failed_later(services, c, exc)
    return 60 if len(due) == EXPIRY_BATCH else 300


def _withdraw_failed_later(services: Services, c: Conversion, exc: Exception) -> None:
    """Try again later, backing off to an hour; the merchant sees why on the coupon."""
    delay = min(EXPIRY_RETRY_MAX, EXPIRY_RETRY_FIRST * 2 ** min(c.attempts, 10))
    with services.db.transaction() as session:
        session.execute(update(Conversion).where(Conversion.id == c.id, Conversion.status == S.COMPLETED).values(
            attempts=Conversion.attempts + 1, next_attempt_at=utcnow() + delay, error_code=WITHDRAW_FAILED,
            error_message=f"The expired code could not be withdrawn in Shopify ({type(exc).__name__}); "
                          "its points come back once it is."))
    log.warning("coupon.expiry_withdraw_failed", extra={"conversion_id": c.id, "error": type(exc).__name__,
                                                        "attempts": c.attempts + 1})
