"""Review findings on the order path (the independent review of main..review): each test was a
failing reproduction of one finding; the comment above it names the finding."""
from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import select, update

from app.models import Conversion, PointMovement
from app.points.returns import give_back_expired

from .conftest import CONTRACT, SHOP
from .helpers import deliver
from .test_online_earning import JST, TARO, order, pg_shopper, shopper  # noqa: F401  (fixtures)


def _coupon(s, points=500):
    resp = s.convert(points)
    assert resp.status_code == 201, resp.json
    return resp.json["conversion"]


def _listed(s, conversion_id):
    return next(c for c in s.conversions()["conversions"] if c["id"] == conversion_id)


# FINDING R1 (high, money): a coupon handed back while its order is in flight is paid twice.
# Shopify's asyncUsageCount lags the checkout, so a shopper who checks out with the code and taps
# "hand back" at once gets the points back (usage still 0), and the order delivery that follows is
# ignored because the conversion is no longer `completed` (app/orders/earning.py::_coupon).
# The shopper keeps the ¥500 discount AND the 500 points. DESIGN: "Never twice"; "A coupon already
# used — by Shopify's usage count or by an order the app has seen" is not given back.
def test_R1_coupon_handed_back_then_seen_in_an_order_is_not_paid_twice(shopper):  # noqa: F811
    coupon = _coupon(shopper)  # 1250 → 750
    assert shopper.hand_back(coupon["id"]).status_code == 200  # usage count not yet updated
    assert shopper.balance() == 1250
    shopper.order(order(subtotal="9500", codes=[coupon["code"]]))  # the checkout that used it
    shopper.settle()
    listed = _listed(shopper, coupon["id"])
    # the order the app has now seen used the code: it must be marked used (and the given-back
    # points taken back, or at least surfaced to the merchant) -- not silently ignored
    assert listed["status"] == "used" and listed.get("order_name") == "#5001", listed
    assert shopper.balance() == 750 + 95, "the coupon's points were given back AND the coupon was used"


# FINDING R1b: the same with the expiry job: a checkout started just before expiry, delivered
# after give_back_expired ran, keeps both the discount and the points.
def test_R1b_coupon_expired_and_given_back_then_seen_in_an_order_is_not_paid_twice(shopper):  # noqa: F811
    coupon = _coupon(shopper)
    with shopper.services.db.transaction() as s:
        s.execute(update(Conversion).values(expires_at=datetime.now(JST) - timedelta(minutes=1)))
    give_back_expired(shopper.services)
    shopper.settle()
    assert shopper.balance() == 1250
    shopper.order(order(subtotal="9500", codes=[coupon["code"]]))
    shopper.settle()
    assert shopper.balance() == 750 + 95, "expired coupon gave its points back and was used too"


def test_R1_given_back_points_already_spent_are_owed_shown_to_the_merchant_and_settled_by_a_cancellation(shopper):  # noqa: F811
    from .test_online_earning import _admin

    coupon = _coupon(shopper)  # 1250 → 750
    shopper.hand_back(coupon["id"])  # → 1250
    shopper.spend_at_register(1000)  # → 250
    shopper.order(order(subtotal="50", codes=[coupon["code"]]))  # earns nothing itself
    shopper.settle()
    assert shopper.balance() == 0  # the 500 given back are taken back: stops at 0, 250 owed
    summary = _admin(shopper, "GET", "/earning/summary").json["total"]
    assert (summary["taken_back"], summary["owed"]) == (250, 250)
    assert _listed(shopper, coupon["id"])["points_returned"] == 0
    shopper.order(order(subtotal="0", financial="refunded", cancelled=True, minutes=30, codes=[coupon["code"]]),
                  topic="orders/cancelled")
    shopper.settle()
    # the order is cancelled: the coupon's points come back once, first paying off what is owed
    assert shopper.balance() == 250
    assert _admin(shopper, "GET", "/earning/summary").json["total"]["owed"] == 0
    listed = _listed(shopper, coupon["id"])
    assert (listed["status"], listed["order_name"], listed["points_returned"]) == ("used", "#5001", 500)


