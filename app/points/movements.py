"""The point-movement ledger: every change the app makes to a member's Smaregi points.

Conversion deductions, grants for online purchases, take-backs after cancellations and refunds,
and give-backs of coupon points are all one thing here, a `PointMovement`, written ahead:

    planned → sending → applied
                 ↘ (not applied: unreachable, throttled) → planned again, no attempt used up
                 ↘ (refused by Smaregi, or proved absent) → planned again / needs_review
                 ↘ (two candidate transactions) → needs_review

Smaregi's point/add is relative and has no idempotency key. So a movement is marked `sending`
(with the moment) before it goes, and after an ambiguous answer (timeout, 5xx) it is never sent
again: `find_applied` looks for its transaction among the member's transactions instead, and only a
movement proved absent for DECIDE_AFTER goes back to `planned`.

Shortfall: a take-back larger than the balance takes the balance to 0 and records the rest in
`owed_change` (+N); the member's next additions by the app pay it off first (-N). A member's owed
points are the sum of `owed_change` over applied movements, never below 0. Undecided ones count
only when they pay owed points off (so no two additions pay off the same points); an undecided
take-back's shortfall is not owed yet (it may be re-sent against a different balance).

The conversion saga (saga.py) drives its own deduction movement in step with the conversion (in the
same statements, so a conversion costs no extra database round trip); everything else is driven
by `drive`, in the worker or, for a shopper's give-back, in the request.
"""
from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import case, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..models import BalanceSnapshot, Conversion, MemberLink, PointMovement, utcnow
from ..smaregi.client import PointChange, SmaregiClient
from ..smaregi.errors import (
    ContractPaused,
    SmaregiBadRequest,
    SmaregiError,
    SmaregiNotFound,
    SmaregiRateLimited,
    SmaregiServerError,
    SmaregiTimeout,
    SmaregiUnreachable,
)
from ..sync import reasons

log = logging.getLogger(__name__)

DECIDE_AFTER = timedelta(minutes=2)  # a change not visible in the member's transactions by then did not happen
RECONCILE_BUDGET_S = 3.0
BACKGROUND_BUDGET_S = 10.0
LEASE = timedelta(seconds=60)
MAX_ATTEMPTS = 12  # refusals and proved-absent sends; then a person looks (needs_review)
NOT_APPLIED_FIRST_RETRY, NOT_APPLIED_RETRY = timedelta(seconds=1), timedelta(seconds=60)
WAIT_FOR_MEMBER = timedelta(seconds=30)


class MovementKind(StrEnum):
    CONVERSION_DEDUCTION = "conversion_deduction"
    GRANT = "grant"  # an online purchase earned points
    TAKE_BACK = "take_back"  # a cancelled or refunded purchase gives earned points back
    GIVE_BACK = "give_back"  # coupon points come back: handed back, expired, or its order cancelled/refunded


class MovementState(StrEnum):
    PLANNED = "planned"
    SENDING = "sending"
    APPLIED = "applied"
    REFUSED = "refused"  # Smaregi said no, or the conversion it belonged to failed: nothing applied
    NEEDS_REVIEW = "needs_review"


class MovementReason(StrEnum):
    """What the shopper's history calls it (balance.py labels these in ja/en)."""

    ONLINE_CONVERSION = "online_conversion"
    ONLINE_PURCHASE = "online_purchase"
    PURCHASE_REVERSAL = "purchase_reversal"
    COUPON_GIVEN_BACK = "coupon_given_back"


K, S = MovementKind, MovementState
# Movements whose owed_change stands: applied in Smaregi.
OWED_COUNTS = (S.APPLIED,)
# What an order has moved so far: planned ones count too, so nothing is planned twice.
COMMITTED = (S.PLANNED, S.SENDING, S.APPLIED, S.NEEDS_REVIEW)


# -- one point/add, classified ------------------------------------------------------------------------
class Outcome(StrEnum):
    APPLIED = "applied"
    REFUSED = "refused"  # 400: a business rule (e.g. not enough points); nothing applied
    NOT_APPLIED = "not_applied"  # 429, paused, never connected: provably nothing applied
    AMBIGUOUS = "ambiguous"  # timeout or 5xx: maybe applied; reconcile, never resend
    MEMBER_GONE = "member_gone"  # 404: the member was deleted at the register; nothing applied


