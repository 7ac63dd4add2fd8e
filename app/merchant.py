"""What the merchant sees and changes in the embedded admin. Every function takes the shop from a
verified session token; no query here can reach another shop's rows."""
from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import String, case, cast, func, or_, select, update

from . import connect
from .models import Conversion, DataRequest, MemberLink, Order, PointMovement, Shop, ShopSettings, SmaregiContract, utcnow
from .points.errors import ConversionInProgress
from .points.ledger import ConversionStatus, shop_today, shown_code
from .points.member import forget_settings
from .services import Services
from .settings import effective_settings
from .shops import ensure_shop
from .smaregi.errors import SmaregiBadRequest, SmaregiError, SmaregiForbidden, SmaregiNotFound, SmaregiUnauthorized
from .sync import operations, reasons, scheduler

REVIEW_CLAIM = timedelta(seconds=60)  # longer than the Shopify and Smaregi calls a review answer makes


class ReviewInProgress(ConversionInProgress):
    message = "Another answer to this review is being recorded."


class SettingsInvalid(Exception):
    """`errors`: field → {"code", "params", "message"}; the admin shows the code in its own language."""

    def __init__(self, errors: dict[str, dict[str, Any]]):
        super().__init__("invalid settings")
        self.errors = errors


# English wording of each validation code; the admin page translates the codes (app/web/admin_text.py).
FIELD_ERRORS = {
    "whole_number": "Enter a whole number.",
    "out_of_range": "Enter a number from {low} to {high}.",
    "minimum_not_multiple": "The minimum must be a multiple of the unit ({unit}).",
    "limit_below_minimum": "The daily limit cannot be below the minimum.",
    "placeholder_length": "Enter 1 to 85 characters (Smaregi requires a name).",
    "rank_labels_format": "Each rank (up to 20 characters) needs labels of up to 40 characters in ja and en.",
    "on_or_off": "Choose on or off.",
    "earn_trigger": "Choose paid or fulfilled.",
}


def _error(code: str, **params: Any) -> dict[str, Any]:
    shown = {k: f"{v:,}" if isinstance(v, int) else v for k, v in params.items()}
    return {"code": code, "params": shown, "message": FIELD_ERRORS[code].format(**shown)}


@dataclass(frozen=True)
class AdminShop:
    shop_id: int
    domain: str


def admin_shop(services: Services, domain: str) -> AdminShop:
    with services.db.transaction() as session:
        return AdminShop(ensure_shop(session, domain), domain)


# -- settings --------------------------------------------------------------------------------------------
def get_settings(services: Services, shop: AdminShop) -> dict[str, Any]:
    with services.db.transaction() as session:
        row = session.get(Shop, shop.shop_id)
        effective = effective_settings(session, row, services.config)
        own = session.get(ShopSettings, shop.shop_id)
    connected = connect.connection(services, shop.shop_id)
    return {
        # Read-only: only a Smaregi sign-in (POST /admin/api/smaregi/connect) changes the contract.
        "smaregi_contract_id": connected["contract_id"] or "",
        "smaregi_contract_source": connected["source"],
        "smaregi_connected_at": connected["connected_at"],
        "default_contract_id": services.config.smaregi_contract_id or "",
        "currency": effective.currency, "timezone": effective.timezone.key,
        "yen_per_point": effective.yen_per_point, "points_unit": effective.points_unit,
        "points_minimum": effective.points_minimum, "points_daily_limit": effective.points_daily_limit,
        "coupon_valid_days": effective.coupon_valid_days, "rank_labels": effective.rank_labels,
        "blank_name_placeholder": effective.blank_name_placeholder,
        "keep_store_member_codes": effective.keep_store_member_codes,
        "sync_enabled": own.sync_enabled if own else True,
        "sync_enabled_globally": services.config.smaregi_sync_enabled,
    }


def _int(errors: dict, data: dict, name: str, low: int, high: int) -> int | None:
    value = data.get(name)
    if not isinstance(value, int) or isinstance(value, bool):
        errors[name] = _error("whole_number")
        return None
    if not low <= value <= high:
        errors[name] = _error("out_of_range", low=low, high=high)
        return None
    return value