# FINDING R9 (medium-high, money to the wrong member): an order whose customer is changed in Shopify
# admin ("Change customer") keeps its grant with the first customer, and a later cancellation or
# refund takes the points back from the NEW customer, who never received them
# (app/orders/earning.py::settle sums what the order "holds" over every member, then plans the
# difference for order.shopify_customer_id; intake's upsert takes the new customer id).
# DESIGN: "moves Smaregi by the difference from what it already granted for that order" -- per
# member: take back from whom it was granted, grant to the new customer.
def test_R9_changing_an_orders_customer_never_takes_points_from_someone_who_never_got_them(shopper):  # noqa: F811
    from app.sync.worker import Worker
    from app.webhooks.dispatch import Delivery, record

    from .helpers import customer
    from .test_conversions import ALICE

    record(shopper.services.db, shopper.services.config,
           Delivery(SHOP, "customers/create", "w-alice", None, None, customer(ALICE)))
    Worker(shopper.services, "w").drain()
    assert shopper.balance(shopper.alice) == 80
    shopper.order(order(subtotal="9500"))  # Taro's order: Taro earns 95
    shopper.settle()
    assert shopper.balance() == 1250 + 95
    shopper.order(order(subtotal="9500", minutes=5, customer_id=ALICE), topic="orders/updated")  # now Alice's
    shopper.settle()
    shopper.order(order(subtotal="0", financial="refunded", cancelled=True, minutes=10, customer_id=ALICE),
                  topic="orders/cancelled")
    shopper.settle()
    assert shopper.balance(shopper.alice) == 80, "Alice lost points she never earned"
    assert shopper.balance() == 1250, "Taro keeps the points of a cancelled order"


# FINDING R11 (medium, money taken from customers): the merchant's earning rules are applied
# retroactively to orders already granted. Turning online earning off (POINTS_EARN_YEN_PER_POINT /
# admin 0), raising the yen per point, or switching the trigger from `paid` to `fulfilled` makes the
# next delivery of ANY old order (a fulfilment, a note edit, a refund of another line) plan a
# take-back of points granted under the old rule (app/orders/earning.py::earning_of returns 0 /
# a smaller target and settle() moves Smaregi by the difference). Customers lose points they
# earned; with a shortfall they end up owing. DESIGN: "0 turns online earning off" (stops earning;
# it does not reverse it); take-backs are for "cancellations and refunds".
# Fix: record the rule (rate, trigger) with the order when it is first granted and compute later
# targets with that rule; a rule change applies to orders first seen afterwards.
def test_R11_turning_earning_off_does_not_take_back_points_already_earned(shopper):  # noqa: F811
    shopper.order(order(subtotal="12345"))
    shopper.settle()
    assert shopper.balance() == 1250 + 123
    shopper.rules(earn_yen_per_point=0)  # the merchant turns online earning off
    shopper.order(order(subtotal="12345", fulfillment="fulfilled", minutes=60), topic="orders/fulfilled")
    shopper.settle()
    assert shopper.taken() == [] and shopper.balance() == 1250 + 123, "earned points were taken back"


def test_R11b_switching_the_trigger_to_fulfilled_does_not_take_back_paid_grants(shopper):  # noqa: F811
    shopper.order(order(subtotal="12345"))
    shopper.settle()
    shopper.rules(earn_on="fulfilled")
    shopper.order(order(subtotal="12345", minutes=60), topic="orders/updated")  # e.g. a tag added
    shopper.settle()
    assert shopper.taken() == [] and shopper.balance() == 1250 + 123, "earned points were taken back"


def test_R11_a_rate_change_applies_to_new_orders_and_a_refund_uses_the_orders_own_rate(shopper):  # noqa: F811
    shopper.order(order(subtotal="12345"))
    shopper.settle()
    shopper.rules(earn_yen_per_point=200)
    shopper.order(order(subtotal="10000", financial="partially_refunded", minutes=5), topic="orders/updated")
    shopper.order(order(order_id=5002, subtotal="10000"))
    shopper.settle()
    assert (shopper.earned(), shopper.taken()) == ([123, 50], [23])  # 123 → 100 at its own 100 yen a point
    shopper.rules(earn_yen_per_point=0)  # off: for new orders
    shopper.order(order(order_id=5003, subtotal="10000"))
    shopper.settle()
    assert (shopper.earned(), shopper.taken()) == ([123, 50], [23])


