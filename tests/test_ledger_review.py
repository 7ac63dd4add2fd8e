"""Reproductions from the independent review (findings R4, R4b, R10, R12, R13, R14) of the point
ledger: each failed on the reviewed code because of the bug its comment names."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from app.models import PointMovement

from .test_online_earning import TARO, order, pg_shopper, shopper  # noqa: F401  (fixtures)


def _coupon(s, points=500):
    resp = s.convert(points)
    assert resp.status_code == 201, resp.json
    return resp.json["conversion"]


def _listed(s, conversion_id):
    return next(c for c in s.conversions()["conversions"] if c["id"] == conversion_id)


# FINDING R4 (high, money lost silently): a point movement whose point/add was provably NOT applied
# (Smaregi unreachable, 401/403/404, contract paused past the throttle path) counts an attempt each
# time; after MAX_ATTEMPTS (12, ~1 hour of back-off) it becomes `refused` for good
# (app/points/movements.py::_back_to_planned). A refused grant no longer counts in the order's
# `held` sum, but the order is not due again (next_attempt_at None), so nothing re-plans it; a
# refused coupon give-back leaves the conversion `returned` with points_returned set while the
# points never reach the member. Nobody is told: no admin view lists refused movements.
# DESIGN: "never lost"; "nothing is silently forgiven"; a provably-not-applied change is safe to
# resend. An hour of Smaregi maintenance loses every grant and give-back queued in it.
def test_R4_an_hour_long_smaregi_outage_does_not_lose_the_grant(shopper, monkeypatch):  # noqa: F811
    from app.orders import earning
    from app.points import movements

    real = movements.send_change
    monkeypatch.setattr(movements, "send_change", lambda *a, **k: movements.Sent(
        movements.Outcome.NOT_APPLIED, error="SmaregiUnreachable"))
    shopper.order(order(subtotal="12345"))
    for _ in range(movements.MAX_ATTEMPTS + 1):  # the worker keeps trying through the outage
        earning.run(shopper.services)
        with shopper.services.db.transaction() as s:
            s.execute(update(PointMovement).values(next_attempt_at=None))
    monkeypatch.setattr(movements, "send_change", real)  # Smaregi is back
    for _ in range(3):
        earning.run(shopper.services)
    assert shopper.earned() == [123], [m.state for m in shopper.moves()]


def test_R4b_a_handed_back_coupon_is_not_lost_by_an_outage(shopper, monkeypatch):  # noqa: F811
    from app.orders import earning
    from app.points import movements

    coupon = _coupon(shopper)
    real = movements.send_change
    monkeypatch.setattr(movements, "send_change", lambda *a, **k: movements.Sent(
        movements.Outcome.NOT_APPLIED, error="SmaregiUnreachable"))
    assert shopper.hand_back(coupon["id"]).status_code == 200  # the code is withdrawn already
    for _ in range(movements.MAX_ATTEMPTS + 1):
        with shopper.services.db.transaction() as s:
            s.execute(update(PointMovement).values(next_attempt_at=None, leased_until=None))
        earning.run(shopper.services)
    monkeypatch.setattr(movements, "send_change", real)
    for _ in range(3):
        with shopper.services.db.transaction() as s:
            s.execute(update(PointMovement).values(next_attempt_at=None, leased_until=None))
        earning.run(shopper.services)
    assert _listed(shopper, coupon["id"])["status"] == "returned"
    assert shopper.balance() == 1250, "coupon withdrawn, conversion 'returned', points never came back"


# FINDING R10 (medium, money): one Smaregi transaction can be claimed by two of our movements.
# Reconciliation (movements.find_applied) matches "a subtract of exactly N points not yet claimed",
# and the claimed set is read before, and written after, with no lock and no unique index on
# point_movements.smaregi_transaction_id. A conversion deduction that timed out WITHOUT applying and
# a take-back of the same size that timed out AFTER applying, reconciled at the same time (saga
# sweeper and movement worker run independently), both adopt the take-back's transaction: the
# conversion completes (a live ¥500 code) though its points never left the member.
# DESIGN: "reconciled from the member's transactions after an ambiguous timeout"; never a free coupon.
# Fix: claim the transaction atomically (unique partial index on (shop_id, smaregi_transaction_id)
# and treat the conflict as "not ours"), or serialise reconciliation per member (lock the link row,
# as _send does).
def test_R10_one_transaction_is_never_claimed_by_two_movements(pg_shopper, monkeypatch):  # noqa: F811
    import threading
    from datetime import date

    from app.points import movements
    from app.points.saga import Saga

    from .test_online_earning import CONTRACT

    s = pg_shopper
    s.order(order(subtotal="50000"))
    s.settle()
    assert s.balance() == 1750
    s.smaregi.add_fault(match=r"POST .*/point/add", status=500, count=1)  # not applied, answer ambiguous
    s.convert(500)
    [conv] = [c for c in s.ledger() if c.points == 500]
    assert conv.status == "deducting" and s.balance() == 1750

    real_send = movements.send_change

    def applied_but_timed_out(*a, **k):
        real_send(*a, **k)
        return movements.Sent(movements.Outcome.AMBIGUOUS, error="SmaregiTimeout")

    monkeypatch.setattr(movements, "send_change", applied_but_timed_out)
    s.order(order(subtotal="0", financial="refunded", cancelled=True, minutes=5), topic="orders/cancelled")
    s.settle()
    monkeypatch.setattr(movements, "send_change", real_send)
    [take] = [m for m in s.moves() if m.kind == "take_back"]
    assert take.state == "sending" and s.balance() == 1250

    barrier, real_find = threading.Barrier(2, timeout=10), movements.find_applied

    def find_then_wait(*a, **k):
        found = real_find(*a, **k)
        barrier.wait()
        return found

    monkeypatch.setattr(movements, "find_applied", find_then_wait)
    target = movements.Target(CONTRACT, None, date.today())
    errors = []

    def run(fn, *args):
        try:
            fn(*args)
        except Exception as exc:  # the loser of the claim must not crash either
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(Saga(s.services).sweep_one, conv.id)),
               threading.Thread(target=run, args=(movements.drive, s.services, take.id, target))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    claims = [m.smaregi_transaction_id for m in s.moves() if m.smaregi_transaction_id and m.state == "applied"]
    assert len(claims) == len(set(claims)), f"one Smaregi transaction claimed twice: {claims}"


# FINDING R12 (medium, points lost): owed points can go negative and are then silently forgiven in
# the app's favour. A take-back that is still undecided (`sending`, ambiguous answer) already counts
# its owed_change (+70) in OWED_COUNTS, so a grant meanwhile pays that off (-70). When the take-back
# is then proved absent it goes back to `planned` with owed_change reset to 0 and is re-sent against
# the new balance: the member ends at 0 with owed = -30, and a negative owed is never paid back
# (pay_off = max(0, owed)). app/points/movements.py::owed_points/_send/_back_to_planned.
# DESIGN: "owed points come off the member's next additions"; "nothing is silently forgiven" --
# and nothing silently taken. Fix: count owed only from `applied` movements (or recompute the
# grant's pay-off when the take-back is re-planned); never let the sum go below 0.
def test_R12_an_undecided_take_back_never_makes_owed_negative(shopper):  # noqa: F811
    from app.models import Shop
    from app.points import movements

    shopper.order(order(subtotal="10000"))
    shopper.settle()
    shopper.spend_at_register(1320)  # 1350 → 30
    shopper.smaregi.add_fault(match=r"POST .*/point/add", status=500, count=1)  # not applied, ambiguous
    shopper.order(order(subtotal="0", financial="refunded", cancelled=True, minutes=5), topic="orders/cancelled")
    shopper.settle()
    [take] = [m for m in shopper.moves() if m.kind == "take_back"]
    assert (take.state, take.owed_change) == ("sending", 70)
    shopper.order(order(order_id=5002, subtotal="10000"))  # another purchase earns 100 meanwhile
    shopper.settle()
    with shopper.services.db.transaction() as s:  # two minutes later: the take-back is proved absent
        s.execute(update(PointMovement).where(PointMovement.id == take.id).values(
            sent_at=take.sent_at - timedelta(minutes=3), next_attempt_at=None))
    shopper.settle()
    with shopper.services.db.transaction() as s:
        owed = movements.owed_points(s, s.scalar(select(Shop.id)), TARO)
    # 30 at the start, -100 for the cancelled order, +100 for the new one: 30 and nothing owed
    assert (shopper.balance(), owed) == (30, 0), (shopper.balance(), owed)


# FINDING R13 (high, double grant / double deduction): reconciliation looks the member's
# transactions up by the code WE set (MemberLink.member_code), never by the member's current code.
# When the merchant changes the member's code at the register (a store card issued; the audit even
# has a CODE_CHANGED finding for it, and Smaregi's `pos:customers` webhook updates only the
# directory), a point/add that was applied but answered ambiguously is not found under the old
# code, is "proved absent" after two minutes, and is sent AGAIN: the grant is applied twice.
# The same lookup serves the conversion saga (saga._member_code) and the take-back path.
# app/points/movements.py::_reconcile, app/points/saga.py::_member_code.
# DESIGN: "reconciled from the member's transactions after an ambiguous timeout, never blindly
# re-sent". Fix: search by the member's current code (directory / a fresh GET of the member), or
# by customer id; keep MemberLink.member_code current from register edits.
def test_R13_an_ambiguous_grant_is_not_sent_twice_after_the_code_changed_at_the_register(shopper, monkeypatch):  # noqa: F811
    from app.points import movements

    from .test_online_earning import CONTRACT

    shopper.smaregi.edit_member(CONTRACT, shopper.taro["customerId"], customerCode="STORE-0001")
    real_send = movements.send_change

    def applied_but_timed_out(*a, **k):
        real_send(*a, **k)
        return movements.Sent(movements.Outcome.AMBIGUOUS, error="SmaregiTimeout")

    monkeypatch.setattr(movements, "send_change", applied_but_timed_out)
    shopper.order(order(subtotal="12345"))
    shopper.settle()
    monkeypatch.setattr(movements, "send_change", real_send)
    [grant] = shopper.moves()
    assert grant.state == "sending" and shopper.earned() == [123]
    with shopper.services.db.transaction() as s:  # two minutes later, the worker reconciles
        s.execute(update(PointMovement).values(sent_at=grant.sent_at - timedelta(minutes=3), next_attempt_at=None))
    shopper.settle()
    assert shopper.earned() == [123], f"granted twice: {shopper.earned()}"


# FINDING R14 (medium, points lapse early): the optional "each grant extends the member's
# pointExpireDate to N months ahead" rule SETS the date instead of extending it: a member whose
# points are valid longer (the store's own rule, e.g. until 2027-03-31) gets an earlier expiry on
# every online grant, and their whole balance lapses (division 8) sooner.
# app/points/movements.py::_send/_extended_expiry (sends expire_on unconditionally).
# Issue 11: "each grant extends the member's pointExpireDate to N months ahead" -- never shortens.
# Fix: read the member's current pointExpireDate (the take-back path already reads the balance)
# and send max(current, today + N months), or nothing when current is later.
def test_R14_a_grant_never_shortens_the_members_point_expiry(shopper):  # noqa: F811
    from .test_online_earning import CONTRACT

    shopper.rules(point_expiry_months=1)
    assert shopper.smaregi.contracts[CONTRACT].points[shopper.taro["customerId"]]["pointExpireDate"] == "2027-03-31"
    shopper.order(order(subtotal="12345"))
    shopper.settle()
    assert shopper.earned() == [123]
    after = shopper.smaregi.contracts[CONTRACT].points[shopper.taro["customerId"]]["pointExpireDate"]
    assert after >= "2027-03-31", f"the grant moved the expiry EARLIER, to {after}"




# R10, the other side: a reconciliation may adopt the transaction of a change sent meanwhile, before
# that change's answer is recorded. Smaregi's answer is proof: the adopter is undecided again (and
# finds its own transaction), the sender keeps its transaction.
def test_R10b_a_sent_change_takes_its_transaction_back_from_a_wrong_adoption(shopper, monkeypatch):  # noqa: F811
    from app.points import movements

    from .test_online_earning import CONTRACT

    real_send = movements.send_change

    def applied_but_timed_out(*a, **k):
        real_send(*a, **k)
        return movements.Sent(movements.Outcome.AMBIGUOUS, error="SmaregiTimeout")

    monkeypatch.setattr(movements, "send_change", applied_but_timed_out)
    shopper.order(order(subtotal="12345"))
    shopper.settle()
    monkeypatch.setattr(movements, "send_change", real_send)
    [first] = shopper.moves()
    own = shopper.smaregi.contracts[CONTRACT].transactions[-1]["transactionHeadId"]
    upcoming = str(shopper.smaregi.contracts[CONTRACT].next_transaction_id)
    with shopper.services.db.transaction() as s:  # a reconciliation took the next transaction for its own
        s.execute(update(PointMovement).where(PointMovement.id == first.id).values(
            state="applied", smaregi_transaction_id=upcoming))
    shopper.order(order(order_id=5002, subtotal="10000"))
    shopper.settle()
    with shopper.services.db.transaction() as s:
        s.execute(update(PointMovement).values(next_attempt_at=None, leased_until=None))
    shopper.settle()
    claims = {m.id: (m.state, m.smaregi_transaction_id) for m in shopper.moves()}
    second = next(i for i in claims if i != first.id)
    assert claims == {first.id: ("applied", own), second: ("applied", upcoming)}
    assert shopper.earned() == [123, 100] and shopper.balance() == 1250 + 223


# R12, the other side: a grant whose pay-off of owed points is still undecided has used them up; the
# next grant must not pay the same owed points off again (that would take them twice).
def test_R12b_an_undecided_pay_off_is_not_paid_off_again(shopper, monkeypatch):  # noqa: F811
    from app.models import Shop
    from app.points import movements

    shopper.order(order(subtotal="10000"))
    shopper.settle()
    shopper.spend_at_register(1320)  # 1350 → 30
    shopper.order(order(subtotal="0", financial="refunded", cancelled=True, minutes=5), topic="orders/cancelled")
    shopper.settle()
    assert shopper.balance() == 0  # 70 owed
    real_send = movements.send_change

    def applied_but_timed_out(*a, **k):
        real_send(*a, **k)
        return movements.Sent(movements.Outcome.AMBIGUOUS, error="SmaregiTimeout")

    monkeypatch.setattr(movements, "send_change", applied_but_timed_out)
    shopper.order(order(order_id=5002, subtotal="10000"))  # earns 100: 70 pay the owed off, 30 sent
    shopper.settle()
    monkeypatch.setattr(movements, "send_change", real_send)
    shopper.order(order(order_id=5003, subtotal="10000"))  # earns 100 while that one is undecided
    shopper.settle()
    with shopper.services.db.transaction() as s:
        s.execute(update(PointMovement).values(next_attempt_at=None, leased_until=None))
    shopper.settle()
    with shopper.services.db.transaction() as s:
        owed = movements.owed_points(s, s.scalar(select(Shop.id)), TARO)
    assert [m.state for m in shopper.moves()].count("applied") == 4
    assert (shopper.balance(), owed) == (30 + 100, 0), (shopper.balance(), owed)