@dataclass(frozen=True)
class Sent:
    outcome: Outcome
    change: PointChange | None = None
    error: str = ""
    throttled: bool = False  # only the rate limit stood in the way: no attempt used up


def send_change(client: SmaregiClient, smaregi_customer_id: str, delta: int, *, deadline: float,
                expire_on: date | None = None, background: bool = False) -> Sent:
    """Send one relative change. The caller has written the movement as `sending` first."""
    try:
        change = client.add_points(smaregi_customer_id, delta, deadline=deadline, expire_on=expire_on,
                                   background=background)
    except SmaregiBadRequest as exc:
        return Sent(Outcome.REFUSED, error=exc.detail)
    except (SmaregiRateLimited, ContractPaused) as exc:
        return Sent(Outcome.NOT_APPLIED, error=type(exc).__name__, throttled=True)
    except SmaregiUnreachable as exc:
        return Sent(Outcome.NOT_APPLIED, error=type(exc).__name__)
    except (SmaregiTimeout, SmaregiServerError) as exc:
        return Sent(Outcome.AMBIGUOUS, error=type(exc).__name__)
    except SmaregiNotFound:
        return Sent(Outcome.MEMBER_GONE, error="SmaregiNotFound")
    except SmaregiError as exc:  # 401/403 after the client's own retry: not applied
        return Sent(Outcome.NOT_APPLIED, error=f"{type(exc).__name__} {exc.status}")
    return Sent(Outcome.APPLIED, change)


def member_codes(client: SmaregiClient, smaregi_customer_id: str, known: str | None, *,
                 deadline: float) -> list[str]:
    """The codes the member's transactions can be filed under: its code now, read from Smaregi (the
    merchant may have changed it at the register), and the one we know (a transaction keeps the
    code it was made with)."""
    try:
        current = client.get_customer(smaregi_customer_id, deadline=deadline).get("customerCode")
    except SmaregiNotFound:
        current = None
    return list(dict.fromkeys(code for code in (current, known) if code))


def find_applied(client: SmaregiClient, *, member_codes: list[str], smaregi_customer_id: str, delta: int,
                 since: datetime, claimed: set[str], deadline: float, background: bool = False,
                 rivals: int = 0) -> str | None:
    """The transaction id of our change among the member's transactions since we sent it: an add
    (division 6) or subtract (division 7) of exactly this many points that no other movement of
    ours has claimed. LookupError when it cannot be told whose a match is: two match, or another
    undecided change of ours of the same size (`rivals`, see undecided_like) could own it."""
    rows = {str(t["transactionHeadId"]): t for code in member_codes
            for t in client.list_transactions(customer_code=code, updated_from=since - timedelta(minutes=1),
                                              updated_to=utcnow(), deadline=deadline, background=background)}
    division, field = ("6", "newPoint") if delta > 0 else ("7", "spendPoint")
    matches = [str(t["transactionHeadId"]) for t in rows.values()
               if str(t.get("transactionHeadDivision")) == division and int(t.get(field) or 0) == abs(delta)
               and str(t.get("customerId", smaregi_customer_id)) == str(smaregi_customer_id)
               and str(t["transactionHeadId"]) not in claimed]
    if len(matches) > 1:
        raise LookupError("more than one matching transaction")
    if matches and rivals:
        raise LookupError("another undecided change of the same size could own it")
    return matches[0] if matches else None


# -- queries ------------------------------------------------------------------------------------------
def claimed_transaction_ids(session: Session, shop_id: int, customer_id: int) -> set[str]:
    """Transactions already known to be one of our movements (an undecided one has none yet)."""
    rows = session.scalars(select(PointMovement.smaregi_transaction_id).where(
        PointMovement.shop_id == shop_id, PointMovement.shopify_customer_id == customer_id,
        PointMovement.smaregi_transaction_id.is_not(None))).all()
    return {str(t) for t in rows}


def undecided_like(session: Session, shop_id: int, customer_id: int, delta: int, *,
                   not_movement: str | None = None, not_conversion: str | None = None) -> int:
    """Other changes of this member sent with the same points and not decided yet: until they are,
    a matching transaction may be theirs (they have no transaction id to exclude)."""
    query = select(func.count()).select_from(PointMovement).where(
        PointMovement.shop_id == shop_id, PointMovement.shopify_customer_id == customer_id,
        PointMovement.state == S.SENDING, PointMovement.sent_points == delta,
        PointMovement.smaregi_transaction_id.is_(None))
    if not_movement is not None:
        query = query.where(PointMovement.id != not_movement)
    if not_conversion is not None:
        query = query.where(or_(PointMovement.conversion_id.is_(None), PointMovement.conversion_id != not_conversion))
    return int(session.scalar(query) or 0)


