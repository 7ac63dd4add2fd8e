"""The live balance a shopper sees: read from Smaregi now, within a second, or honestly stale.

Two Smaregi reads run side by side (points, and the last 31 days of transactions), both bound by
one deadline. Reloads within COALESCE_S are answered from a snapshot shared by every web process.
When Smaregi fails or is slow, a snapshot younger than STALE_MAX is shown with "stale": true.
"""
from __future__ import annotations

import contextvars
import functools
import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from ..models import BalanceSnapshot, PointMovement, utcnow
from ..orders.earning import pending
from ..services import Services
from ..settings import EffectiveSettings
from ..smaregi.client import PointBalance
from ..smaregi.errors import ContractPaused, SmaregiError, SmaregiNotFound, SmaregiTimeout
from ..sync.directory import WITHDRAWN, remember
from .errors import NotRegistered, PosTimeout, PosUnavailable
from .ledger import converted_today
from .member import Member, Shopper, find_member, linked_member, shop_and_settings_in
from .movements import MovementReason

log = logging.getLogger(__name__)

POS_BUDGET_S = 1.0  # Smaregi's share of the shopper's second; the rest is ours
COALESCE_S = 5.0
STALE_MAX = timedelta(hours=24)
HISTORY_DAYS = 31  # Smaregi's longest transaction window

LABELS = {
    "store_purchase": {"en": "Store purchase", "ja": "店舗でのお買い物"},
    "store_points_used": {"en": "Points used in store", "ja": "店舗でのポイント利用"},
    "online_conversion": {"en": "Online coupon", "ja": "オンラインクーポンへの交換"},
    "adjustment": {"en": "Adjustment", "ja": "ポイント調整"},
    "expiry": {"en": "Expired", "ja": "ポイント失効"},
    MovementReason.ONLINE_PURCHASE: {"en": "Online purchase", "ja": "オンラインでのお買い物"},
    MovementReason.PURCHASE_REVERSAL: {"en": "Online order cancelled or refunded",
                                       "ja": "オンライン注文のキャンセル・返金"},
    MovementReason.COUPON_GIVEN_BACK: {"en": "Coupon points given back", "ja": "クーポンのポイント返還"},
}

_pool = ThreadPoolExecutor(max_workers=64, thread_name_prefix="pos-read")  # two reads per waiting request


def read_balance(services: Services, shopper: Shopper, locale: str = "ja") -> dict[str, Any]:
    """The contract's balance JSON."""
    ctx = _context(services, shopper)
    now = utcnow()
    snapshot = ctx.snapshot
    if ctx.account is not None:  # the snapshot is fresh (see _context)
        reading, as_of, stale, account = snapshot.reading, snapshot.fetched_at, False, ctx.account
    else:
        # The rest of what the answer shows from our database is read while Smaregi answers.
        beside = _submit(_live_account, services, ctx)
        try:
            reading, account = _read_live(services, ctx, beside)
            as_of, stale = now, False
            _save_snapshot(services, ctx.shop_id, shopper.customer_id, reading, now)
        except NotRegistered:
            beside.cancel()
            raise
        except (SmaregiError, FutureTimeout) as exc:
            timed_out = isinstance(exc, (SmaregiTimeout, ContractPaused, FutureTimeout))
            log.warning("balance.pos_failed", extra={"shop_id": ctx.shop_id, "error": type(exc).__name__,
                                                     "status": getattr(exc, "status", None)})
            if snapshot is None or now - snapshot.fetched_at > STALE_MAX:
                beside.cancel()
                raise (PosTimeout() if timed_out else PosUnavailable()) from None
            reading, as_of, stale = snapshot.reading, snapshot.fetched_at, True
            account = _beside(services, ctx, beside)
    return _shape(ctx.settings, account, reading, as_of, stale, locale)


@dataclass(frozen=True)
class _Account:
    """What the answer shows from our database beside Smaregi's reading."""

    converted_today: int
    pending: dict[str, Any]
    our_transactions: dict[str, str]  # Smaregi transaction id → the movement's reason (a live history's labels)


@dataclass(frozen=True)
class _Context:
    """What the balance needs from our database before it reads Smaregi, in one transaction."""

    shop_id: int
    customer_id: int
    settings: EffectiveSettings
    snapshot: BalanceSnapshot | None
    linked: Member | None
    account: _Account | None  # read with the rest when the snapshot answers; else beside Smaregi's reads


