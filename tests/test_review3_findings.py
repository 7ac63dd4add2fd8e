"""Review 3: reproductions of the findings (each fails against the code it was written for).

R1  An ambiguous conversion deduction, reconciled in the shopper's request, adopts the Smaregi
    transaction of an undecided take-back of the same size: the code goes out backed by the
    take-back's points, and the take-back is later re-sent against a balance that no longer has them.
"""
from __future__ import annotations

import time
import uuid

from sqlalchemy import select

from app.models import Conversion, PointMovement, Shop, utcnow
from app.points.movements import MovementKind, MovementReason, MovementState

from .conftest import CONTRACT
from .test_conversions import TARO, given  # noqa: F401 (fixture)


def _undecided_take_back(given, points: int) -> str:
    """A take-back of `points` that Smaregi applied but whose answer was lost (it is `sending`)."""
    client = given.services.smaregi.contract(CONTRACT)
    client.add_points(given.taro["customerId"], -points, deadline=time.monotonic() + 3)
    with given.services.db.transaction() as s:
        shop_id = s.scalar(select(Shop.id))
        m = PointMovement(id=str(uuid.uuid4()), shop_id=shop_id, shopify_customer_id=TARO,
                          smaregi_customer_id=given.taro["customerId"], kind=MovementKind.TAKE_BACK,
                          reason=MovementReason.PURCHASE_REVERSAL, points=-points, sent_points=-points,
                          owed_change=0, state=MovementState.SENDING, order_id=4242, attempts=0,
                          sent_at=utcnow(), next_attempt_at=utcnow())
        s.add(m)
    return m.id


def test_r1_an_ambiguous_deduction_does_not_adopt_an_undecided_take_backs_transaction(given):
    take_back = _undecided_take_back(given, 500)  # Taro: 1,250 → 750 in Smaregi
    [its_transaction] = given.deductions()
    # The conversion's own point/add is lost on the way: Smaregi answers 503 and applies nothing.
    given.smaregi.add_fault(match=r"POST .*/point/add", status=503, count=1)
    resp = given.convert(500)
    [c] = given.ledger()
    assert given.balance() == 750 and len(given.deductions()) == 1  # only the take-back left Smaregi
    # Observed: 201 completed, the code is out, and the conversion claims the take-back's transaction.
    assert c.smaregi_transaction_ids != [its_transaction["transactionHeadId"]], \
        "the conversion adopted the undecided take-back's transaction"
    assert resp.status_code == 504 and c.status != "completed"
    with given.services.db.transaction() as s:
        assert s.get(PointMovement, take_back).state == MovementState.SENDING
