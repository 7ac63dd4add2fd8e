"""The conversion saga: every point deducted is backed by exactly one usable code, and every code
by points deducted.

    reserved → (code made) → deducting → (deducted) → completed
         ↘                        ↘ (refused)
          compensating (delete the code) → failed
    deducting, undecidable for long → needs_review (code deactivated)

Each step is written to the ledger before its external call and again after it, with a
compare-and-set on the status, so a crash anywhere leaves a row the sweeper (in the worker)
finishes or compensates. In the shopper's request the code's id lands with the move to
`deducting` and the deduction's answer with the move to `completed`: one statement per external
call, not two (a crash between leaves `reserved`, compensated by looking the code up, or
`deducting`, reconciled). `code_created` is what earlier releases wrote, compensated when found;
`deducted` is where the sweeper's reconciliation records a deduction it found. A deduction whose
answer was lost is never sent again: we look for it in the member's transactions instead
(Smaregi's point/add has no idempotency key).
"""
from __future__ import annotations

import logging
import time
from datetime import timedelta
from functools import cache, partial
from typing import Any

from sqlalchemy import bindparam, delete, or_, select, update
from sqlalchemy.exc import IntegrityError

from ..models import BalanceSnapshot, Conversion, Shop, utcnow
from ..services import Services
from ..shopify.admin import ShopifyRejected, ShopifyUnavailable
from ..shopify.discounts import CodeRequest, Discounts
from ..shopify.tokens import ShopNotAuthorized
from ..smaregi.errors import SmaregiError
from . import errors as e
from . import movements
from .ledger import CODE_SHOWN, IN_FLIGHT, RETRIES_AFRESH, ConversionStatus, any_in_flight, shown_coupons
from .movements import DECIDE_AFTER, MovementState, Outcome

log = logging.getLogger(__name__)

DEDUCT_BUDGET_S = 3.0
RECONCILE_BUDGET_S = 3.0
MAX_SWEEP_ATTEMPTS = 8
LEASE = timedelta(seconds=60)
LIST_CONTENDED_RETRY = timedelta(seconds=30)
# A list write is harmless to repeat: its failures back off to an hour and stop after about six
# hours of Shopify trouble (the customer's next coupon change writes the list again anyway).
LIST_ATTEMPTS = 12
# The states whose change the coupon list follows. A conversion undecided, compensating, failed or
# waiting for review was listed only if it had completed before its claim was released
# (movements.release_claim): the list then drops it. A fresh conversion starts recorded (nothing of it
# is listed).
LIST_FOLLOWS = (*CODE_SHOWN, ConversionStatus.DEDUCTING, ConversionStatus.COMPENSATING, ConversionStatus.FAILED,
                ConversionStatus.NEEDS_REVIEW)

LEDGER = Conversion.__table__
SHOPPER_ERRORS = {"insufficient_points": e.InsufficientPoints, "shopify_unavailable": e.ShopifyUnavailable,
                  "pos_unavailable": e.PosUnavailable, "pos_timeout": e.PosTimeout}
SHOPIFY_FAILURES = (ShopifyRejected, ShopifyUnavailable, ShopNotAuthorized)


class LostRace(Exception):
    """Someone else (the sweeper, a replay) moved this conversion on; re-read it."""