def applied_movements(session: Session, shop_id: int, customer_id: int | None = None,
                      since: datetime | None = None) -> list[PointMovement]:
    """Every change the app made to Smaregi points (state `applied`), oldest first: what the audit
    compares with Smaregi and what the shopper's history merges with Smaregi's transactions."""
    query = select(PointMovement).where(PointMovement.shop_id == shop_id, PointMovement.state == S.APPLIED)
    if customer_id is not None:
        query = query.where(PointMovement.shopify_customer_id == customer_id)
    if since is not None:
        query = query.where(PointMovement.applied_at >= since)
    return list(session.scalars(query.order_by(PointMovement.applied_at, PointMovement.created_at)))


def owed_points(session: Session, shop_id: int, customer_id: int) -> int:
    counted = or_(PointMovement.state.in_(OWED_COUNTS),
                  PointMovement.state.in_((S.SENDING, S.NEEDS_REVIEW)) & (PointMovement.owed_change < 0))
    return max(0, int(session.scalar(select(func.coalesce(func.sum(PointMovement.owed_change), 0)).where(
        PointMovement.shop_id == shop_id, PointMovement.shopify_customer_id == customer_id, counted)) or 0))


def plan(session: Session, *, shop_id: int, customer_id: int, kind: MovementKind, reason: MovementReason,
         points: int, smaregi_customer_id: str | None = None, order_id: int | None = None,
         conversion_id: str | None = None) -> PointMovement:
    """Write a movement ahead, in the caller's transaction (with whatever decided it)."""
    movement = PointMovement(id=str(uuid.uuid4()), shop_id=shop_id, shopify_customer_id=customer_id,
                             smaregi_customer_id=smaregi_customer_id, kind=kind, reason=reason, points=points,
                             state=S.PLANNED, order_id=order_id, conversion_id=conversion_id, attempts=0,
                             owed_change=0, next_attempt_at=utcnow())
    session.add(movement)
    session.flush()
    return movement


# -- driving one movement -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Target:
    """Where a movement goes: the contract and the shop's rule for extending the expiry."""

    contract_id: str
    expiry_months: int | None
    today: date


def drive(services, movement_id: str, target: Target, *, deadline: float | None = None,
          shopper_waiting: bool = False) -> PointMovement:
    """Take one movement as far as it goes now. Safe to call again; the lease is the caller's."""
    deadline = deadline if deadline is not None else time.monotonic() + BACKGROUND_BUDGET_S
    client = services.smaregi.contract(target.contract_id)
    background = not shopper_waiting
    m = _load(services, movement_id)
    if m.state == S.SENDING:
        m = _reconcile(services, client, m, deadline, background)
    if m.state == S.PLANNED:
        m = _send(services, client, m, target, deadline, background)
    return m


def _member(session: Session, m: PointMovement) -> tuple[str, str] | None:
    row = session.execute(select(MemberLink.smaregi_customer_id, MemberLink.member_code).where(
        MemberLink.shop_id == m.shop_id, MemberLink.shopify_customer_id == m.shopify_customer_id,
        MemberLink.smaregi_customer_id.is_not(None), MemberLink.state != "conflict")
        .with_for_update()).first()  # one movement of a member is decided at a time (owed)
    return (row.smaregi_customer_id, row.member_code or str(m.shopify_customer_id)) if row else None


