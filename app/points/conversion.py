"""Points → a one-time discount code. Safe to call again with the same idempotency key.

The checks run in the contract's order and change nothing when they fail. Then a ledger row is
reserved (unique idempotency key; the database allows one conversion in flight per customer) and
the saga (saga.py) takes it from there.
"""
from __future__ import annotations

import logging
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from datetime import time as day_time
from typing import Any

from sqlalchemy import and_, bindparam, insert, literal, select
from sqlalchemy.exc import IntegrityError

from ..db import insert_ignoring_conflict
from ..models import Conversion, ConversionRefusal, utcnow
from ..services import Services
from ..settings import EffectiveSettings
from ..smaregi.errors import ContractPaused, SmaregiError, SmaregiTimeout
from . import errors as e
from .ledger import CONVERTED_TODAY, IN_FLIGHT, LEDGER, converted_today, converted_today_params, shop_today, shown_code
from .member import Shopper, find_member, linked_member, shop_and_settings, shop_and_settings_in

log = logging.getLogger(__name__)

BALANCE_CHECK_BUDGET_S = 2.0
CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: codes are read aloud and typed
MAX_IDEMPOTENCY_KEY = 128


@dataclass(frozen=True)
class ConversionResult:
    conversion: Conversion
    created: bool
    timezone: tzinfo


# What the rules refuse before anything is reserved; a replay of the key answers the same.
REFUSALS = (e.NotMultipleOfUnit, e.BelowMinimum, e.DailyLimitExceeded, e.InsufficientPoints)
# A recorded outcome's code → the error a replay raises again.
ERROR_FOR_CODE: dict[str, type[e.PointsError]] = {
    cls.code: cls for cls in (*REFUSALS, e.ShopifyUnavailable, e.PosUnavailable, e.PosTimeout, e.NotRegistered)}


def parse_request(body: Any) -> tuple[int, str]:
    """`points` (a whole number) and `idempotency_key` (a client-chosen string) are required."""
    if not isinstance(body, dict):
        raise e.InvalidRequest("The body must be a JSON object.")
    points, key = body.get("points"), body.get("idempotency_key")
    if not isinstance(points, int) or isinstance(points, bool) or points <= 0:
        raise e.InvalidRequest("points must be a positive whole number.")
    if not isinstance(key, str) or not (8 <= len(key) <= MAX_IDEMPOTENCY_KEY) or not key.isprintable():
        raise e.InvalidRequest("idempotency_key must be a string of 8 to 128 characters.")
    return points, key


def check_rules(points: int, settings: EffectiveSettings, converted_today: int) -> None:
    if points % settings.points_unit:
        raise e.NotMultipleOfUnit(f"Points must be a multiple of {settings.points_unit}.")
    if points < settings.points_minimum:
        raise e.BelowMinimum(f"At least {settings.points_minimum} points per conversion.")
    if converted_today + points > settings.points_daily_limit:
        left = max(0, settings.points_daily_limit - converted_today)
        raise e.DailyLimitExceeded(f"You can convert {left} more points today.")


def convert(services: Services, shopper: Shopper, points: int, key: str) -> ConversionResult:
    # Everything the checks need from our database: reads, so no transaction around them.
    with services.db.autocommit() as session:
        shop_id, settings = shop_and_settings_in(session, services.config, shopper.shop_domain)
        existing, refused, converted = _by_key_and_today(session, shop_id, shopper.customer_id, key, settings)
        linked = linked_member(session, settings.contract_id, shop_id, shopper.customer_id)
    if existing is not None:
        return replay(existing, shopper, points, settings)
    if refused is not None:
        _same_request(refused, shopper, points)
        raise ERROR_FOR_CODE[refused.error_code](refused.error_message)
    try:
        return _convert(services, shopper, points, key, shop_id, settings, converted, linked)
    except REFUSALS as refusal:
        _remember_refusal(services, shop_id, shopper, points, key, refusal)
        raise