class Saga:
    def __init__(self, services: Services, known_shop: tuple[int, str, str] | None = None):
        """`known_shop`: (shop id, domain, contract) when the caller has them already."""
        self.s = services
        self.discounts = Discounts(services.admin)
        self._shops: dict[int, tuple[str, str]] = {}  # shop id → (domain, contract), read once per saga
        if known_shop is not None:
            self._shops[known_shop[0]] = (known_shop[1], known_shop[2])

    # -- entry points ------------------------------------------------------------------------------
    def run(self, conversion: Conversion) -> Conversion:
        """In the shopper's request: drive the just-reserved conversion as far as it goes now.
        Raises the shopper-facing error when it failed or could not be decided in time."""
        c = self._drive(conversion, in_request=True)
        if c.status == "completed":
            return c
        if c.status in ("failed", "compensating"):  # no points were deducted
            raise SHOPPER_ERRORS.get(c.error_code or "", e.PosUnavailable)()
        raise e.PosTimeout()  # undecided: the sweeper will finish or compensate it

    def resolve_review(self, conversion_id: str, points_were_deducted: bool) -> Conversion:
        """A person checked the POS. Deducted: the code is the customer's again. Not deducted: it goes."""
        c = self._load(conversion_id)
        shop = self._shop_domain(c)
        if points_were_deducted:
            if c.discount_id:
                self.discounts.activate(shop, c.discount_id)
            c = self._advance(c, "needs_review", status="completed", error_code=None, forget_balance=True,
                              error_message="Confirmed in the POS by the merchant.",
                              movement=movements.deduction_settled(c.id, MovementState.APPLIED))
            return self._record_coupon(c, shop)
        c = self._advance(c, "needs_review", status="compensating", error_code="pos_timeout",
                          error_message="Not deducted in the POS (checked by the merchant).", attempts=0,
                          movement=movements.deduction_settled(c.id, MovementState.REFUSED))
        return self._compensate(c, shop)

    def sweep_one(self, conversion_id: str) -> Conversion:
        return self._drive(self._load(conversion_id), in_request=False)

    # -- the steps ------------------------------------------------------------------------------------
    def _drive(self, c: Conversion, *, in_request: bool) -> Conversion:
        shop = self._shop_domain(c)
        if c.status == "reserved" and in_request:
            c = self._create_code(c, shop)
            if c.status == "reserved":
                c = self._deduct(c, shop)
        if c.status in ("reserved", "code_created"):
            c = self._start_compensation(c, "shopify_unavailable")
        if c.status == "deducting":
            c = self._reconcile(c, in_request=in_request)
        if c.status == "deducted":
            c = self._complete(c, shop)
        if c.status == "compensating":
            c = self._compensate(c, shop)
        if c.status in LIST_FOLLOWS and not c.metafield_recorded and not in_request:
            c = self._record_coupon(c, shop)
        return c

    def _create_code(self, c: Conversion, shop: str) -> Conversion:
        """The code in Shopify. Made: the conversion, still `reserved`, carries its id (written
        with the next step); else it is compensating or failed."""
        request = CodeRequest(code=c.code, title=f"Points {c.points} pt → {c.amount} {c.currency} ({c.code})",
                              customer_id=c.shopify_customer_id, amount=c.amount, starts_at=utcnow(),
                              ends_at=c.expires_at)
        try:
            discount_id = self.discounts.create(shop, request)
        except ShopifyRejected as exc:
            if not any(err.get("code") == "TAKEN" for err in exc.errors):
                log.warning("conversion.code_rejected", extra={"conversion_id": c.id, "reason": exc.reason})
                return self._fail(c, "reserved", "shopify_unavailable", "Shopify refused to create the code.")
            discount_id = self._find_code(shop, c.code)  # our own earlier attempt got through
            if discount_id is None:
                return self._start_compensation(c, "shopify_unavailable")
        except (ShopifyUnavailable, ShopNotAuthorized) as exc:
            log.warning("conversion.code_unavailable", extra={"conversion_id": c.id, "error": type(exc).__name__})
            # Possibly created: compensation looks the code up and deletes it if it exists.
            return self._start_compensation(c, "shopify_unavailable")
        made = Conversion(**{col.key: getattr(c, col.key) for col in LEDGER.c})
        made.discount_id = discount_id
        return made

    def _deduct(self, c: Conversion, shop: str) -> Conversion:
        """The deduction is a point movement (movements.py), written ahead in the same statement
        that records the code and moves the conversion to `deducting`. The customer's coupon list
        is read in that transaction too: after the reservation committed (see _record_coupon)."""
        now = utcnow()
        step = movements.deduction_sending(c, now)
        with self._unit(step, forget_balance=False) as session:
            c = self._advance_in(session, c, "reserved", status="deducting", discount_id=c.discount_id,
                                 deducting_since=now, movement=step)
            coupons = shown_coupons(session, c.shop_id, c.shopify_customer_id)
        client = self.s.smaregi.contract(self._contract(c))
        sent = movements.send_change(client, c.smaregi_customer_id, -c.points,
                                     deadline=time.monotonic() + DEDUCT_BUDGET_S)
        if sent.outcome == Outcome.REFUSED:
            log.info("conversion.deduction_refused", extra={"conversion_id": c.id, "detail": sent.error})
            return self._start_compensation(c, "insufficient_points", from_status="deducting")
        if sent.outcome == Outcome.NOT_APPLIED:
            log.warning("conversion.deduction_failed", extra={"conversion_id": c.id, "error": sent.error})
            return self._start_compensation(c, "pos_unavailable", from_status="deducting")
        if sent.outcome == Outcome.MEMBER_GONE:
            log.warning("conversion.member_gone", extra={"conversion_id": c.id})
            return self._start_compensation(c, "not_registered", from_status="deducting")
        if sent.outcome == Outcome.AMBIGUOUS:
            log.warning("conversion.deduction_ambiguous", extra={"conversion_id": c.id, "error": sent.error})
            return c  # stays "deducting": reconciled next, never sent again
        ids = sent.change.transaction_ids
        recorded = self._write_coupons(c, shop, coupons, completing=True)
        completed = partial(self._advance, c, "deducting", status="completed", smaregi_transaction_ids=ids,
                            balance_after=sent.change.points, leased_until=None, metafield_recorded=recorded,
                            attempts=int(not recorded), next_attempt_at=None, forget_balance=True,
                            movement=movements.deduction_settled(c.id, MovementState.APPLIED, ids, sent.change.points))
        try:
            c = completed()
        except IntegrityError:  # a reconciliation adopted our transaction before we recorded it
            movements.release_claim(self.s, c.shop_id, ids[-1])
            c = completed()
        log.info("conversion.completed", extra={"conversion_id": c.id, "points": c.points})
        return c

    def _reconcile(self, c: Conversion, *, in_request: bool) -> Conversion:
        """Did Smaregi apply our deduction? Look for it instead of asking again."""
        try:
            found = self._find_deduction(c)
        except (SmaregiError, LookupError) as exc:
            return self._undecided(c, in_request, f"Could not read the member's transactions: {type(exc).__name__}")
        if found is not None:
            balance = self._balance_or_none(c)
            try:
                c = self._advance(c, "deducting", status="deducted", smaregi_transaction_ids=[found],
                                  balance_after=balance,
                                  movement=movements.deduction_settled(c.id, MovementState.APPLIED, [found], balance))
                log.info("conversion.reconciled", extra={"conversion_id": c.id, "transaction_id": found})
                return c
            except IntegrityError:  # another movement claimed that transaction meanwhile: not ours
                log.info("conversion.claim_lost", extra={"conversion_id": c.id, "transaction_id": found})
        if c.deducting_since and utcnow() - c.deducting_since >= DECIDE_AFTER:
            log.info("conversion.deduction_absent", extra={"conversion_id": c.id})
            return self._start_compensation(c, "pos_timeout", from_status="deducting")
        if not in_request:
            self._retry_later(c, (c.deducting_since or utcnow()) + DECIDE_AFTER)
        return c

    def _complete(self, c: Conversion, shop: str) -> Conversion:
        with self.s.db.transaction() as session:
            coupons = shown_coupons(session, c.shop_id, c.shopify_customer_id)
        recorded = self._write_coupons(c, shop, coupons, completing=True)
        c = self._advance(c, "deducted", status="completed", leased_until=None, metafield_recorded=recorded,
                          attempts=int(not recorded), next_attempt_at=None, forget_balance=True)
        log.info("conversion.completed", extra={"conversion_id": c.id, "points": c.points})
        return c

    def _record_coupon(self, c: Conversion, shop: str) -> Conversion:
        """The sweeper's write of the coupon list after a failed write or a change in the ledger
        (used, returned, expired), and the merchant's confirmation.

        Writers of the list race (no compareDigest): the last write to land wins. A completing
        conversion reads the list after its reservation committed and writes it, itself included,
        before it completes. Every other writer checks after its write: a list changed since it read
        it, or a conversion of the customer in flight (whose write may land after ours, from a list
        read before our change; or ours after its, from a list read before it completed), means ours
        may not be the last word, and it is written again later."""
        # An in-flight conversion's attempts and schedule are the reconciliation's: its list is
        # written again on its next sweep.
        in_flight = c.status in IN_FLIGHT
        with self.s.db.transaction() as session:
            coupons = shown_coupons(session, c.shop_id, c.shopify_customer_id)
        if not self._write_coupons(c, shop, coupons):
            if in_flight:
                return c
            self._retry_later(c, utcnow() + timedelta(seconds=min(3600, 30 * 2 ** c.attempts)),
                              metafield_recorded=False, attempts=c.attempts + 1)
            return self._load(c.id)
        with self.s.db.transaction() as session:
            settled = (shown_coupons(session, c.shop_id, c.shopify_customer_id) == coupons
                       and not any_in_flight(session, c.shop_id, c.shopify_customer_id, but=c.id))
            if settled:
                return self._advance_in(session, c, c.status, metafield_recorded=True)
            if in_flight:
                return c
            return self._advance_in(session, c, c.status, metafield_recorded=False, leased_until=None,
                                    next_attempt_at=utcnow() + LIST_CONTENDED_RETRY)

    def _write_coupons(self, c: Conversion, shop: str, coupons: list, completing: bool = False) -> bool:
        """Best effort: the conversion stands even if Shopify's metafield write fails (retried later).
        `completing`: `c` joins the list as completed, the status it takes once this is written."""
        entries = [coupon_entry(row) for row in coupons]
        if completing:
            entries.append(coupon_entry(c, status="completed"))
        try:
            self.discounts.set_coupons(shop, c.shopify_customer_id, entries)
            return True
        except Exception as exc:  # the points are already deducted: nothing in this step may strand them
            log.warning("conversion.metafield_failed", extra={"conversion_id": c.id, "error": type(exc).__name__})
            return False

    def _start_compensation(self, c: Conversion, error_code: str, from_status: str | None = None) -> Conversion:
        step = movements.deduction_settled(c.id, MovementState.REFUSED) if from_status == "deducting" else None
        return self._advance(c, from_status or c.status, status="compensating", error_code=error_code,
                             error_message=SHOPPER_ERRORS[error_code].message, attempts=0, movement=step)

    def _compensate(self, c: Conversion, shop: str) -> Conversion:
        """No points were deducted: the code must not be usable. Then the conversion has failed."""
        try:
            discount_id = c.discount_id or self._find_code(shop, c.code)
            if discount_id:
                try:
                    self.discounts.delete(shop, discount_id)
                except ShopifyRejected:
                    self.discounts.deactivate(shop, discount_id)
        except SHOPIFY_FAILURES as exc:
            if c.attempts + 1 >= MAX_SWEEP_ATTEMPTS:
                # Retrying for ever would keep the customer's next conversion blocked (one in flight
                # per customer): hand the code to the merchant, who can delete it in Shopify.
                log.error("conversion.compensation_needs_review", extra={"conversion_id": c.id})
                return self._advance(c, "compensating", status="needs_review", leased_until=None, **RETRIES_AFRESH,
                                     error_code="compensation_failed",
                                     error_message="No points were deducted, but the code could not be withdrawn "
                                                   "in Shopify. Delete it there, then mark it not deducted.")
            log.warning("conversion.compensation_pending", extra={"conversion_id": c.id, "error": type(exc).__name__})
            self._retry_later(c, utcnow() + timedelta(seconds=min(600, 30 * 2 ** c.attempts)),
                              attempts=c.attempts + 1)
            return self._load(c.id)
        log.info("conversion.failed", extra={"conversion_id": c.id, "error_code": c.error_code})
        return self._advance(c, "compensating", status="failed", leased_until=None, **RETRIES_AFRESH)

    def _undecided(self, c: Conversion, in_request: bool, why: str) -> Conversion:
        if in_request:
            return c
        if c.attempts + 1 >= MAX_SWEEP_ATTEMPTS:
            # Cannot tell whether the points left the member: stop the code, ask a human.
            try:
                if c.discount_id:
                    self.discounts.deactivate(self._shop_domain(c), c.discount_id)
            except SHOPIFY_FAILURES:
                why += " The code could not be deactivated either."
            log.error("conversion.needs_review", extra={"conversion_id": c.id})
            return self._advance(c, "deducting", status="needs_review", leased_until=None, **RETRIES_AFRESH,
                                 error_code="needs_review", error_message=why,
                                 movement=movements.deduction_settled(c.id, MovementState.NEEDS_REVIEW))
        self._retry_later(c, utcnow() + timedelta(seconds=min(600, 15 * 2 ** c.attempts)), attempts=c.attempts + 1)
        return self._load(c.id)

    # -- helpers -------------------------------------------------------------------------------------
    def _find_deduction(self, c: Conversion) -> str | None:
        """Our deduction among the member's transactions since we asked (movements.find_applied)."""
        with self.s.db.transaction() as session:
            claimed = movements.claimed_transaction_ids(session, c.shop_id, c.shopify_customer_id)
            rivals = movements.undecided_like(session, c.shop_id, c.shopify_customer_id, -c.points,
                                              not_conversion=c.id)
        client = self.s.smaregi.contract(self._contract(c))
        deadline = time.monotonic() + RECONCILE_BUDGET_S
        codes = movements.member_codes(client, c.smaregi_customer_id, self._member_code(c), deadline=deadline)
        return movements.find_applied(client, member_codes=codes, smaregi_customer_id=c.smaregi_customer_id,
                                      delta=-c.points, since=c.deducting_since or c.created_at, claimed=claimed,
                                      deadline=deadline, rivals=rivals)

    def _balance_or_none(self, c: Conversion) -> int | None:
        try:
            balance = self.s.smaregi.contract(self._contract(c)).get_points(
                c.smaregi_customer_id, deadline=time.monotonic() + 1.0)
            return balance.points if balance else None
        except SmaregiError:
            return None

    def _find_code(self, shop: str, code: str) -> str | None:
        return self.discounts.find(shop, code)

    def _member_code(self, c: Conversion) -> str:
        from ..models import MemberLink

        with self.s.db.transaction() as session:
            code = session.scalar(select(MemberLink.member_code).where(
                MemberLink.shop_id == c.shop_id, MemberLink.shopify_customer_id == c.shopify_customer_id))
        return code or str(c.shopify_customer_id)

    def _contract(self, c: Conversion) -> str:
        return self._shop(c)[1]

    def _shop_domain(self, c: Conversion) -> str:
        return self._shop(c)[0]

    def _shop(self, c: Conversion) -> tuple[str, str]:
        if c.shop_id not in self._shops:
            from ..settings import effective_settings

            with self.s.db.transaction() as session:
                shop = session.get(Shop, c.shop_id)
                self._shops[c.shop_id] = (shop.domain,
                                          effective_settings(session, shop, self.s.config).contract_id)
        return self._shops[c.shop_id]

    def _load(self, conversion_id: str) -> Conversion:
        with self.s.db.transaction() as session:
            row = session.connection().execute(select(*LEDGER.c).where(LEDGER.c.id == conversion_id)).first()
        return Conversion(**row._mapping)

    def _advance(self, c: Conversion, expected: str, forget_balance: bool = False,
                 movement: movements.Step | None = None, **values: Any) -> Conversion:
        """Compare-and-set on the status: a step only lands if nobody moved the conversion on.
        Core, not the ORM: this runs on the shopper's clock.
        `movement`: the deduction movement's step, landing with this one or not at all.
        `forget_balance`: the points changed, so drop the cached balance in the same transaction."""
        with self._unit(movement, forget_balance) as session:
            return self._advance_in(session, c, expected, forget_balance, movement, **values)

    def _unit(self, movement: movements.Step | None, forget_balance: bool):
        """A step that is one statement (see _advance_statements) commits by itself, sparing the
        BEGIN and COMMIT round trips of a transaction; one of several statements is a transaction."""
        one_statement = (movement is not None and self.s.db.is_postgres) or (movement is None and not forget_balance)
        return self.s.db.autocommit() if one_statement else self.s.db.transaction()

    def _advance_in(self, session, c: Conversion, expected: str, forget_balance: bool = False,
                    movement: movements.Step | None = None, **values: Any) -> Conversion:
        """_advance in the caller's transaction (LostRace rolls it back)."""
        conn = session.connection()
        values["updated_at"] = utcnow()
        first, *then = _advance_statements(conn.dialect.name, tuple(sorted(values)),
                                           movement.shape if movement else None, forget_balance)
        params = {"c_id": c.id, "c_expected": expected, "c_shop_id": c.shop_id,
                  "c_customer_id": c.shopify_customer_id, **{f"v_{k}": v for k, v in values.items()},
                  **(movement.params() if movement else {})}
        row = conn.execute(first, params).first()
        if row is None:
            raise LostRace(c.id)
        for stmt in then:
            conn.execute(stmt, params)
        return Conversion(**row._mapping)  # a detached snapshot of the row as it now stands

    def _retry_later(self, c: Conversion, when, **values: Any) -> None:
        with self.s.db.transaction() as session:
            session.execute(update(Conversion).where(Conversion.id == c.id).values(
                next_attempt_at=when, leased_until=None, **values))

    def _fail(self, c: Conversion, expected: str, code: str, message: str) -> Conversion:
        return self._advance(c, expected, status="failed", error_code=code, error_message=message, leased_until=None)