def _send(services, client: SmaregiClient, m: PointMovement, target: Target, deadline: float,
          background: bool) -> PointMovement:
    balance, read, expire_on = None, None, _extended_expiry(target) if m.kind == K.GRANT else None
    # A take-back stops at 0: how much is there? An extended expiry never shortens the member's own.
    if m.points < 0 or expire_on is not None:
        with services.db.transaction() as session:
            member = _member(session, m)
            read = _changes(session, m)
        if member is None:
            return _wait_for_member(services, m)
        if m.points < 0 and read.in_flight:
            return _later(services, m, IN_FLIGHT, after=IN_FLIGHT_RETRY)
        try:
            found = client.get_points(member[0], deadline=deadline, background=background)
        except SmaregiError as exc:
            return _later(services, m, f"balance unreadable: {type(exc).__name__}")
        balance = found.points if found else 0
        if expire_on is not None and found is not None and found.expires_on and found.expires_on >= expire_on:
            expire_on = None
    with services.db.transaction() as session:
        member = _member(session, m)
        if member is None:
            return _wait_for_member(services, m, session)
        # Decided under the member's lock, against every other change of the member (owed, below).
        waiting = _must_wait(session, m, read)
        if waiting is not None:
            why, after = waiting
            session.execute(update(PointMovement).where(PointMovement.id == m.id, PointMovement.state == S.PLANNED)
                            .values(next_attempt_at=utcnow() + after, leased_until=None, error=why))
            return m
        if m.points > 0:
            pay_off = min(m.points, owed_points(session, m.shop_id, m.shopify_customer_id))
            delta, owed_change = m.points - pay_off, -pay_off
        else:
            take = min(-m.points, balance or 0)
            delta, owed_change = -take, -m.points - take
        row = session.execute(update(PointMovement).where(PointMovement.id == m.id, PointMovement.state == S.PLANNED)
                              .values(state=S.SENDING if delta else S.APPLIED, smaregi_customer_id=member[0],
                                      sent_points=delta, owed_change=owed_change, sent_at=utcnow(),
                                      applied_at=None if delta else utcnow(), updated_at=utcnow())
                              .returning(PointMovement.id)).first()
    if row is None or not delta:
        if row is not None:
            log.info("movement.netted", extra={"movement_id": m.id, "owed_change": owed_change})
        return _load(services, m.id)
    sent = send_change(client, member[0], delta, deadline=deadline, expire_on=expire_on, background=background)
    if sent.outcome == Outcome.APPLIED:
        try:
            return _applied(services, m.id, sent.change.transaction_ids, sent.change.points)
        except IntegrityError:  # a reconciliation adopted our transaction before we recorded it
            release_claim(services, m.shop_id, sent.change.transaction_ids[-1])
            return _applied(services, m.id, sent.change.transaction_ids, sent.change.points)
    if sent.outcome == Outcome.AMBIGUOUS:
        log.warning("movement.ambiguous", extra={"movement_id": m.id, "error": sent.error})
        return _later(services, m, sent.error, from_state=S.SENDING, after=timedelta(seconds=10))
    if sent.outcome == Outcome.NOT_APPLIED:
        # Provably nothing applied (unreachable, not accepting us, throttled): safe to send again, and
        # no attempt used up, so an outage of any length loses nothing. Throttled: next in line.
        log.info("movement.not_applied", extra={"movement_id": m.id, "error": sent.error})
        return _set(services, m, S.SENDING, state=S.PLANNED, sent_points=None, owed_change=0, sent_at=None,
                    leased_until=None, error=sent.error,
                    next_attempt_at=utcnow() + (timedelta(0) if sent.throttled else _not_applied_retry(m)))
    if sent.outcome == Outcome.MEMBER_GONE:  # no retry can land it: the merchant decides
        return _review(services, m, reasons.text("movement_member_gone"))
    # Smaregi said no: plan again (a take-back re-reads the balance; it said no because it changed).
    log.info("movement.refused_once", extra={"movement_id": m.id, "error": sent.error})
    return _back_to_planned(services, m, sent.error)


def _not_applied_retry(m: PointMovement) -> timedelta:
    """A blip (one refused connection) is tried again at once, an outage once a minute: the first
    failure in a row is told apart by the movement carrying no error yet."""
    return NOT_APPLIED_FIRST_RETRY if m.error is None else NOT_APPLIED_RETRY


IN_FLIGHT = "waiting for another change of this member to be decided"
IN_FLIGHT_RETRY = timedelta(seconds=1)


@dataclass(frozen=True)
class Changes:
    """The member's other movements, as far as its balance and owed points are concerned."""

    in_flight: int  # sent and undecided (deductions aside): the balance may or may not show them
    applied: int  # in Smaregi: a change of this count means the balance moved
    shortfall_undecided: int  # take-backs in flight whose shortfall (owed) is not counted yet