def _convert(services: Services, shopper: Shopper, points: int, key: str, shop_id: int,
             settings: EffectiveSettings, converted: int, linked) -> ConversionResult:
    check_rules(points, settings, converted)
    client = services.smaregi.contract(settings.contract_id)
    deadline = time.monotonic() + BALANCE_CHECK_BUDGET_S
    try:
        member = find_member(client, shopper.customer_id, linked, deadline)
        balance = client.get_points(member.smaregi_customer_id, deadline=deadline)
    except SmaregiError as exc:
        raise (e.PosTimeout() if isinstance(exc, (SmaregiTimeout, ContractPaused)) else e.PosUnavailable()) from None
    if balance is None or balance.points < points:
        raise e.InsufficientPoints()
    conversion, ours = _reserve(services, shop_id, shopper, settings, member.smaregi_customer_id, points, key)
    if not ours:  # a concurrent request with the same key got there first: never drive its saga too
        return replay(conversion, shopper, points, settings)
    from .saga import LostRace, Saga

    saga = Saga(services, known_shop=(shop_id, shopper.shop_domain, settings.contract_id))
    try:
        return ConversionResult(saga.run(conversion), True, settings.timezone)
    except LostRace:  # the sweeper took over a request that outlived its lease
        return replay(_by_key(services, shop_id, key), shopper, points, settings)


def replay(conversion: Conversion, shopper: Shopper, points: int, settings: EffectiveSettings) -> ConversionResult:
    """The original outcome, calling nothing: success again, or the same error again."""
    _same_request(conversion, shopper, points)
    if conversion.status == "failed" and conversion.error_code in ERROR_FOR_CODE:
        raise ERROR_FOR_CODE[conversion.error_code](conversion.error_message)
    if conversion.status in IN_FLIGHT:
        raise e.ConversionInProgress()  # no outcome yet to replay; the same key again later will have one
    return ConversionResult(conversion, False, settings.timezone)


# Built once, like the saga's steps: on the shopper's clock, building a statement costs more than running it.
_BY_KEY_AND_TODAY = (
    select(Conversion, ConversionRefusal, CONVERTED_TODAY.scalar_subquery())
    .select_from(select(literal(1).label("one")).subquery())
    .outerjoin(Conversion, and_(Conversion.shop_id == bindparam("shop_id"),
                                Conversion.idempotency_key == bindparam("key")))
    .outerjoin(ConversionRefusal, and_(ConversionRefusal.shop_id == bindparam("shop_id"),
                                       ConversionRefusal.idempotency_key == bindparam("key"))))
_RESERVE = insert(LEDGER).returning(*LEDGER.c)


def _by_key_and_today(session, shop_id: int, customer_id: int, key: str, settings: EffectiveSettings
                      ) -> tuple[Conversion | None, ConversionRefusal | None, int]:
    """What this key already did (a conversion, or a refusal) and the points converted today, in
    one statement."""
    row = session.execute(_BY_KEY_AND_TODAY, {**converted_today_params(shop_id, customer_id, settings),
                                              "key": key}).one()
    return row[0], row[1], int(row[2] or 0)


def _same_request(original: Conversion | ConversionRefusal, shopper: Shopper, points: int) -> None:
    if original.shopify_customer_id != shopper.customer_id:
        raise e.Forbidden()  # someone else's key: not a way to see another customer's conversion
    if original.points != points:
        raise e.InvalidRequest("This idempotency_key was already used for a different amount.")


def _remember_refusal(services: Services, shop_id: int, shopper: Shopper, points: int, key: str,
                      refusal: e.PointsError) -> None:
    """Only the rules' verdicts are kept: a POS that did not answer (503/504) is worth another try
    with the same key, and the block keeps its key for exactly that."""
    with services.db.transaction() as session:
        insert_ignoring_conflict(session, ConversionRefusal, {
            "shop_id": shop_id, "shopify_customer_id": shopper.customer_id, "idempotency_key": key,
            "points": points, "error_code": refusal.code, "error_message": refusal.message, "created_at": utcnow()},
            ["shop_id", "idempotency_key"])