@cache
def _advance_statements(dialect: str, columns: tuple[str, ...], step: tuple | None, forget_balance: bool) -> tuple:
    """The statements of one kind of step, built once: building them (a CTE returning every
    column) cost more of the shopper's time than running them. Bind parameters: `c_id`,
    `c_expected`, `c_shop_id`, `c_customer_id`, `v_<column>` and the movement's `m_<column>`."""
    stmt = (update(LEDGER).where(LEDGER.c.id == bindparam("c_id"), LEDGER.c.status == bindparam("c_expected"))
            .values({k: bindparam(f"v_{k}", type_=LEDGER.c[k].type) for k in columns}).returning(*LEDGER.c))
    forget = delete(BalanceSnapshot).where(BalanceSnapshot.shop_id == bindparam("c_shop_id"),
                                           BalanceSnapshot.shopify_customer_id == bindparam("c_customer_id"))
    if step is not None and dialect == "postgresql":
        # One round trip: the movement and the forgotten balance land only if the row moved.
        moved = stmt.cte("moved")
        query = select(moved).add_cte(movements.step_statement(step, moved).cte("movement"))
        if forget_balance:
            query = query.add_cte(forget.where(select(moved.c.id).exists()).cte("forgotten"))
        return (query,)
    return (stmt, *([movements.step_statement(step)] if step is not None else []),
            *([forget] if forget_balance else []))