def save_settings(services: Services, shop: AdminShop, data: dict[str, Any]) -> dict[str, Any]:
    """Validate everything first; save nothing unless all of it is valid."""
    if not isinstance(data, dict):
        raise SettingsInvalid({"_": {"code": "invalid_request", "params": {},
                                     "message": "Send the settings as a JSON object."}})
    errors: dict[str, str] = {}
    yen = _int(errors, data, "yen_per_point", 1, 10_000)
    unit = _int(errors, data, "points_unit", 1, 100_000)
    minimum = _int(errors, data, "points_minimum", 1, 1_000_000)
    daily = _int(errors, data, "points_daily_limit", 1, 100_000_000)
    days = _int(errors, data, "coupon_valid_days", 1, 365)
    if unit and minimum and minimum % unit:
        errors["points_minimum"] = _error("minimum_not_multiple", unit=unit)
    if minimum and daily and daily < minimum:
        errors["points_daily_limit"] = _error("limit_below_minimum")
    placeholder = data.get("blank_name_placeholder")
    if not isinstance(placeholder, str) or not 1 <= len(placeholder.strip()) <= 85:
        errors["blank_name_placeholder"] = _error("placeholder_length")
    labels = data.get("rank_labels") or {}
    if not isinstance(labels, dict) or any(
            not isinstance(k, str) or not 1 <= len(k) <= 20 or not isinstance(v, dict)
            or any(lang not in ("ja", "en") or not isinstance(t, str) or len(t) > 40 for lang, t in v.items())
            for k, v in labels.items()):
        errors["rank_labels"] = _error("rank_labels_format")
    for flag in ("keep_store_member_codes", "sync_enabled"):
        if not isinstance(data.get(flag), bool):
            errors[flag] = _error("on_or_off")
    if errors:
        raise SettingsInvalid(errors)
    with services.db.transaction() as session:
        own = session.get(ShopSettings, shop.shop_id) or ShopSettings(shop_id=shop.shop_id)
        own.yen_per_point, own.points_unit, own.points_minimum = yen, unit, minimum
        own.points_daily_limit, own.coupon_valid_days = daily, days
        own.rank_labels = {k: {lang: t.strip() for lang, t in v.items() if t.strip()} for k, v in labels.items()}
        own.blank_name_placeholder = placeholder.strip()
        own.keep_store_member_codes, own.sync_enabled = data["keep_store_member_codes"], data["sync_enabled"]
        session.add(own)
    forget_settings(shop.domain)
    return get_settings(services, shop)


# -- Smaregi connection --------------------------------------------------------------------------------------
def test_connection(services: Services, shop: AdminShop) -> dict[str, Any]:
    """Each check in plain words, so the merchant knows what to fix."""
    contract = connect.connection(services, shop.shop_id)["contract_id"]
    if not contract:
        return {"ok": False, "checks": [{"name": "contract", "ok": False, "code": "contract_missing", "params": {},
                                         "message": "Connect Smaregi first (sign in with your Smaregi account)."}]}
    client = services.smaregi.contract(contract)
    deadline = time.monotonic() + 10
    checks: list[dict[str, Any]] = []

    # `code` and `params` let the admin say each result in its own language; `message` is the English.
    def check(name: str, call, ok_message: str) -> Any:
        params: dict[str, Any] = {}
        try:
            result = call()
        except SmaregiUnauthorized:
            code, message = "bad_credentials", ("Smaregi refused the app's client ID or secret "
                                                "(SMAREGI_CLIENT_ID / SMAREGI_CLIENT_SECRET).")
        except SmaregiNotFound:
            code, params = "unknown_contract", {"contract": contract}
            message = f"Smaregi does not know the contract ID {contract}. Check it in Smaregi's admin (契約ID)."
        except SmaregiForbidden:
            code = "plan_or_scope"
            message = ("Smaregi refused access to members and points: the plan must be Premium Plus, Food Business "
                       "or Retail Business, and the app needs the pos.customers scopes approved.")
        except SmaregiBadRequest as exc:
            code, params = "refused", {"detail": exc.detail or exc.title}
            message = f"Smaregi refused the request: {exc.detail or exc.title} (a scope may not be approved yet)."
        except SmaregiError:
            code, message = "no_answer", "Smaregi did not answer. Try again in a moment."
        else:
            checks.append({"name": name, "ok": True, "code": f"ok_{name}", "params": {}, "message": ok_message})
            return result
        checks.append({"name": name, "ok": False, "code": code, "params": params, "message": message})
        return None

    check("credentials", lambda: client.s.tokens.get(contract, deadline), "The app signed in to your contract.")
    if checks[-1]["ok"]:
        check("members", lambda: client.list_customers(limit=1, deadline=deadline),
              "Members and points can be read.")
    if checks[-1]["ok"]:
        required = check("required_fields", lambda: client.required_columns(deadline=deadline),
                         "Member fields checked.") or {}
        unsupported = sorted(k for k, v in required.items() if v and k not in
                             ("lastName", "firstName", "customerCode", "mailAddress", "phoneNumber", "postCode",
                              "address"))
        if unsupported:
            checks[-1] = {"name": "required_fields", "ok": False, "code": "unsupported_fields",
                          "params": {"fields": ", ".join(unsupported)},
                          "message": "Smaregi requires fields Shopify does not have: " + ", ".join(unsupported)
                                     + ". New online customers cannot become members until these are optional "
                                       "(会員必須項目設定)."}
    return {"ok": all(c["ok"] for c in checks), "contract_id": contract, "checks": checks}


