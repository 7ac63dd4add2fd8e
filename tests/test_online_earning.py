"""Online purchases earn points; cancellations, refunds and unused coupons give them back — once.

Given/when/then, as a merchant would tell it, against the Smaregi and Shopify stand-ins, on SQLite
and on Postgres. Orders arrive as signed REST webhooks through POST /webhooks; the worker's job
(`app.orders.earning.run`) moves Smaregi.
"""
from __future__ import annotations

import json
import threading
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select, update

from app import create_app
from app.dev.signing import app_home_id_token, customer_account_token, proxy_params, proxy_query, webhook_hmac
from app.models import Conversion, Order, PointMovement, Shop, ShopSettings
from app.orders import earning
from app.points import movements
from app.points.returns import give_back_expired

from .conftest import CONTRACT, SHOP
from .helpers import deliver, proxy_url
from .test_conversions import TARO, Given

JST = timezone(timedelta(hours=9))
ORDER_T0 = datetime(2026, 11, 25, 10, 0, tzinfo=JST)


def order(order_id=5001, *, subtotal="12345", minutes=0, financial="paid", fulfillment=None, cancelled=False,
          customer_id=TARO, codes=(), gift_card=None) -> dict:
    lines = [{"id": 1, "gift_card": False, "price": subtotal, "quantity": 1, "current_quantity": 1}]
    if gift_card:
        lines.append({"id": 2, "gift_card": True, "price": gift_card, "quantity": 1, "current_quantity": 1})
    return {"id": order_id, "name": f"#{order_id}", "updated_at": (ORDER_T0 + timedelta(minutes=minutes)).isoformat(),
            "financial_status": financial, "fulfillment_status": fulfillment,
            "cancelled_at": (ORDER_T0 + timedelta(minutes=minutes)).isoformat() if cancelled else None,
            "current_subtotal_price": subtotal, "currency": "JPY",
            "current_subtotal_price_set": {"shop_money": {"amount": subtotal, "currency_code": "JPY"}},
            "customer": {"id": customer_id} if customer_id else None, "line_items": lines,
            "discount_codes": [{"code": c, "amount": "0", "type": "fixed_amount"} for c in codes]}


class Shopper(Given):
    def order(self, payload, topic="orders/paid", **kw):
        resp = deliver(self.client, self.services.config.shopify_api_secret, topic, payload, **kw)
        assert resp.status_code == 200, resp.data
        return resp.json["status"]

    def settle(self):
        """The worker's job, and again for anything it left due."""
        earning.run(self.services)

    def earned(self) -> list[int]:
        return [int(t["newPoint"]) for t in self.smaregi.contracts[CONTRACT].transactions
                if t["transactionHeadDivision"] == "6"]

    def taken(self) -> list[int]:
        return [int(t["spendPoint"]) for t in self.smaregi.contracts[CONTRACT].transactions
                if t["transactionHeadDivision"] == "7"]

    def moves(self) -> list[PointMovement]:
        with self.services.db.transaction() as s:
            return list(s.scalars(select(PointMovement).order_by(PointMovement.created_at)))

    def spend_at_register(self, points: int) -> None:
        with self.smaregi.lock:
            self.smaregi.contracts[CONTRACT].points[self.taro["customerId"]]["point"] -= points

    def rules(self, **values):
        with self.services.db.transaction() as s:
            shop_id = s.scalar(select(Shop.id))
            row = s.get(ShopSettings, shop_id) or ShopSettings(shop_id=shop_id)
            for k, v in values.items():
                setattr(row, k, v)
            s.add(row)
        from app.points.member import forget_settings

        forget_settings()

    def balance_json(self, locale="en"):
        url = proxy_url(self.services.config.shopify_api_secret, "balance", TARO, extra={"locale": locale})
        return self.client.get(url).json

    def hand_back(self, conversion_id, who=TARO):
        return self.client.post(proxy_url(self.services.config.shopify_api_secret,
                                          f"conversions/{conversion_id}/return", who))


@pytest.fixture
def shopper(services, smaregi_em, shopify_em):
    return Shopper(services, smaregi_em[0], shopify_em[0])


