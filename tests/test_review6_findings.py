"""Review 6 (2863da1): what the review-5 fixes left open or broke, reproduced before it was fixed.
Each test states the behaviour the contract (DESIGN.md) or the code's own docstrings promise
("Expected") and what happened before the fix ("Actual")."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from app.models import Conversion, PointMovement, utcnow

from .conftest import CONTRACT
from .test_review4_findings import _limiters_at

# -- rate limit: the confirming read happens after `now` was read, and its time is not counted ---------------------

def test_a_reserved_slot_confirmed_by_a_slow_read_is_sent_outside_its_second(services):
    """Expected (ratelimit.py: a reservation's calls take their slots "only within that second";
    Reservation.take: "only within the second they were counted in"; EDGE_GUARD_S): a call that takes
    a reserved slot of second S is sent before S + 1 - EDGE_GUARD_S, else it lands (and Smaregi
    counts it) in S + 1, which is counted only once (for S): double use of S + 1's budget -> 429.
    Actual: take() reads the clock once, before taking the lock and before the new
    `limiter._paused_for` database read (a transaction on the main pool: under load a wait for a
    connection plus BEGIN/SELECT/COMMIT, easily more than EDGE_GUARD_S = 30 ms). The edge check uses
    that earlier time, so a call whose confirmation read ends after the second is over still takes
    the slot (threads queued on the reservation's lock behind the read use a stale time as well)."""
    (limiter,), now = _limiters_at(services, 1_000_000.1, processes=1)
    reservation = limiter.reserve(CONTRACT, "read", 3)
    original = limiter._paused_for

    def slow_read(contract_id):  # the database read takes long enough to leave the second
        paused = original(contract_id)
        now[0] = 1_000_001.01  # a 60 ms read (pool wait + BEGIN/SELECT/COMMIT)
        return paused

    limiter._paused_for = slow_read
    now[0] = 1_000_000.95  # inside the edge guard, past RESERVATION_TTL_S: this call confirms first
    took = reservation.take(CONTRACT, "read")
    assert not (took and now[0] > reservation.second + 1), (
        f"reserved slot of second {reservation.second} taken at {now[0]:.2f} (sent in the next second)")


# -- money: a released claim leaves a `deducted` conversion to complete with nothing behind it ------------------

def test_a_claim_released_while_the_conversion_is_deducted_still_completes_it(services, smaregi_em, shopify_em):
    """Expected (movements.release_claim: "A conversion's deduction takes its conversion with it, back
    to `deducting`: its code is hidden again and the sweeper reconciles it, completing it or
    withdrawing the code (never a completed coupon that nothing backs)"; ledger.CODE_SHOWN: "A code is
    only ever shown once its points are known to be deducted"; DESIGN: every code backed by points
    deducted): after its claim is released, the conversion does not become `completed` unless its
    deduction movement is applied again.
    Actual: release_claim only moves conversions with status == 'completed'. The sweeper's
    reconciliation first records `deducted` (the movement applied, transaction adopted), and only
    then, after the Shopify list write in _complete, `completed`. A release landing in that window
    (another request's IntegrityError in _deduct, or a sweeper that crashed at `deducted`) resets the
    movement to `sending` without a transaction, but leaves the conversion `deducted`; _complete then
    moves it to `completed`: a usable code (API and loyalty.coupons) whose points nothing records as
    deducted; the one Smaregi deduction can then back two codes."""
    from app.points import movements
    from app.points.saga import Saga, sweep

    from .test_conversions import Given

    given = Given(services, smaregi_em[0], shopify_em[0])
    given.convert(500)
    [c] = given.ledger()
    tx = c.smaregi_transaction_ids[-1]
    movements.release_claim(services, c.shop_id, tx)  # first release: back to deducting, legitimately
    original = Saga._write_coupons
    released = []

    def write_then_release(self, conv, shop, coupons, completing=False):
        ok = original(self, conv, shop, coupons, completing)
        if completing and not released:  # the race: the transaction is released while `deducted`
            released.append(True)
            movements.release_claim(services, conv.shop_id, tx)
        return ok

    Saga._write_coupons = write_then_release
    try:
        with services.db.transaction() as s:
            s.execute(update(Conversion).values(leased_until=None, next_attempt_at=None))
        sweep(services)
    finally:
        Saga._write_coupons = original
    assert released, "the reconciliation did not reach _complete"
    [c] = given.ledger()
    with services.db.transaction() as s:
        m = s.execute(select(PointMovement.state, PointMovement.smaregi_transaction_id)
                      .where(PointMovement.conversion_id == c.id)).one()
    assert not (c.status == "completed" and m.state != "applied"), (
        f"conversion {c.status} while its deduction movement is {m.state} (transaction {m.smaregi_transaction_id})")


# -- loyalty.coupons: a released coupon whose code cannot be withdrawn keeps its compensation's attempts -----------

def test_a_released_coupon_whose_withdrawal_goes_to_review_starts_its_list_retries_afresh(
        services, smaregi_em, shopify_em):
    """Expected (commit 2863da1: "failing or going to review starts its list retries afresh";
    ledger.LIST_OUTDATED: "its retries afresh (an earlier step's back-off must not use them up)";
    saga.LIST_ATTEMPTS: 30 s·2^n, 12 tries): a released conversion whose deduction was found absent,
    and whose code could not be withdrawn (compensating → needs_review, compensation_failed), has its
    stale `completed` entry in loyalty.coupons retried about 30 s after a failed list write.
    Actual: only _undecided's step to needs_review resets attempts/next_attempt_at; _compensate's
    step to needs_review (MAX_SWEEP_ATTEMPTS failed withdrawals) keeps attempts = 7, so the first list
    retry is an hour away (30·2^7 s, capped) and only 4 more remain: the undeducted code stays listed
    `completed` (compensating is not in LIST_FOLLOWS either, so it was never dropped meanwhile)."""
    from app.points import movements
    from app.points.saga import Saga, sweep

    from .test_conversions import Given

    given = Given(services, smaregi_em[0], shopify_em[0])
    given.convert(500)
    [c] = given.ledger()
    movements.release_claim(services, c.shop_id, c.smaregi_transaction_ids[-1])
    with services.db.transaction() as s:  # the reconciliation will find it absent (the transaction was another's)
        s.execute(update(Conversion).values(deducting_since=utcnow() - timedelta(minutes=5)))
    original = Saga._find_deduction
    Saga._find_deduction = lambda self, conv: None
    given.shopify.add_fault(match=".*", status=500)  # Shopify down: no withdrawal, no list write
    try:
        for _ in range(8):
            with services.db.transaction() as s:
                s.execute(update(Conversion).values(leased_until=None, next_attempt_at=None))
            sweep(services)
    finally:
        Saga._find_deduction = original
        given.shopify.faults.clear()
    [c] = given.ledger()
    assert c.status == "needs_review" and c.error_code == "compensation_failed" and c.metafield_recorded is False, \
        (c.status, c.error_code, c.metafield_recorded)
    wait = (c.next_attempt_at.replace(tzinfo=None) - utcnow().replace(tzinfo=None)).total_seconds()
    assert wait <= 60, f"first list retry in {wait:.0f} s (attempts={c.attempts})"