def directory_progress(services: Services, shop: AdminShop, start: bool = False) -> dict[str, Any]:
    contract = connect.connection(services, shop.shop_id)["contract_id"]
    if start:
        scheduler.schedule_now(services, "member_directory")
    with services.db.transaction() as session:
        row = session.get(SmaregiContract, contract) if contract else None
        return {"contract_id": contract, "started": bool(row and row.directory_import_started_at),
                "completed": bool(row and row.directory_import_completed_at),
                "members_imported": row.directory_imported if row else 0}


# -- dashboard -------------------------------------------------------------------------------------------------
def dashboard(services: Services, shop: AdminShop) -> dict[str, Any]:
    since = utcnow() - timedelta(hours=24)
    with services.db.transaction() as session:
        settings = effective_settings(session, session.get(Shop, shop.shop_id), services.config)
        latencies = sorted(session.scalars(select(MemberLink.last_latency_ms).where(
            MemberLink.shop_id == shop.shop_id, MemberLink.synced_at >= since,
            MemberLink.last_latency_ms.is_not(None))).all())
        today = session.execute(select(func.count(), func.coalesce(func.sum(Conversion.points), 0)).where(
            Conversion.shop_id == shop.shop_id, Conversion.local_date == shop_today(settings),
            Conversion.status == "completed")).one()
        review = session.scalar(select(func.count()).select_from(Conversion).where(
            Conversion.shop_id == shop.shop_id, Conversion.status == ConversionStatus.NEEDS_REVIEW))

    def pct(q: float) -> int | None:
        return latencies[min(len(latencies) - 1, round(q * (len(latencies) - 1)))] if latencies else None

    return {"members": operations.status_counts(services.db, shop.shop_id),
            "sync_latency_ms_24h": {"count": len(latencies), "p50": pct(0.5), "p95": pct(0.95)},
            "conversions_today": {"count": today[0], "points": int(today[1])},
            "needs_review": review, "directory": directory_progress(services, shop)}


# -- failures and conflicts ---------------------------------------------------------------------------------------
def problems(services: Services, shop: AdminShop) -> list[dict[str, Any]]:
    out = []
    for p in operations.problems(services.db, shop.shop_id):
        gone = p.member_status != "active"
        out.append({"link_id": p.link_id, "customer_id": p.shopify_customer_id,
                    "state": f"member_{p.member_status}" if gone else p.state, "member_status": p.member_status,
                    "reason": MEMBER_GONE[p.member_status] if gone else p.last_error,
                    **reasons.recognise(None if gone else p.last_error), "attempts": p.attempts,
                    "last_tried_at": p.updated_at.isoformat(),
                    "candidates": p.conflict_candidates or []})
    return out


MEMBER_GONE = {"withdrawn": "The member was withdrawn (退会) at the register; the customer sees no points.",
               "deleted": "The member was deleted in Smaregi; the customer sees no points until they are "
                          "linked again (their next change in Shopify, or Resync)."}


def retry(services: Services, shop: AdminShop, link_ids: list[int] | None) -> int:
    return operations.retry_failed(services.db, shop_id=shop.shop_id, link_ids=link_ids)


def resolve_conflict(services: Services, shop: AdminShop, link_id: int, smaregi_customer_id: str) -> bool:
    return operations.resolve_conflict(services.db, shop.shop_id, link_id, smaregi_customer_id)