def _changes(session: Session, m: PointMovement) -> Changes:
    # A conversion's deduction in flight is not waited for (the shopper's conversion goes first): if
    # it lands after the read, Smaregi refuses whichever of the two would go below 0, and that one
    # is decided again; it never leaves points beside owed points.
    sending = (PointMovement.state == S.SENDING) & (PointMovement.kind != K.CONVERSION_DEDUCTION)
    row = session.execute(select(
        func.count().filter(sending),
        func.count().filter(PointMovement.state == S.APPLIED),
        func.count().filter(sending & (PointMovement.owed_change > 0))).where(
        PointMovement.shop_id == m.shop_id, PointMovement.shopify_customer_id == m.shopify_customer_id,
        PointMovement.id != m.id)).one()
    return Changes(*row)


def _must_wait(session: Session, m: PointMovement, read: Changes | None) -> tuple[str, timedelta] | None:
    """Why this movement cannot be decided yet, and when to look again.

    A take-back splits into taken and owed by the balance read before: it stands only if no other
    change of the member was undecided or applied meanwhile (else a concurrent grant would leave
    points beside owed points). An addition pays off owed points: a take-back whose shortfall is
    undecided is not owed yet, so it waits for that one."""
    now = _changes(session, m)
    if m.points < 0:
        if now.in_flight:
            return IN_FLIGHT, IN_FLIGHT_RETRY
        if read is not None and now.applied != read.applied:
            return "the balance changed while it was read", timedelta(0)
        return None
    if now.shortfall_undecided:
        return IN_FLIGHT, IN_FLIGHT_RETRY
    return None


def _reconcile(services, client: SmaregiClient, m: PointMovement, deadline: float,
               background: bool) -> PointMovement:
    with services.db.transaction() as session:
        claimed = claimed_transaction_ids(session, m.shop_id, m.shopify_customer_id)
        rivals = undecided_like(session, m.shop_id, m.shopify_customer_id, m.sent_points, not_movement=m.id)
        code = session.scalar(select(MemberLink.member_code).where(
            MemberLink.shop_id == m.shop_id, MemberLink.shopify_customer_id == m.shopify_customer_id))
    budget = min(deadline, time.monotonic() + RECONCILE_BUDGET_S)
    try:
        codes = member_codes(client, m.smaregi_customer_id, code or str(m.shopify_customer_id), deadline=budget)
        found = find_applied(client, member_codes=codes, smaregi_customer_id=m.smaregi_customer_id,
                             delta=m.sent_points, since=m.sent_at or m.created_at, claimed=claimed,
                             deadline=budget, background=background, rivals=rivals)
    except LookupError as exc:
        if rivals and m.attempts + 1 < MAX_ATTEMPTS:  # decided once the other change is: look again then
            return _set(services, m, S.SENDING, error=str(exc), attempts=m.attempts + 1, leased_until=None,
                        next_attempt_at=utcnow() + timedelta(seconds=10))
        return _review(services, m, reasons.text("movement_ambiguous"))
    except SmaregiError as exc:
        return _later(services, m, f"transactions unreadable: {type(exc).__name__}", from_state=S.SENDING)
    if found is not None:
        try:
            m = _applied(services, m.id, [found], None)
            log.info("movement.reconciled", extra={"movement_id": m.id, "transaction_id": found})
            return m
        except IntegrityError:  # another movement claimed it meanwhile: not ours; look again
            log.info("movement.claim_lost", extra={"movement_id": m.id, "transaction_id": found})
            return _later(services, m, "its candidate transaction is another movement's", from_state=S.SENDING,
                          after=timedelta(seconds=5))
    if utcnow() - (m.sent_at or m.created_at) >= DECIDE_AFTER:
        log.info("movement.absent", extra={"movement_id": m.id})
        return _back_to_planned(services, m, "not applied (absent from the member's transactions)",
                                from_state=S.SENDING)
    return _later(services, m, "waiting to see whether Smaregi applied it", from_state=S.SENDING,
                  at=(m.sent_at or m.created_at) + DECIDE_AFTER)


def _extended_expiry(target: Target) -> date | None:
    if not target.expiry_months:
        return None
    month = target.today.month - 1 + target.expiry_months
    year, month = target.today.year + month // 12, month % 12 + 1
    for day in (target.today.day, 30, 29, 28):  # the same day N months ahead, or that month's last
        try:
            return date(year, month, day)
        except ValueError:
            continue
    return None