# FINDING R2 (medium, money lost): coupon points are lost on a refund when the first delivery the
# app sees is already refunded (webhooks are late and out of order; orders/paid carries the order's
# state at send time). base_when_paid is taken from that first delivery (0 or the refunded base),
# so the refunded share is computed as 0 and the coupon's points never come back.
# DESIGN: refunded share = 1 − current base ÷ the base when the order was first seen paid;
# "never lost". The paid base is knowable from the payload itself (subtotal_price / total before
# refunds, or refunds[]), or from the older orders/paid delivery the upsert throws away.
def test_R2_fully_refunded_order_seen_first_gives_coupon_points_back(shopper):  # noqa: F811
    coupon = _coupon(shopper)  # 750
    refunded = order(subtotal="0", financial="refunded", minutes=10, codes=[coupon["code"]])
    refunded["subtotal_price"] = "9500"  # what the shopper paid before the refund
    refunded["refunds"] = [{"id": 1, "refund_line_items": [{"subtotal": "9500"}]}]
    shopper.order(refunded, topic="orders/updated")
    shopper.order(order(subtotal="9500", codes=[coupon["code"]]), topic="orders/paid")  # older: ignored
    shopper.settle()
    listed = _listed(shopper, coupon["id"])
    assert listed["points_returned"] == 500, listed  # the whole base was refunded
    assert shopper.balance() == 1250


# FINDING R3 (medium, robustness): a signed order webhook with fields of the wrong shape is a
# 500 (HTML), not a clean 400 JSON. DESIGN: "400 on a malformed body after a valid HMAC".
# app/orders/intake.py::facts (Decimal(str(quantity)) unguarded; *_set not a dict) and
# webhooks/delivery.py::positive_id (no 64-bit bound: Postgres/SQLite integer overflow).
def _post_order(shopper, payload):  # noqa: F811
    return deliver(shopper.client, shopper.services.config.shopify_api_secret, "orders/paid", payload)


def test_R3a_order_line_quantity_not_a_number_is_400(shopper):  # noqa: F811
    bad = order()
    bad["line_items"].append({"id": 9, "gift_card": True, "price": "100", "quantity": "many"})
    resp = _post_order(shopper, bad)
    assert resp.status_code == 400, (resp.status_code, resp.data[:200])


def test_R3b_order_money_set_not_an_object_is_400(shopper):  # noqa: F811
    bad = order()
    bad["current_subtotal_price_set"] = "12345"
    resp = _post_order(shopper, bad)
    assert resp.status_code == 400, (resp.status_code, resp.data[:200])


def test_R3c_order_id_beyond_64_bits_is_400(shopper):  # noqa: F811
    bad = order(order_id=2 ** 64)
    resp = _post_order(shopper, bad)
    assert resp.status_code == 400, (resp.status_code, resp.data[:200])


def test_R3d_order_customer_id_beyond_64_bits_is_400(shopper):  # noqa: F811
    bad = order(customer_id=2 ** 64)
    resp = _post_order(shopper, bad)
    assert resp.status_code == 400, (resp.status_code, resp.data[:200])


# FINDING R3e/R8 (low-medium, robustness): ids beyond 64 bits reach the database and give 500s:
# a signed customers/create webhook (app/sync/intake.py validate -> positive_id), and the admin's
# integer path parameters (/admin/api/audit/findings/<int>/fix, /sync/conflicts/<int>/resolve,
# link_ids in /sync/retry). DESIGN: malformed input after a valid credential is a clean 4xx JSON.
def test_R3e_customer_id_beyond_64_bits_is_400(shopper):  # noqa: F811
    resp = deliver(shopper.client, shopper.services.config.shopify_api_secret, "customers/create",
                   {"id": 2 ** 64, "email": "x@example.com", "updated_at": "2026-11-25T10:00:00+09:00"})
    assert resp.status_code == 400, (resp.status_code, resp.data[:200])


# FINDING R3f (part of R3): an amount with a huge exponent ("1e400000000", a finite Decimal) passes
# intake's _money() and fails later in the same request: 500 instead of 400.
def test_R3f_order_amount_with_a_huge_exponent_is_400(shopper):  # noqa: F811
    bad = order()
    bad["current_subtotal_price"] = "1e400000000"
    bad["current_subtotal_price_set"] = {"shop_money": {"amount": "1e400000000", "currency_code": "JPY"}}
    resp = _post_order(shopper, bad)
    assert resp.status_code == 400, (resp.status_code, resp.data[:200])


# R3 (more shapes): each is refused as invalid_request JSON and nothing is recorded.
@pytest.mark.parametrize("change", [
    {"line_items": "not a list"},
    {"discount_codes": 7},
    {"current_subtotal_price_set": {"shop_money": "12345"}},
    {"subtotal_price_set": ["12345"]},
    {"current_subtotal_price": True, "current_subtotal_price_set": None},
    {"current_subtotal_price": {"amount": "1"}, "current_subtotal_price_set": None},
    {"customer": {"id": "8840734670919"}},
    {"customer": {"id": -1}},
    {"id": 2**63},
])
def test_R3_other_malformed_order_shapes_are_400_and_change_nothing(shopper, change):  # noqa: F811
    from app.models import Order

    bad = order()
    bad.update(change)
    resp = _post_order(shopper, bad)
    assert (resp.status_code, resp.json["error"]["code"]) == (400, "invalid_request"), resp.data[:200]
    with shopper.services.db.transaction() as s:
        assert s.scalars(select(Order)).all() == []