# -- conversions ------------------------------------------------------------------------------------------------------
def conversions(services: Services, shop: AdminShop, query: str = "", status: str = "") -> list[dict[str, Any]]:
    with services.db.transaction() as session:
        stmt = select(Conversion).where(Conversion.shop_id == shop.shop_id)
        if status:
            stmt = stmt.where(Conversion.status == status)
        if query:
            like = f"%{query.strip()}%"
            stmt = stmt.where(or_(Conversion.code.ilike(like),
                                  cast(Conversion.shopify_customer_id, String).ilike(like)))
        rows = session.scalars(stmt.order_by(Conversion.created_at.desc()).limit(200)).all()
    return [{"id": c.id, "created_at": c.created_at.isoformat(), "customer_id": c.shopify_customer_id,
             "points": c.points, "amount": c.amount, "currency": c.currency, "code": shown_code(c), "status": c.status,
             "error": c.error_message, "error_code": c.error_code,
             "smaregi_transaction_ids": c.smaregi_transaction_ids or [],
             "order_name": c.order_name, "points_returned": c.points_returned or 0} for c in rows]


def resolve_review(services: Services, shop: AdminShop, conversion_id: str, points_were_deducted: bool) -> bool:
    from .points.saga import LostRace, Saga

    now = utcnow()
    with services.db.transaction() as session:
        owned = session.scalar(select(Conversion.id).where(Conversion.id == conversion_id,
                                                           Conversion.shop_id == shop.shop_id,
                                                           Conversion.status == ConversionStatus.NEEDS_REVIEW))
        # Two answers at once (a double click, two staff members): the first claims the review,
        # so the other can neither re-enable a code the first withdrew nor fail halfway.
        claimed = owned is not None and session.execute(
            update(Conversion).where(Conversion.id == conversion_id, Conversion.status == ConversionStatus.NEEDS_REVIEW,
                                     or_(Conversion.leased_until.is_(None), Conversion.leased_until < now))
            .values(leased_until=now + REVIEW_CLAIM)).rowcount == 1
    if owned is None:
        return False
    if not claimed:
        raise ReviewInProgress()
    try:
        Saga(services).resolve_review(conversion_id, points_were_deducted)
    except LostRace:
        raise ReviewInProgress() from None
    except Exception:
        with services.db.transaction() as session:  # nothing decided: the merchant may answer again
            session.execute(update(Conversion).where(Conversion.id == conversion_id,
                                                     Conversion.status == ConversionStatus.NEEDS_REVIEW)
                            .values(leased_until=None))
        raise
    return True


def movements_to_review(services: Services, shop: AdminShop) -> list[dict[str, Any]]:
    """Point movements waiting for the merchant, with the order they belong to and what can be done."""
    from .points import movements

    with services.db.transaction() as session:
        rows = movements.to_review(session, shop.shop_id)
        order_ids = {m.order_id for m in rows if m.order_id is not None}
        names = dict(session.execute(select(Order.shopify_order_id, Order.name).where(
            Order.shop_id == shop.shop_id, Order.shopify_order_id.in_(order_ids))).all()) if order_ids else {}
    return [{"id": m.id, "customer_id": m.shopify_customer_id, "kind": m.kind, "points": m.points,
             "order_id": m.order_id, "order_name": names.get(m.order_id), "created_at": m.created_at.isoformat(),
             "updated_at": m.updated_at.isoformat() if m.updated_at else None, "reason": m.error,
             **reasons.recognise(m.error),
             "actions": ["recheck", "applied", "not_applied"] if movements.was_sent(m) else ["retry", "not_applied"]}
            for m in rows]


def decide_movement(services: Services, shop: AdminShop, movement_id: str, action: str) -> bool:
    """One of the listed actions on a movement of this shop awaiting review; False if it is not one."""
    from .points import movements

    with services.db.transaction() as session:
        if action in ("recheck", "retry"):
            return movements.reopen(session, shop.shop_id, movement_id)
        return movements.resolve(session, shop.shop_id, movement_id, applied=action == "applied")


def data_requests(services: Services, shop: AdminShop) -> list[dict[str, Any]]:
    with services.db.transaction() as session:
        rows = session.scalars(select(DataRequest).where(DataRequest.shop_id == shop.shop_id)
                               .order_by(DataRequest.created_at.desc())).all()
    return [{"id": r.id, "customer_id": r.shopify_customer_id, "request_id": r.request_id,
             "created_at": r.created_at.isoformat(), "data": r.export} for r in rows]


# -- online earning ---------------------------------------------------------------------------------------
EARNING_FIELDS = ("earn_yen_per_point", "earn_on", "earn_hold_days", "coupon_return_unused", "point_expiry_months")