def list_conversions(services: Services, shopper: Shopper, limit: int = 50) -> list[dict[str, Any]]:
    """The customer's coupons, newest first, in the contract's shape."""
    shop_id, settings = shop_and_settings(services.db, services.config, shopper.shop_domain)
    with services.db.transaction() as session:
        rows = session.scalars(select(Conversion).where(
            Conversion.shop_id == shop_id, Conversion.shopify_customer_id == shopper.customer_id)
            .order_by(Conversion.created_at.desc()).limit(limit)).all()
    return [conversion_json(c, settings.timezone) for c in rows]


def public_status(conversion: Conversion) -> str:
    return "pending" if conversion.status in IN_FLIGHT else conversion.status


def conversion_json(c: Conversion, tz: tzinfo) -> dict[str, Any]:
    out = {"id": c.id, "status": public_status(c), "points": c.points, "amount": c.amount, "currency": c.currency,
           "code": shown_code(c), "expires_at": c.expires_at.astimezone(tz).isoformat() if c.expires_at else None,
           "created_at": c.created_at.astimezone(tz).isoformat() if c.created_at else None,
           "balance_after": c.balance_after}
    if c.order_id is not None or c.status == "used":
        out.update(order_name=c.order_name, points_returned=c.points_returned or 0)
    return out


def new_code(customer_id: int, points: int) -> str:
    """70934-AB12CD-500: whose (last five digits), a random part fixed at reservation, how much."""
    random_part = "".join(secrets.choice(CODE_ALPHABET) for _ in range(6))
    return f"{str(customer_id)[-5:]}-{random_part}-{points}"


def _expiry(settings: EffectiveSettings) -> datetime:
    """End of the last valid day in the shop's time zone."""
    last_day = shop_today(settings) + timedelta(days=settings.coupon_valid_days)
    return datetime.combine(last_day, day_time(23, 59, 59), tzinfo=settings.timezone)


def _by_key(services: Services, shop_id: int, key: str) -> Conversion | None:
    with services.db.transaction() as session:
        return session.scalar(select(Conversion).where(Conversion.shop_id == shop_id,
                                                       Conversion.idempotency_key == key))


def _reserve(services: Services, shop_id: int, shopper: Shopper, settings: EffectiveSettings,
             smaregi_customer_id: str, points: int, key: str) -> tuple[Conversion, bool]:
    """The reserved row and True, or the row a concurrent request with the same key reserved and False."""
    row = {"id": str(uuid.uuid4()), "shop_id": shop_id, "shopify_customer_id": shopper.customer_id,
           "smaregi_customer_id": smaregi_customer_id, "idempotency_key": key, "points": points,
           "amount": points * settings.yen_per_point, "currency": settings.currency,
           "code": new_code(shopper.customer_id, points), "local_date": shop_today(settings), "status": "reserved",
           "expires_at": _expiry(settings), "leased_until": utcnow() + timedelta(seconds=60),
           "next_attempt_at": utcnow(),
           # Nothing of it is listed yet, and the list is right about that (see saga.LIST_FOLLOWS).
           "metafield_recorded": True}
    try:
        with services.db.transaction() as session:
            # Core, not the ORM's unit of work: the row comes back as the saga's steps return it.
            conversion = Conversion(**session.connection().execute(_RESERVE, row).one()._mapping)
            # Checked again after the insert: the in-flight index admits one reservation per
            # customer at a time, so what this sees is everything that can count against today.
            check_rules(points, settings, converted_today(session, shop_id, shopper.customer_id, settings,
                                                          exclude_id=conversion.id))
    except IntegrityError:
        same_key = _by_key(services, shop_id, key)
        if same_key is not None:
            return same_key, False
        raise e.ConversionInProgress() from None
    log.info("conversion.reserved", extra={"conversion_id": conversion.id, "shop_id": shop_id, "points": points})
    return conversion, True