# -- state changes --------------------------------------------------------------------------------------
def _applied(services, movement_id: str, transaction_ids: list[str], balance_after: int | None) -> PointMovement:
    with services.db.transaction() as session:
        row = session.execute(update(PointMovement).where(PointMovement.id == movement_id,
                                                          PointMovement.state == S.SENDING)
                              .values(state=S.APPLIED, applied_at=utcnow(), updated_at=utcnow(), error=None,
                                      smaregi_transaction_id=transaction_ids[-1] if transaction_ids else None,
                                      balance_after=balance_after, leased_until=None)
                              .returning(PointMovement.shop_id, PointMovement.shopify_customer_id)).first()
        if row is not None:  # the shopper's next balance read goes to Smaregi
            session.execute(BalanceSnapshot.__table__.delete().where(
                BalanceSnapshot.shop_id == row.shop_id, BalanceSnapshot.shopify_customer_id == row.shopify_customer_id))
            _wake_waiting(session, row.shop_id, row.shopify_customer_id)
    log.info("movement.applied", extra={"movement_id": movement_id})
    return _load(services, movement_id)


def release_claim(services, shop_id: int, transaction_id: str) -> None:
    """Smaregi answered that this transaction is another change's, so the movement that adopted it by
    reconciliation was wrong: it is undecided again. A conversion's deduction takes its conversion
    with it, back to `deducting`: its code is hidden again and the sweeper reconciles it, completing
    it or withdrawing the code (never a completed coupon that nothing backs)."""
    with services.db.transaction() as session:
        released = session.execute(update(PointMovement).where(
            PointMovement.shop_id == shop_id, PointMovement.smaregi_transaction_id == transaction_id).values(
            state=S.SENDING.value, smaregi_transaction_id=None, applied_at=None, leased_until=None,
            next_attempt_at=utcnow(), error="The transaction it was reconciled with is another change's.",
            updated_at=utcnow()).returning(PointMovement.conversion_id)).scalars().all()
        conversions = [c for c in released if c is not None]
        if conversions:
            # `deducted` too: a conversion between its adopted deduction and `completed` would
            # otherwise complete (its compare-and-set from `deducted` now fails: LostRace).
            session.execute(update(Conversion).where(Conversion.id.in_(conversions),
                                                     Conversion.status.in_(("deducted", "completed"))).values(
                status="deducting", smaregi_transaction_ids=None, balance_after=None, leased_until=None,
                metafield_recorded=False, next_attempt_at=utcnow(), updated_at=utcnow()))
    log.error("movement.claim_released", extra={"shop_id": shop_id, "transaction_id": transaction_id})


def _back_to_planned(services, m: PointMovement, why: str, from_state: str = S.SENDING) -> PointMovement:
    attempts = m.attempts + 1
    values: dict[str, Any] = {"state": S.PLANNED, "sent_points": None, "owed_change": 0, "sent_at": None,
                              "attempts": attempts, "error": why, "leased_until": None,
                              "next_attempt_at": utcnow() + timedelta(seconds=min(600, 5 * 2 ** attempts))}
    if attempts >= MAX_ATTEMPTS:
        # Never dropped (a `refused` one would be): it waits, with its points, for a person to decide.
        values.update(state=S.NEEDS_REVIEW, next_attempt_at=None,
                      error=reasons.text("movement_not_moved", points=f"{m.points:+d}", attempts=attempts, why=why))
        log.error("movement.needs_review", extra={"movement_id": m.id, "attempts": attempts})
    return _set(services, m, from_state, **values)


def _review(services, m: PointMovement, why: str) -> PointMovement:
    log.error("movement.needs_review", extra={"movement_id": m.id})
    return _set(services, m, S.SENDING, state=S.NEEDS_REVIEW, error=why, leased_until=None, next_attempt_at=None)


def _later(services, m: PointMovement, why: str, from_state: str = S.PLANNED, after: timedelta | None = None,
           at: datetime | None = None) -> PointMovement:
    when = at or utcnow() + (after or timedelta(seconds=min(600, 5 * 2 ** m.attempts)))
    return _set(services, m, from_state, error=why, next_attempt_at=when, leased_until=None)


def _wait_for_member(services, m: PointMovement, session: Session | None = None) -> PointMovement:
    """No linked member yet: the points wait, and go once the sync has linked one."""
    if session is not None:
        session.execute(update(PointMovement).where(PointMovement.id == m.id).values(
            next_attempt_at=utcnow() + WAIT_FOR_MEMBER, leased_until=None, error="waiting for a linked member"))
        return m
    return _later(services, m, "waiting for a linked member", at=utcnow() + WAIT_FOR_MEMBER)