def test_R2_a_partial_refund_seen_first_gives_back_the_refunded_share_of_the_coupon(shopper):  # noqa: F811
    coupon = _coupon(shopper)  # 750
    half = order(subtotal="4750", financial="partially_refunded", minutes=10, codes=[coupon["code"]])
    half["subtotal_price"] = "9500"
    half["subtotal_price_set"] = {"shop_money": {"amount": "9500", "currency_code": "JPY"}}
    shopper.order(half, topic="orders/updated")
    shopper.settle()
    assert _listed(shopper, coupon["id"])["points_returned"] == 250
    assert shopper.balance() == 750 + 250 + 47
def test_R8_admin_integer_ids_beyond_64_bits_are_clean_4xx(shopper):  # noqa: F811
    from .smaregi_connect_support import admin_token

    auth = {"Authorization": f"Bearer {admin_token(shopper.services, SHOP)}"}
    huge = 2 ** 64
    for method, path, body in (("post", f"/admin/api/audit/findings/{huge}/fix", None),
                               ("post", f"/admin/api/audit/findings/{huge}/dismiss", None),
                               ("post", f"/admin/api/sync/conflicts/{huge}/resolve", {"smaregi_customer_id": "1"}),
                               ("post", "/admin/api/sync/retry", {"link_ids": [huge]})):
        resp = getattr(shopper.client, method)(path, headers=auth, json=body)
        assert 400 <= resp.status_code < 500 and resp.is_json, (path, resp.status_code, resp.data[:120])


def test_R8_the_largest_row_id_is_an_unknown_id_and_link_ids_must_be_ids(shopper):  # noqa: F811
    from .smaregi_connect_support import admin_token

    auth = {"Authorization": f"Bearer {admin_token(shopper.services, SHOP)}"}
    top = 2**31 - 1  # the row ids are INTEGER
    for finding_id in (top, top + 1):
        resp = shopper.client.post(f"/admin/api/audit/findings/{finding_id}/dismiss", headers=auth)
        assert (resp.status_code, resp.json["error"]["code"]) == (404, "not_found")
    for ids in ([True], [0], [2**31], ["1"]):
        resp = shopper.client.post("/admin/api/sync/retry", headers=auth, json={"link_ids": ids})
        assert (resp.status_code, resp.json["error"]["code"]) == (400, "invalid_request"), ids
    resp = shopper.client.post("/admin/api/sync/retry", headers=auth, json={"link_ids": [top]})
    assert resp.status_code == 200 and resp.json["queued"] == 0



def test_R1_a_give_back_smaregi_refused_is_not_taken_back_when_the_order_arrives(shopper):  # noqa: F811
    coupon = _coupon(shopper)  # 1250 → 750
    shopper.hand_back(coupon["id"])
    with shopper.services.db.transaction() as s:  # as if Smaregi had refused the give-back for good
        s.execute(update(PointMovement).where(PointMovement.kind == "give_back").values(state="refused"))
    with shopper.smaregi.lock:
        shopper.smaregi.contracts[CONTRACT].points[shopper.taro["customerId"]]["point"] -= 500
    shopper.order(order(subtotal="9500", codes=[coupon["code"]]))
    shopper.settle()
    assert _listed(shopper, coupon["id"])["status"] == "used"
    assert shopper.balance() == 750 + 95 and shopper.taken() == [500]  # only the conversion's deduction


def test_R9_a_coupon_stays_its_owners_when_the_orders_customer_changes(shopper):  # noqa: F811
    from .test_conversions import ALICE

    coupon = _coupon(shopper)  # 1250 → 750
    shopper.order(order(subtotal="9500", codes=[coupon["code"]]))
    shopper.settle()
    shopper.order(order(subtotal="9500", minutes=5, customer_id=ALICE, codes=[coupon["code"]]),
                  topic="orders/updated")
    shopper.settle()
    assert shopper.balance() == 750  # the 95 moved to Alice's (not yet linked) account
    shopper.order(order(subtotal="0", financial="refunded", cancelled=True, minutes=10, customer_id=ALICE,
                        codes=[coupon["code"]]), topic="orders/cancelled")
    shopper.settle()
    assert shopper.balance() == 1250  # Taro's coupon points come back to Taro
    assert _listed(shopper, coupon["id"])["points_returned"] == 500