def get_earning(services: Services, shop: AdminShop) -> dict[str, Any]:
    with services.db.transaction() as session:
        effective = effective_settings(session, session.get(Shop, shop.shop_id), services.config)
    return {"earn_yen_per_point": effective.earn_yen_per_point, "earn_on": effective.earn_on,
            "earn_hold_days": effective.earn_hold_days, "coupon_return_unused": effective.coupon_return_unused,
            "point_expiry_months": effective.point_expiry_months or 0}


def save_earning(services: Services, shop: AdminShop, data: Any) -> dict[str, Any]:
    """The earning rules (0 yen per point: online earning off; 0 months: expiry left alone).
    Validate everything first; save nothing unless all of it is valid."""
    if not isinstance(data, dict):
        raise SettingsInvalid({"_": {"code": "invalid_request", "params": {},
                                     "message": "Send the rules as a JSON object."}})
    errors: dict[str, dict[str, Any]] = {}
    yen = _int(errors, data, "earn_yen_per_point", 0, 100_000)
    hold = _int(errors, data, "earn_hold_days", 0, 365)
    months = _int(errors, data, "point_expiry_months", 0, 120)
    if data.get("earn_on") not in ("paid", "fulfilled"):
        errors["earn_on"] = _error("earn_trigger")
    if not isinstance(data.get("coupon_return_unused"), bool):
        errors["coupon_return_unused"] = _error("on_or_off")
    if errors:
        raise SettingsInvalid(errors)
    with services.db.transaction() as session:
        own = session.get(ShopSettings, shop.shop_id) or ShopSettings(shop_id=shop.shop_id)
        own.earn_yen_per_point, own.earn_on, own.earn_hold_days = yen, data["earn_on"], hold
        own.coupon_return_unused, own.point_expiry_months = data["coupon_return_unused"], months or None
        session.add(own)
    forget_settings(shop.domain)
    return get_earning(services, shop)


def earning_summary(services: Services, shop: AdminShop) -> dict[str, Any]:
    """Per customer and in total: earned online, taken back, given back, owed, pending."""
    from .orders.earning import pending
    from .points.movements import OWED_COUNTS, MovementKind, MovementState

    kinds = {MovementKind.GRANT: "earned_online", MovementKind.TAKE_BACK: "taken_back",
             MovementKind.GIVE_BACK: "given_back"}
    with services.db.transaction() as session:
        settings = effective_settings(session, session.get(Shop, shop.shop_id), services.config)
        # Earned and given back: what the movements were for (owed shows what was netted);
        # taken back: what Smaregi actually gave up (the rest is owed).
        amount = case((PointMovement.kind == MovementKind.TAKE_BACK, PointMovement.sent_points),
                      else_=PointMovement.points)
        moved = session.execute(
            select(PointMovement.shopify_customer_id, PointMovement.kind, func.coalesce(func.sum(amount), 0))
            .where(PointMovement.shop_id == shop.shop_id, PointMovement.kind.in_(list(kinds)),
                   PointMovement.state == MovementState.APPLIED)
            .group_by(PointMovement.shopify_customer_id, PointMovement.kind)).all()
        owed = session.execute(
            select(PointMovement.shopify_customer_id, func.sum(PointMovement.owed_change))
            .where(PointMovement.shop_id == shop.shop_id, PointMovement.state.in_(OWED_COUNTS))
            .group_by(PointMovement.shopify_customer_id)).all()
        customers: dict[int, dict[str, int]] = {}

        def row(customer_id: int) -> dict[str, int]:
            return customers.setdefault(customer_id, {"earned_online": 0, "taken_back": 0, "given_back": 0,
                                                      "owed": 0, "pending": 0})

        for customer_id, kind, points in moved:
            row(customer_id)[kinds[kind]] += abs(int(points))
        for customer_id, points in owed:
            row(customer_id)["owed"] += int(points or 0)
        with_orders = session.scalars(select(Order.shopify_customer_id).where(
            Order.shop_id == shop.shop_id, Order.shopify_customer_id.is_not(None)).distinct()).all()
        for customer_id in with_orders:
            waiting = pending(session, shop.shop_id, customer_id, settings)["points"]
            if waiting:
                row(customer_id)["pending"] = waiting
    total = {k: sum(c[k] for c in customers.values())
             for k in ("earned_online", "taken_back", "given_back", "owed", "pending")}
    return {"total": total, "customers": [{"customer_id": k, **v} for k, v in sorted(customers.items())]}