def _set(services, m: PointMovement, from_state: str, **values: Any) -> PointMovement:
    with services.db.transaction() as session:
        changed = session.execute(update(PointMovement).where(PointMovement.id == m.id,
                                                              PointMovement.state == from_state)
                                  .values(updated_at=utcnow(), **values)).rowcount
        if changed and from_state == S.SENDING and values.get("state", S.SENDING) != S.SENDING:
            _wake_waiting(session, m.shop_id, m.shopify_customer_id)
    return _load(services, m.id)


def _wake_waiting(session: Session, shop_id: int, customer_id: int) -> None:
    """A change of the member is decided: the ones that waited for it are due now, not in a second."""
    session.execute(update(PointMovement).where(
        PointMovement.shop_id == shop_id, PointMovement.shopify_customer_id == customer_id,
        PointMovement.state == S.PLANNED, PointMovement.error == IN_FLIGHT).values(next_attempt_at=utcnow()))


def _load(services, movement_id: str) -> PointMovement:
    with services.db.transaction() as session:
        m = session.get(PointMovement, movement_id)
        session.expunge(m)
    return m


# -- the worker's job ------------------------------------------------------------------------------------
def claim_due(services, limit: int = 20) -> list[str]:
    """Planned and undecided movements nobody is working on (conversion deductions are the saga's),
    at most one per member: a member's movements are decided one after the other (`_must_wait`),
    so a second one in the same batch would only wait."""
    now = utcnow()
    others = PointMovement.__table__.alias("others")
    busy = select(others.c.id).where(
        others.c.shop_id == PointMovement.shop_id, others.c.shopify_customer_id == PointMovement.shopify_customer_id,
        others.c.id != PointMovement.id, others.c.leased_until > now, others.c.state.in_((S.PLANNED, S.SENDING)))
    with services.db.transaction() as session:
        rows = session.execute(select(PointMovement.id, PointMovement.shop_id, PointMovement.shopify_customer_id).where(
            PointMovement.state.in_((S.PLANNED, S.SENDING)), PointMovement.kind != K.CONVERSION_DEDUCTION,
            or_(PointMovement.next_attempt_at.is_(None), PointMovement.next_attempt_at <= now),
            or_(PointMovement.leased_until.is_(None), PointMovement.leased_until < now), ~busy.exists())
            .order_by(PointMovement.created_at).limit(limit * 4).with_for_update(skip_locked=True)).all()
        first: dict[tuple[int, int], str] = {}
        for r in rows:
            first.setdefault((r.shop_id, r.shopify_customer_id), r.id)
        ids = list(first.values())[:limit]
        if ids:
            session.execute(update(PointMovement).where(PointMovement.id.in_(ids)).values(leased_until=now + LEASE))
    return ids


# -- the conversion's deduction, in step with the conversion --------------------------------------------
MOVES = PointMovement.__table__


@dataclass(frozen=True)
class Step:
    """A change to a conversion's deduction movement that rides in the statement advancing the
    conversion: on Postgres one statement (a data-modifying CTE gated on the conversion's
    compare-and-set), on SQLite a second statement in the same transaction. Its statement is built
    once per `shape` (step_statement, with a bind parameter `m_<column>` per value) and run with
    `params()`."""

    conversion_id: str
    insert: dict[str, Any] | None = None
    update: dict[str, Any] | None = None

    @property
    def shape(self) -> tuple[str, tuple[str, ...]]:
        return ("insert", tuple(sorted(self.insert))) if self.insert is not None else \
            ("update", tuple(sorted(self.update or {})))

    def params(self) -> dict[str, Any]:
        if self.insert is not None:
            return {f"m_{name}": value for name, value in self.insert.items()}
        return {"m_conversion_id": self.conversion_id, "m_updated_at": utcnow(),
                **{f"m_{name}": value for name, value in (self.update or {}).items()}}