def _context(services: Services, shopper: Shopper) -> _Context:
    # Reads that need no common snapshot: no transaction around them (no BEGIN and COMMIT round trips).
    with services.db.autocommit() as session:
        shop_id, settings = shop_and_settings_in(session, services.config, shopper.shop_domain)
        customer = shopper.customer_id
        snapshot = session.get(BalanceSnapshot, (shop_id, customer))
        account = _account(session, shop_id, customer, settings, live=False) if _fresh(snapshot) else None
        return _Context(shop_id, customer, settings, snapshot,
                        linked_member(session, settings.contract_id, shop_id, customer), account)


def _live_account(services: Services, ctx: _Context) -> _Account:
    with services.db.autocommit() as session:
        return _account(session, ctx.shop_id, ctx.customer_id, ctx.settings, live=True)


def _account(session: Session, shop_id: int, customer: int, settings: EffectiveSettings, *, live: bool) -> _Account:
    ours = session.execute(  # the history is only labelled on a live read
        select(PointMovement.smaregi_transaction_id, PointMovement.reason).where(
            PointMovement.shop_id == shop_id, PointMovement.shopify_customer_id == customer,
            PointMovement.smaregi_transaction_id.is_not(None),
            PointMovement.created_at >= utcnow() - timedelta(days=HISTORY_DAYS + 1))).all() if live else []
    return _Account(converted_today(session, shop_id, customer, settings), pending(session, shop_id, customer, settings),
                    {str(t): reason for t, reason in ours})


def _beside(services: Services, ctx: _Context, account: Future) -> _Account:
    """The database part of a live answer. The pool may be busy with other shoppers' Smaregi
    reads: one not started yet is read here instead of waited for."""
    return _live_account(services, ctx) if account.cancel() else account.result()


def _fresh(snapshot: BalanceSnapshot | None) -> bool:
    return snapshot is not None and (utcnow() - snapshot.fetched_at).total_seconds() < COALESCE_S


def _submit(fn, /, *args, **kwargs) -> Future:
    """On the pool, in a copy of this request's context (its timing counts the call)."""
    return _pool.submit(contextvars.copy_context().run, fn, *args, **kwargs)


def _read_live(services: Services, ctx: _Context, beside: Future) -> tuple[dict[str, Any], _Account]:
    deadline = time.monotonic() + POS_BUDGET_S
    client = services.smaregi.contract(ctx.settings.contract_id)
    with client.reads_reserved(_reads(services, ctx.linked), deadline=deadline):
        member = find_member(client, ctx.customer_id, ctx.linked, deadline)
        now = utcnow()
        points = _submit(client.get_points, member.smaregi_customer_id, deadline=deadline)
        histories = [_submit(client.list_transactions, customer_code=code,
                             updated_from=now - timedelta(days=HISTORY_DAYS), updated_to=now, deadline=deadline)
                     for code in _history_codes(member)]
        live = (_submit(client.get_customer, member.smaregi_customer_id, deadline=deadline)
                if _rank_is_read(services, ctx.linked) else None)

    def remaining():
        return max(0.0, deadline - time.monotonic()) + 0.05
    try:
        balance: PointBalance | None = points.result(timeout=remaining())
        transactions = list({str(t.get("transactionHeadId")): t for h in histories
                             for t in h.result(timeout=remaining())}.values())
    except BaseException:
        for read in (points, *histories, *([live] if live else [])):
            read.cancel()  # a read still queued when the answer is given up on would only spend quota
        raise
    member = _current_member(services, ctx.settings.contract_id, member, live, remaining())
    account = _beside(services, ctx, beside)
    return {
        "member": {"code": member.code, "rank": member.rank},
        "points": {"balance": balance.points if balance else 0,
                   "expires_on": balance.expires_on.isoformat() if balance and balance.expires_on else None},
        "history": _movements(transactions, account.our_transactions, ctx.settings),
    }, account


def _reads(services: Services, linked: Member | None) -> int:
    """The Smaregi reads _read_live makes, whose rate-limit slots it takes in one statement."""
    if linked is None:
        return 3  # the member found by code, its points, its one history
    return 1 + len(_history_codes(linked)) + _rank_is_read(services, linked)


def _history_codes(member: Member) -> list[str]:
    # Smaregi files transactions under the code the member had then: a store member linked by
    # e-mail keeps their store history under the code linking replaced.
    return list(dict.fromkeys(c for c in (member.code, member.earlier_code) if c))