def coupon_entry(c, status: str | None = None) -> dict[str, Any]:
    """One coupon in `loyalty.coupons` (a ledger row or a Conversion)."""
    entry = {"id": c.id, "code": c.code, "status": status or c.status, "points": c.points, "amount": c.amount,
             "currency": c.currency, "expires_at": c.expires_at.isoformat() if c.expires_at else None,
             "created_at": c.created_at.isoformat()}
    if c.order_name:
        entry["order_name"] = c.order_name
    return entry


def sweep(services: Services, limit: int = 20) -> int:
    """Finish or compensate conversions nobody is working on (their request died or gave up)."""
    now = utcnow()
    with services.db.transaction() as session:
        due = (select(Conversion.id).where(
            or_(Conversion.status.in_(IN_FLIGHT),
                Conversion.status.in_(LIST_FOLLOWS) & Conversion.metafield_recorded.is_(False)
                & (Conversion.attempts < LIST_ATTEMPTS)),
            or_(Conversion.leased_until.is_(None), Conversion.leased_until < now),
            or_(Conversion.next_attempt_at.is_(None), Conversion.next_attempt_at <= now))
            .order_by(Conversion.created_at).limit(limit).with_for_update(skip_locked=True))
        ids = session.scalars(due).all()
        if ids:
            session.execute(update(Conversion).where(Conversion.id.in_(ids)).values(leased_until=now + LEASE))
    saga = Saga(services)
    for conversion_id in ids:
        try:
            saga.sweep_one(conversion_id)
        except LostRace:
            pass
        except Exception:
            log.exception("conversion.sweep_failed", extra={"conversion_id": conversion_id})
    return len(ids)