def step_statement(shape: tuple[str, tuple[str, ...]], gate=None):
    """`gate`: a CTE the step needs a row of (the conversion's compare-and-set), on Postgres."""
    from sqlalchemy import bindparam, exists, insert

    kind, columns = shape

    def bound(name: str):
        return bindparam(f"m_{name}", type_=MOVES.c[name].type)

    if kind == "insert":
        if gate is None:
            return insert(MOVES).values({name: bound(name) for name in columns})
        values = select(*[bound(name).label(name) for name in columns]).where(exists(select(gate.c.id)))
        return insert(MOVES).from_select(list(columns), values)
    stmt = update(MOVES).where(MOVES.c.conversion_id == bindparam("m_conversion_id"),
                               MOVES.c.kind == K.CONVERSION_DEDUCTION).values(
        {name: bound(name) for name in ("updated_at", *columns)})
    return stmt if gate is None else stmt.where(exists(select(gate.c.id)))


def deduction_sending(c, now: datetime) -> Step:
    """Written as the conversion moves to `deducting`, before point/add goes."""
    return Step(c.id, insert={
        "id": str(uuid.uuid4()), "shop_id": c.shop_id, "shopify_customer_id": c.shopify_customer_id,
        "smaregi_customer_id": c.smaregi_customer_id, "kind": K.CONVERSION_DEDUCTION.value,
        "reason": MovementReason.ONLINE_CONVERSION.value, "points": -c.points, "sent_points": -c.points,
        "owed_change": 0, "state": S.SENDING.value, "conversion_id": c.id, "sent_at": now, "attempts": 0,
        "created_at": now, "updated_at": now})


def deduction_settled(conversion_id: str, state: MovementState, transaction_ids: list[str] | None = None,
                      balance_after: int | None = None) -> Step:
    values: dict[str, Any] = {"state": state.value}
    if state == S.APPLIED:
        values.update(applied_at=utcnow(), balance_after=balance_after,
                      smaregi_transaction_id=transaction_ids[-1] if transaction_ids else None)
    return Step(conversion_id, update=values)


# -- the merchant's decisions (admin) -------------------------------------------------------------------
def to_review(session: Session, shop_id: int) -> list[PointMovement]:
    """Movements waiting for a person (conversion deductions are listed with their conversion)."""
    return list(session.scalars(select(PointMovement).where(
        PointMovement.shop_id == shop_id, PointMovement.state == S.NEEDS_REVIEW,
        PointMovement.kind != K.CONVERSION_DEDUCTION).order_by(PointMovement.updated_at.desc()).limit(200)))


def was_sent(m: PointMovement) -> bool:
    """Sent and undecided: only Smaregi's transactions can tell; never sent again."""
    return m.sent_points is not None


def reopen(session: Session, shop_id: int, movement_id: str) -> bool:
    """The merchant asks for another look: a sent one is reconciled again from the member's
    transactions (never re-sent); one proved not applied is tried again with fresh attempts."""
    return session.execute(update(PointMovement).where(
        PointMovement.id == movement_id, PointMovement.shop_id == shop_id, PointMovement.state == S.NEEDS_REVIEW,
        PointMovement.kind != K.CONVERSION_DEDUCTION).values(
        state=case((PointMovement.sent_points.is_not(None), S.SENDING.value), else_=S.PLANNED.value),
        attempts=0, error=None, leased_until=None, next_attempt_at=utcnow(), updated_at=utcnow())).rowcount == 1


def resolve(session: Session, shop_id: int, movement_id: str, applied: bool) -> bool:
    """The merchant checked Smaregi: a sent change is there (applied, as decided when it was sent),
    or it is not and is given up (nothing moved, nothing owed by it). Only a sent one can be there."""
    where = [PointMovement.id == movement_id, PointMovement.shop_id == shop_id,
             PointMovement.state == S.NEEDS_REVIEW, PointMovement.kind != K.CONVERSION_DEDUCTION]
    if applied:
        values: dict[str, Any] = {"state": S.APPLIED, "applied_at": utcnow()}
        where.append(PointMovement.sent_points.is_not(None))
    else:
        values = {"state": S.REFUSED, "owed_change": 0}
    customer_id = session.execute(update(PointMovement).where(*where).values(
        leased_until=None, next_attempt_at=None, updated_at=utcnow(), error="resolved by the merchant", **values)
        .returning(PointMovement.shopify_customer_id)).scalar()
    if customer_id is None:
        return False
    _wake_waiting(session, shop_id, customer_id)
    log.info("movement.resolved", extra={"movement_id": movement_id, "applied": applied})
    return True