def _rank_is_read(services: Services, linked: Member | None) -> bool:
    # The rank is the member's current one: a linked member's comes from the directory when
    # Smaregi's webhooks keep it current, else from a live read beside the other two.
    return linked is not None and not (linked.in_directory and services.config.smaregi_webhook_secret)


def _current_member(services: Services, contract_id: str, member: Member, live: Future | None,
                    timeout: float) -> Member:
    """The member as Smaregi holds it now; gone or withdrawn there: NotRegistered. No answer in
    time: what the directory knew (the balance is not held up by the rank)."""
    if live is None:
        return member
    try:
        found = live.result(timeout=timeout)
    except SmaregiNotFound:
        raise NotRegistered() from None
    except (SmaregiError, FutureTimeout):
        live.cancel()
        return member
    if found.get("status") in WITHDRAWN:
        raise NotRegistered()
    if not member.in_directory:
        with services.db.transaction() as session:
            remember(session, contract_id, found)  # e.g. linked by code before the directory knew it
    return Member(member.smaregi_customer_id, str(found.get("customerCode") or member.code), found.get("rank"))


def _movements(transactions: list[dict[str, Any]], ours: dict[str, str], settings: EffectiveSettings) -> list[dict]:
    """Point movements, newest first, with a kind the response labels in the shopper's language.
    A point/add the app made appears once, with the app's label (its movement's reason)."""
    out = []
    for t in transactions:
        moment = _parse(t.get("transactionDateTime") or t.get("updDateTime"))
        day = moment.astimezone(settings.timezone).date().isoformat() if moment else None
        earned, spent = int(t.get("newPoint") or 0), int(t.get("spendPoint") or 0)
        division = str(t.get("transactionHeadDivision") or "")
        head_id = str(t.get("transactionHeadId"))
        if division == "8":
            entries = [("expiry", -spent)]
        elif division == "7":
            entries = [(ours.get(head_id, "adjustment"), -spent)]
        elif division == "6":
            entries = [(ours.get(head_id, "adjustment"), earned)]
        elif division in ("13", "14"):
            entries = []  # miles, not points
        else:
            entries = [("store_purchase", earned), ("store_points_used", -spent)]
        for kind, points in entries:
            if points:
                out.append({"at": moment.isoformat() if moment else "", "date": day, "kind": kind, "points": points})
    out.sort(key=lambda m: m["at"], reverse=True)
    return out


def _shape(settings: EffectiveSettings, account: _Account, reading: dict[str, Any], as_of: datetime, stale: bool,
           locale: str) -> dict[str, Any]:
    lang = "ja" if locale.lower().startswith("ja") else "en"
    rank = reading["member"].get("rank")
    labels = (settings.rank_labels.get(rank) or {}) if rank else {}
    return {
        "member": {"code": reading["member"]["code"], "rank": rank,
                   "rank_label": labels.get(lang) or labels.get("en") or labels.get("ja") or rank},
        "points": dict(reading["points"]),
        "history": [{"date": m["date"], "label": LABELS[m["kind"]][lang], "points": m["points"]}
                    for m in reading["history"]],
        "conversion": {"unit": settings.points_unit, "minimum": settings.points_minimum,
                       "daily_limit": settings.points_daily_limit,
                       "remaining_today": max(0, settings.points_daily_limit - account.converted_today),
                       "yen_per_point": settings.yen_per_point},
        "pending": account.pending,
        "as_of": as_of.astimezone(settings.timezone).isoformat(timespec="seconds"),
        "stale": stale,
    }


def _save_snapshot(services: Services, shop_id: int, customer_id: int, reading: dict, at: datetime) -> None:
    """A cache, written on the shopper's clock: one statement that does not wait for the disk."""
    with services.db.ephemeral.begin() as conn:
        conn.execute(_snapshot_upsert(services.db.is_postgres),
                     {"shop_id": shop_id, "shopify_customer_id": customer_id, "reading": reading, "fetched_at": at})


@functools.cache
def _snapshot_upsert(postgres: bool):
    """Built once: building it took longer than running it (the row comes with each execution)."""
    stmt = (postgresql.insert if postgres else sqlite.insert)(BalanceSnapshot)
    return stmt.on_conflict_do_update(index_elements=["shop_id", "shopify_customer_id"],
                                      set_={"reading": stmt.excluded.reading, "fetched_at": stmt.excluded.fetched_at})


def _parse(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value)) if value else None
    except ValueError:
        return None