@pytest.fixture
def pg_shopper(pg_url, smaregi_em, shopify_em, make_services):
    return Shopper(make_services(pg_url, smaregi_url=smaregi_em[1], shopify_url=shopify_em[1]),
                   smaregi_em[0], shopify_em[0])


# -- earning ------------------------------------------------------------------------------------------------

def test_paid_order_is_granted_and_shown_in_history(shopper):
    assert shopper.order(order(subtotal="12345")) == "queued"
    assert shopper.earned() == []  # nothing is sent to the POS inside the webhook request
    shopper.settle()
    assert shopper.earned() == [123] and shopper.balance() == 1250 + 123
    body = shopper.balance_json("ja")
    assert {"label": "オンラインでのお買い物", "points": 123} in [
        {"label": h["label"], "points": h["points"]} for h in body["history"]]
    assert body["pending"] == {"points": 0, "next_on": None}
    assert [m.state for m in shopper.moves()] == ["applied"]


def test_the_same_delivery_five_times_grants_once(shopper):
    payload = order(subtotal="5000")
    shopper.order(payload, webhook_id="same-1")
    assert shopper.order(payload, webhook_id="same-1") == "duplicate"
    threads = [threading.Thread(target=shopper.order, args=(payload,)) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    shopper.settle()
    shopper.order(payload, topic="orders/updated")
    shopper.settle()
    assert shopper.earned() == [50] and shopper.balance() == 1300


def test_a_partial_refund_takes_back_only_the_difference(shopper):
    shopper.order(order(subtotal="10000"))
    shopper.settle()
    shopper.order(order(subtotal="6000", financial="partially_refunded", minutes=5), topic="orders/updated")
    shopper.settle()
    assert (shopper.earned(), shopper.taken()) == ([100], [40])
    assert shopper.balance() == 1250 + 60
    assert any(h["label"] == "Online order cancelled or refunded" and h["points"] == -40
               for h in shopper.balance_json()["history"])


def test_an_older_state_after_a_newer_one_changes_nothing(shopper):
    shopper.order(order(subtotal="6000", financial="partially_refunded", minutes=5), topic="orders/updated")
    assert shopper.order(order(subtotal="10000", minutes=0)) == "stale"
    shopper.settle()
    assert shopper.earned() == [60] and shopper.taken() == []


def test_cancelled_before_paid_arrives_is_never_granted(shopper):
    shopper.order(order(financial="voided", cancelled=True, minutes=3), topic="orders/cancelled")
    assert shopper.order(order(minutes=1)) == "stale"
    shopper.settle()
    assert shopper.earned() == [] and shopper.moves() == []


def test_a_guest_order_earns_nothing(shopper):
    shopper.order(order(customer_id=None))
    shopper.settle()
    assert shopper.earned() == [] and shopper.moves() == []


def test_gift_cards_earn_nothing(shopper):
    shopper.order(order(subtotal="15000", gift_card="10000"))
    shopper.settle()
    assert shopper.earned() == [50]


def test_fulfilled_trigger_and_hold_days_are_pending_then_granted(shopper):
    shopper.rules(earn_on="fulfilled", earn_hold_days=3)
    shopper.order(order(subtotal="20000"))
    shopper.settle()
    assert shopper.balance_json()["pending"] == {"points": 200, "next_on": None}  # waits for fulfilment
    shopper.order(order(subtotal="20000", fulfillment="fulfilled", minutes=10), topic="orders/fulfilled")
    shopper.settle()
    grant_on = (datetime.now(JST).date() + timedelta(days=3)).isoformat()
    assert shopper.balance_json()["pending"] == {"points": 200, "next_on": grant_on}
    assert shopper.earned() == []
    with shopper.services.db.transaction() as s:  # three days pass
        s.execute(update(Order).values(fulfilled_seen_at=datetime.now(JST) - timedelta(days=3),
                                       next_attempt_at=datetime.now(JST)))
    shopper.settle()
    assert shopper.earned() == [200] and shopper.balance_json()["pending"]["points"] == 0


def test_an_ambiguous_grant_timeout_is_reconciled_with_exactly_one_grant(shopper, monkeypatch):
    monkeypatch.setattr(earning, "BUDGET_S", 0.5)
    shopper.smaregi.add_fault(match=r"POST .*/point/add", stall_after_apply_s=4, count=1)
    shopper.order(order(subtotal="7000"))
    shopper.settle()
    [m] = shopper.moves()
    assert m.state == "sending"  # Smaregi applied it, its answer was lost
    with shopper.services.db.transaction() as s:
        s.execute(update(PointMovement).values(next_attempt_at=None, leased_until=None))
    shopper.settle()
    [m] = shopper.moves()
    assert m.state == "applied" and shopper.earned() == [70] and shopper.balance() == 1320
    assert m.smaregi_transaction_id == shopper.smaregi.contracts[CONTRACT].transactions[-1]["transactionHeadId"]


def test_a_customer_without_a_member_yet_is_granted_once_linked(shopper):
    hanako = 8840734670999
    shopper.order(order(order_id=6001, customer_id=hanako, subtotal="3000"))
    shopper.settle()
    assert shopper.earned() == [] and shopper.moves()[0].state == "planned"
    from app.webhooks.dispatch import Delivery, record

    from .helpers import customer
    shopper.shopify.add_customer(SHOP, hanako)
    record(shopper.services.db, shopper.services.config,
           Delivery(SHOP, "customers/create", "h1", None, None, customer(hanako, email="hanako@example.com")))
    from app.sync.worker import Worker

    Worker(shopper.services, "w").drain()
    with shopper.services.db.transaction() as s:
        s.execute(update(PointMovement).values(next_attempt_at=None))
    shopper.settle()
    assert shopper.earned() == [30]


# -- coupons in orders --------------------------------------------------------------------------------------

def _coupon(shopper, points=500):
    resp = shopper.convert(points)
    assert resp.status_code == 201
    return resp.json["conversion"]


def test_a_coupon_used_then_its_order_cancelled_gives_everything_back_once(shopper):
    coupon = _coupon(shopper)  # 1250 → 750
    shopper.order(order(subtotal="9500", codes=[coupon["code"]]))
    shopper.settle()
    assert shopper.balance() == 750 + 95
    [listed] = shopper.conversions()["conversions"]
    assert (listed["status"], listed["order_name"], listed["points_returned"]) == ("used", "#5001", 0)
    cancelled = order(subtotal="0", financial="refunded", cancelled=True, minutes=30, codes=[coupon["code"]])
    for _ in range(2):
        shopper.order(cancelled, topic="orders/cancelled")
        shopper.settle()
    assert shopper.balance() == 1250  # earned 95 taken back, coupon's 500 given back
    assert shopper.earned() == [95, 500] and shopper.taken() == [500, 95]
    [listed] = shopper.conversions()["conversions"]
    assert (listed["status"], listed["points_returned"]) == ("used", 500)
    from app.points.saga import sweep

    sweep(shopper.services)  # the coupon list in Shopify follows
    coupons = json.loads(shopper.shopify.metafield(SHOP, f"gid://shopify/Customer/{TARO}", "loyalty", "coupons")["value"])
    assert [(c["code"], c["status"], c.get("order_name")) for c in coupons] == [(coupon["code"], "used", "#5001")]


def test_half_refunded_gives_back_half_the_coupon_points(shopper):
    coupon = _coupon(shopper)
    shopper.order(order(subtotal="9500", codes=[coupon["code"]]))
    shopper.order(order(subtotal="4750", financial="partially_refunded", minutes=5, codes=[coupon["code"]]),
                  topic="orders/updated")
    shopper.settle()
    [listed] = shopper.conversions()["conversions"]
    assert listed["points_returned"] == 250
    assert shopper.balance() == 750 + 250 + 47


def test_a_shortfall_stops_at_zero_and_is_netted_from_the_next_grant(shopper):
    shopper.order(order(subtotal="10000"))
    shopper.settle()
    shopper.spend_at_register(1320)  # 1350 → 30
    shopper.order(order(subtotal="0", financial="refunded", cancelled=True, minutes=5), topic="orders/cancelled")
    shopper.settle()
    assert shopper.balance() == 0  # never negative
    with shopper.services.db.transaction() as s:
        assert movements.owed_points(s, s.scalar(select(Shop.id)), TARO) == 70
    shopper.order(order(order_id=5002, subtotal="15000"))
    shopper.settle()
    assert shopper.balance() == 150 - 70
    with shopper.services.db.transaction() as s:
        assert movements.owed_points(s, s.scalar(select(Shop.id)), TARO) == 0


@pytest.mark.postgres
@pytest.mark.parametrize("first", ["take_back", "grant"])
def test_a_grant_and_a_take_back_at_once_never_leave_points_beside_owed_points(pg_shopper, first):
    """Given 30 points left after spending at the register, when the cancellation of a 100-point
    order and a new 100-point order are worked on at the same moment (two workers), then whichever
    goes first the member ends with 30 points and owes nothing: never 100 points and 70 owed."""
    from app.orders.earning import settle_due, target_for

    s = pg_shopper
    s.order(order(subtotal="10000"))
    s.settle()
    s.spend_at_register(1320)  # 1350 → 30
    s.order(order(subtotal="0", financial="refunded", cancelled=True, minutes=5), topic="orders/cancelled")
    s.order(order(order_id=5002, subtotal="10000"))
    settle_due(s.services)  # planned, not sent
    planned = {m.kind: m.id for m in s.moves() if m.state == "planned"}
    assert set(planned) == {"take_back", "grant"}
    with s.services.db.transaction() as session:
        target = target_for(session, session.scalar(select(Shop)), s.services.config)[1]
    # Slow answers, so that the take-back's balance read and the grant's point/add overlap.
    s.smaregi.add_fault(match=r"POST .*/point/add", latency_s=0.4)
    s.smaregi.add_fault(match=r"GET .*/customers/point", latency_s=0.4)
    errors: list[Exception] = []

    def work(kind: str, after_s: float) -> None:
        threading.Event().wait(after_s)
        try:
            for _ in range(40):  # a worker coming back for it, as the real one does
                if movements.drive(s.services, planned[kind], target).state == "applied":
                    return
                threading.Event().wait(0.25)
            errors.append(AssertionError(f"{kind} never applied"))
        except Exception as exc:
            errors.append(exc)

    second = "grant" if first == "take_back" else "take_back"
    threads = [threading.Thread(target=work, args=(first, 0)), threading.Thread(target=work, args=(second, 0.1))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    s.smaregi.clear_faults()
    assert errors == []
    with s.services.db.transaction() as session:
        owed = movements.owed_points(session, session.scalar(select(Shop.id)), TARO)
    assert (s.balance(), owed) == (30, 0)
    # Smaregi's transactions tell the same story, each change once: 1250, +100, -1320 at the register, …
    assert 1250 - 1320 + sum(s.earned()) - sum(s.taken()) == 30
    assert len(s.earned()) == 2 and len(s.taken()) == 1


# -- giving back ----------------------------------------------------------------------------------------------

def test_handing_back_twice_gives_back_once(shopper):
    coupon = _coupon(shopper)
    first = shopper.hand_back(coupon["id"])
    assert first.status_code == 200
    assert (first.json["conversion"]["status"], first.json["conversion"]["balance_after"]) == ("returned", 1250)
    assert shopper.active_codes() == []  # withdrawn in Shopify first
    again = shopper.hand_back(coupon["id"])
    assert again.status_code == 200 and again.json == first.json
    assert shopper.balance() == 1250 and shopper.earned() == [500]
    assert any(h["label"] == "Coupon points given back" for h in shopper.balance_json()["history"])


def test_a_used_code_cannot_be_handed_back(shopper):
    coupon = _coupon(shopper)
    shopper.shopify.use_code(SHOP, coupon["code"])
    resp = shopper.hand_back(coupon["id"])
    assert (resp.status_code, resp.json["error"]["code"]) == (409, "coupon_used")
    assert shopper.balance() == 750 and len(shopper.active_codes()) == 1


def test_handing_back_is_refused_when_the_shop_turned_it_off(shopper):
    coupon = _coupon(shopper)
    shopper.rules(coupon_return_unused=False)
    resp = shopper.hand_back(coupon["id"])
    assert (resp.status_code, resp.json["error"]["code"]) == (403, "forbidden")
    assert shopper.balance() == 750


def test_an_expired_coupon_gives_its_points_back(shopper):
    coupon = _coupon(shopper)
    with shopper.services.db.transaction() as s:
        s.execute(update(Conversion).values(expires_at=datetime.now(JST) - timedelta(minutes=1)))
    give_back_expired(shopper.services)
    shopper.settle()
    [listed] = shopper.conversions()["conversions"]
    assert listed["status"] == "expired" and shopper.balance() == 1250
    assert shopper.active_codes() == []
    assert shopper.hand_back(coupon["id"]).status_code == 404


def _other_credentials(shopper, conversion_id):
    cfg = shopper.services.config
    path = f"conversions/{conversion_id}/return"
    query = proxy_query(proxy_params(SHOP, TARO), cfg.shopify_api_secret)
    forged = query.replace("signature=", "signature=0")
    wrong_secret = proxy_query(proxy_params(SHOP, TARO), "not-the-secret")
    admin = app_home_id_token(cfg.shopify_api_key, cfg.shopify_api_secret, SHOP)
    account = customer_account_token(cfg.shopify_api_key, cfg.shopify_api_secret, SHOP, TARO)
    return [
        ("proxy, no signature", lambda c: c.post(f"/proxy/{path}?shop={SHOP}&logged_in_customer_id={TARO}")),
        ("proxy, forged signature", lambda c: c.post(f"/proxy/{path}?{forged}")),
        ("proxy, another app's secret", lambda c: c.post(f"/proxy/{path}?{wrong_secret}")),
        ("proxy, admin token", lambda c: c.post(f"/proxy/{path}", headers={"Authorization": f"Bearer {admin}"})),
        ("proxy, customer-account token",
         lambda c: c.post(f"/proxy/{path}", headers={"Authorization": f"Bearer {account}"})),
        ("account, admin token",
         lambda c: c.post(f"/customer-account/{path}", headers={"Authorization": f"Bearer {admin}"})),
        ("account, proxy signature", lambda c: c.post(f"/customer-account/{path}?{query}")),
        ("account, forged token",
         lambda c: c.post(f"/customer-account/{path}", headers={"Authorization": f"Bearer {account[:-4]}AAAA"})),
        ("proxy, webhook HMAC",
         lambda c: c.post(f"/proxy/{path}", headers={"X-Shopify-Hmac-Sha256": webhook_hmac(b"", cfg.shopify_api_secret)})),
        ("account, webhook HMAC", lambda c: c.post(
            f"/customer-account/{path}", headers={"X-Shopify-Hmac-Sha256": webhook_hmac(b"", cfg.shopify_api_secret)})),
    ]


def test_the_return_endpoints_refuse_every_other_credential_and_change_nothing(shopper):
    coupon = _coupon(shopper)
    for name, call in _other_credentials(shopper, coupon["id"]):
        resp = call(shopper.client)
        if name == "account, admin token":
            # Its `sub` is a staff user, never this customer: at worst not_found (h1's one
            # verification per credential turns it into 401 invalid_signature).
            assert resp.status_code in (401, 404), (name, resp.status_code)
            continue
        assert resp.status_code == 401, (name, resp.status_code)
        assert resp.json["error"]["code"] in ("invalid_signature", "not_logged_in"), name
    assert shopper.balance() == 750 and len(shopper.active_codes()) == 1
    assert shopper.conversions()["conversions"][0]["status"] == "completed"


def test_another_customers_coupon_is_not_found_on_either_surface(shopper):
    coupon = _coupon(shopper)
    alice = 8840734670935
    assert shopper.hand_back(coupon["id"], who=alice).json["error"]["code"] == "not_found"
    cfg = shopper.services.config
    token = customer_account_token(cfg.shopify_api_key, cfg.shopify_api_secret, SHOP, alice)
    resp = shopper.client.post(f"/customer-account/conversions/{coupon['id']}/return",
                               headers={"Authorization": f"Bearer {token}"})
    assert (resp.status_code, resp.json["error"]["code"]) == (404, "not_found")
    assert shopper.hand_back(str(uuid.uuid4())).status_code == 404
    assert shopper.balance() == 750 and len(shopper.active_codes()) == 1


def test_the_customer_account_surface_hands_back_with_its_own_token(shopper):
    coupon = _coupon(shopper)
    cfg = shopper.services.config
    token = customer_account_token(cfg.shopify_api_key, cfg.shopify_api_secret, SHOP, TARO)
    resp = shopper.client.post(f"/customer-account/conversions/{coupon['id']}/return",
                               headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 200 and resp.json["conversion"]["status"] == "returned"
    assert shopper.balance() == 1250


# -- Postgres: real concurrency -----------------------------------------------------------------------------

@pytest.mark.postgres
def test_ten_orders_of_one_customer_at_once_grant_the_sum(pg_shopper):
    shopper = pg_shopper

    def send(i):
        client = create_app(services=shopper.services).test_client()
        deliver(client, shopper.services.config.shopify_api_secret, "orders/paid",
                order(order_id=7000 + i, subtotal=str(1000 * (i + 1))))

    threads = [threading.Thread(target=send, args=(i,)) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    workers = [threading.Thread(target=shopper.settle) for _ in range(3)]  # three workers at once
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    shopper.settle()
    assert sorted(shopper.earned()) == [10 * (i + 1) for i in range(10)]
    assert shopper.balance() == 1250 + sum(10 * (i + 1) for i in range(10))


@pytest.mark.postgres
def test_the_same_order_delivered_at_once_by_many_grants_once(pg_shopper):
    shopper = pg_shopper
    payload = order(subtotal="8000")

    def send():
        client = create_app(services=shopper.services).test_client()
        deliver(client, shopper.services.config.shopify_api_secret, "orders/paid", payload)

    threads = [threading.Thread(target=send) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    workers = [threading.Thread(target=shopper.settle) for _ in range(3)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    assert shopper.earned() == [80]


# -- the merchant's view ------------------------------------------------------------------------------------

def _admin(shopper, method, path, shop=SHOP, **kw):
    cfg = shopper.services.config
    token = app_home_id_token(cfg.shopify_api_key, cfg.shopify_api_secret, shop)
    return shopper.client.open(f"/admin/api{path}", method=method, headers={"Authorization": f"Bearer {token}"}, **kw)


def _grant_for_review(shopper):
    """Given a grant whose answer never came (Smaregi did not apply it) and that a person must look at."""
    shopper.smaregi.add_fault(match=r"POST .*/point/add", status=500, count=1)  # not applied, ambiguous
    shopper.order(order(subtotal="4000"))
    shopper.settle()
    [grant] = [m for m in shopper.moves() if m.kind == "grant"]
    assert grant.state == "sending"
    with shopper.services.db.transaction() as s:
        s.execute(update(PointMovement).where(PointMovement.id == grant.id).values(
            state="needs_review", error="Two transactions in Smaregi could be this change.",
            sent_at=grant.sent_at - timedelta(minutes=3), next_attempt_at=None))
    return grant


def test_the_merchant_sees_point_movements_awaiting_review_and_rechecks_one(shopper):
    grant = _grant_for_review(shopper)
    listed = _admin(shopper, "GET", "/movements/review").json["movements"]
    assert [(m["id"], m["customer_id"], m["kind"], m["points"], m["order_name"], m["reason"], m["actions"])
            for m in listed] == [(grant.id, TARO, "grant", 40, "#5001",
                                  "Two transactions in Smaregi could be this change.",
                                  ["recheck", "applied", "not_applied"])]
    assert _admin(shopper, "GET", "/movements/review", shop="other-shop.myshopify.com").json["movements"] == []
    assert _admin(shopper, "POST", f"/movements/{grant.id}/recheck").status_code == 200
    shopper.settle()  # not among Taro's transactions after two minutes: not applied, so sent now, once
    assert shopper.earned() == [40]
    assert _admin(shopper, "GET", "/movements/review").json["movements"] == []
    assert _admin(shopper, "POST", f"/movements/{grant.id}/recheck").status_code == 404  # decided already


def test_a_movement_the_merchant_drops_moves_nothing(shopper):
    grant = _grant_for_review(shopper)
    balance = shopper.balance()
    assert _admin(shopper, "POST", f"/movements/{grant.id}/not_applied",
                  shop="other-shop.myshopify.com").status_code == 404  # another shop's admin
    assert _admin(shopper, "POST", f"/movements/{grant.id}/forgive").status_code == 404  # no such action
    assert _admin(shopper, "POST", f"/movements/{grant.id}/not_applied").status_code == 200
    shopper.settle()
    assert (shopper.balance(), shopper.earned()) == (balance, [])
    assert [m.state for m in shopper.moves()] == ["refused"]
    assert _admin(shopper, "GET", "/movements/review").json["movements"] == []


def test_the_merchant_sets_earning_rules_with_field_level_errors(shopper):
    before = _admin(shopper, "GET", "/earning").json
    assert before == {"earn_yen_per_point": 100, "earn_on": "paid", "earn_hold_days": 0,
                      "coupon_return_unused": True, "point_expiry_months": 0}
    bad = {"earn_yen_per_point": -1, "earn_on": "shipped", "earn_hold_days": "3", "coupon_return_unused": "yes",
           "point_expiry_months": 0}
    resp = _admin(shopper, "PUT", "/earning", json=bad)
    assert resp.status_code == 422
    assert set(resp.json["errors"]) == {"earn_yen_per_point", "earn_on", "earn_hold_days", "coupon_return_unused"}
    assert resp.json["errors"]["earn_on"]["code"] == "earn_trigger"
    assert _admin(shopper, "GET", "/earning").json == before
    rules = {"earn_yen_per_point": 200, "earn_on": "paid", "earn_hold_days": 0, "coupon_return_unused": True,
             "point_expiry_months": 12}
    assert _admin(shopper, "PUT", "/earning", json=rules).json == rules
    shopper.order(order(subtotal="10000"))
    shopper.settle()
    assert shopper.earned() == [50]  # the shop's rate, not the default
    expiry = shopper.smaregi.contracts[CONTRACT].points[shopper.taro["customerId"]]["pointExpireDate"]
    today = datetime.now(JST).date()
    assert expiry.startswith(f"{today.year + 1}-{today.month:02d}")  # a year ahead


def test_the_merchant_sees_earned_taken_back_given_back_owed_and_pending(shopper):
    coupon = _coupon(shopper)  # 1250 → 750
    shopper.order(order(subtotal="10000"))
    shopper.settle()  # → 850
    shopper.spend_at_register(820)  # → 30
    shopper.order(order(subtotal="0", financial="refunded", cancelled=True, minutes=5), topic="orders/cancelled")
    shopper.settle()  # takes 30, 70 owed
    assert _admin(shopper, "GET", "/earning/summary").json["total"]["owed"] == 70
    shopper.hand_back(coupon["id"])  # 500 back, of which 70 pay off what is owed
    shopper.rules(earn_hold_days=5)
    shopper.order(order(order_id=5002, subtotal="3000"))
    shopper.settle()
    summary = _admin(shopper, "GET", "/earning/summary").json
    assert summary["customers"] == [{"customer_id": TARO, "earned_online": 100, "taken_back": 30,
                                     "given_back": 500, "owed": 0, "pending": 30}]
    assert summary["total"] == {"earned_online": 100, "taken_back": 30, "given_back": 500, "owed": 0, "pending": 30}
    assert shopper.balance() == 430
    assert _admin(shopper, "GET", "/earning/summary", shop="other-shop.myshopify.com").json["customers"] == []


# -- one ledger ---------------------------------------------------------------------------------------------

def test_a_conversion_deduction_is_a_movement_in_the_same_ledger(shopper):
    coupon = _coupon(shopper)
    shopper.order(order(subtotal="2000"))
    shopper.settle()
    with shopper.services.db.transaction() as s:
        applied = movements.applied_movements(s, s.scalar(select(Shop.id)), TARO)
        shown = [(m.kind, m.points, m.conversion_id, m.smaregi_transaction_id) for m in applied]
    deduction, grant = (t["transactionHeadId"] for t in shopper.smaregi.contracts[CONTRACT].transactions)
    assert shown == [("conversion_deduction", -500, coupon["id"], deduction), ("grant", 20, None, grant)]


def test_a_data_request_includes_the_customers_orders_and_point_movements(shopper):
    from app.models import DataRequest

    shopper.order(order(subtotal="4000"))
    shopper.settle()
    shopper.order({"shop_id": 1, "shop_domain": SHOP, "customer": {"id": TARO}, "data_request": {"id": 9}},
                  topic="customers/data_request")
    with shopper.services.db.transaction() as s:
        export = s.scalar(select(DataRequest.export))
    assert [o["order_id"] for o in export["orders"]] == [5001]
    assert [(m["kind"], m["points"], m["state"]) for m in export["point_movements"]] == [("grant", 40, "applied")]
