"""Points → coupon: every point deducted is backed by exactly one usable code, and every code by points."""
from __future__ import annotations

import json
import multiprocessing
import threading
import time
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from app import create_app
from app.dev.signing import app_home_id_token
from app.models import Conversion, Shop, ShopSettings, utcnow
from app.points.saga import Saga, sweep
from app.sync import directory
from app.sync.worker import Worker
from app.webhooks.dispatch import Delivery, record

from .conftest import CONTRACT, SHOP, make_env
from .helpers import customer, proxy_url

TARO, ALICE = 8840734670934, 8840734670935


class Given:
    """A shop that installed the app, and Taro: a synced member with 1,250 points."""

    def __init__(self, services, smaregi, shopify):
        self.services, self.smaregi, self.shopify = services, smaregi, shopify
        client = create_app(services=services).test_client()
        token = app_home_id_token(services.config.shopify_api_key, services.config.shopify_api_secret, SHOP)
        assert client.get(f"/?shop={SHOP}&host=x&id_token={token}").status_code == 200
        self.client = client
        self.taro = smaregi.add_member(CONTRACT, customerCode=str(TARO), lastName="山田", firstName="太郎",
                                       mailAddress="taro@example.com", points=1250, expires_on="2027-03-31")
        self.alice = smaregi.add_member(CONTRACT, customerCode=str(ALICE), lastName="Smith", firstName="Alice",
                                        points=80)
        shopify.add_customer(SHOP, TARO, firstName="太郎")
        shopify.add_customer(SHOP, ALICE, firstName="Alice")
        directory.import_pages(services.db, services.smaregi.contract(CONTRACT))
        record(services.db, services.config, Delivery(SHOP, "customers/create", "w1", None, None, customer(TARO)))
        Worker(services, "w").drain()

    def convert(self, points, key=None, who=TARO, body=None, content_type="application/json"):
        url = proxy_url(self.services.config.shopify_api_secret, "conversions", who)
        payload = body if body is not None else {"points": points, "idempotency_key": key or str(uuid.uuid4())}
        data = json.dumps(payload) if content_type == "application/json" else payload
        return self.client.post(url, data=data, content_type=content_type)

    def conversions(self, who=TARO):
        return self.client.get(proxy_url(self.services.config.shopify_api_secret, "conversions", who)).json

    def balance(self, member=None) -> int:
        return self.smaregi.balance(CONTRACT, (member or self.taro)["customerId"])

    def active_codes(self):
        return self.shopify.active_discounts(SHOP)

    def settings(self, **values):
        with self.services.db.transaction() as s:
            s.add(ShopSettings(shop_id=s.scalar(select(Shop.id)), **values))

    def ledger(self) -> list[Conversion]:
        with self.services.db.transaction() as s:
            return list(s.scalars(select(Conversion).order_by(Conversion.created_at)))

    def deductions(self) -> list[dict]:
        return [t for t in self.smaregi.contracts[CONTRACT].transactions if t["transactionHeadDivision"] == "7"]


@pytest.fixture
def given(services, smaregi_em, shopify_em):
    return Given(services, smaregi_em[0], shopify_em[0])


def test_happy_path_turns_500_points_into_a_500_yen_code(given):
    resp = given.convert(500, key="key-happy-0001")
    assert resp.status_code == 201
    c = resp.json["conversion"]
    assert (c["status"], c["points"], c["amount"], c["currency"], c["balance_after"]) == ("completed", 500, 500, "JPY", 750)
    assert c["code"].startswith("70934-") and c["code"].endswith("-500") and len(c["code"].split("-")[1]) == 6
    assert c["expires_at"].endswith("+09:00")
    assert given.balance() == 750
    [code] = given.active_codes()
    assert (code["code"], code["amount"], code["usageLimit"], code["appliesOncePerCustomer"]) == (c["code"], "500", 1, True)
    assert code["customers"] == [f"gid://shopify/Customer/{TARO}"]
    coupons = json.loads(given.shopify.metafield(SHOP, f"gid://shopify/Customer/{TARO}", "loyalty", "coupons")["value"])
    assert [x["code"] for x in coupons] == [c["code"]]
    assert given.conversions()["conversions"][0]["code"] == c["code"]
    balance = given.client.get(proxy_url(given.services.config.shopify_api_secret, "balance", TARO)).json
    assert balance["points"]["balance"] == 750  # not a cached 1,250
    assert balance["conversion"]["remaining_today"] == 9500


def test_the_same_key_again_returns_the_same_conversion_and_calls_nothing(given):
    first = given.convert(500, key="key-replay-0001").json["conversion"]
    calls = (given.smaregi.stats["requests"], given.shopify.counts["graphql"])
    again = given.convert(500, key="key-replay-0001")
    assert again.status_code == 200 and again.json["conversion"] == first
    assert (given.smaregi.stats["requests"], given.shopify.counts["graphql"]) == calls
    assert given.balance() == 750 and len(given.active_codes()) == 1


@pytest.mark.parametrize("case,expected", [
    ("form_post", ("invalid_request", 400)), ("no_key", ("invalid_request", 400)),
    ("string_points", ("invalid_request", 400)), ("unit", ("not_multiple_of_unit", 422)),
    ("minimum", ("below_minimum", 422)), ("unit_before_minimum", ("not_multiple_of_unit", 422)),
    ("daily_limit", ("daily_limit_exceeded", 422)), ("balance", ("insufficient_points", 422)),
])
def test_each_rule_refuses_with_its_code_and_changes_nothing(given, case, expected):
    if case in ("minimum", "unit_before_minimum"):
        given.settings(points_minimum=300)
    if case == "daily_limit":
        given.settings(points_daily_limit=1000)
        assert given.convert(600).status_code == 201
    before = (given.balance(), len(given.active_codes()), len(given.ledger()))
    resp = {
        "form_post": lambda: given.convert(None, body={"points": "500", "idempotency_key": "k" * 10},
                                           content_type="application/x-www-form-urlencoded"),
        "no_key": lambda: given.convert(None, body={"points": 500}),
        "string_points": lambda: given.convert(None, body={"points": "500", "idempotency_key": "k" * 10}),
        "unit": lambda: given.convert(150),
        "minimum": lambda: given.convert(200),
        "unit_before_minimum": lambda: given.convert(250),
        "daily_limit": lambda: given.convert(500),
        "balance": lambda: given.convert(2000),
    }[case]()
    assert (resp.json["error"]["code"], resp.status_code) == expected
    assert (given.balance(), len(given.active_codes()), len(given.ledger())) == before


def test_a_customer_can_never_convert_another_customers_points(given):
    # Signed in as Alice, naming Taro in the body: only the signed customer counts.
    resp = given.convert(None, who=ALICE, body={"points": 100, "idempotency_key": "alice-key-1", "customer_id": TARO})
    assert resp.json["error"]["code"] == "insufficient_points"  # Alice has 80
    assert given.balance() == 1250
    taro = given.convert(500, key="taro-key-0001").json["conversion"]
    stolen = given.convert(500, key="taro-key-0001", who=ALICE)
    assert stolen.status_code == 403 and stolen.json["error"]["code"] == "forbidden"
    assert taro["code"] not in json.dumps(given.conversions(who=ALICE))


def test_when_smaregi_refuses_the_deduction_the_code_is_deleted(given):
    given.smaregi.add_fault(match=r"POST .*/point/add", status=400, count=1)  # spent at the register meanwhile
    resp = given.convert(500)
    assert resp.status_code == 422 and resp.json["error"]["code"] == "insufficient_points"
    assert given.active_codes() == []
    assert given.ledger()[0].status == "failed" and given.balance() == 1250


def test_when_shopify_cannot_create_the_code_nothing_is_deducted(given):
    given.shopify.add_fault(match="discountCodeBasicCreate", status=500)
    resp = given.convert(500)
    assert resp.status_code == 503 and resp.json["error"]["code"] == "shopify_unavailable"
    assert given.balance() == 1250 and given.deductions() == []
    assert given.ledger()[0].status == "failed"
    replay = given.convert(500, key=given.ledger()[0].idempotency_key)
    assert replay.json["error"]["code"] == "shopify_unavailable"  # the original outcome, again


def test_a_deduction_applied_whose_answer_is_lost_is_reconciled_not_repeated(given):
    given.smaregi.add_fault(match=r"POST .*/point/add", stall_after_apply_s=5, count=1)
    resp = given.convert(500)
    assert resp.status_code == 201 and resp.json["conversion"]["status"] == "completed"
    assert given.balance() == 750 and len(given.deductions()) == 1
    assert given.ledger()[0].smaregi_transaction_ids == [given.deductions()[0]["transactionHeadId"]]
    assert len(given.active_codes()) == 1


def test_a_metafield_failure_does_not_undo_the_conversion(given):
    given.shopify.add_fault(match="metafieldsSet", status=500)
    resp = given.convert(500)
    assert resp.status_code == 201 and given.balance() == 750
    assert given.ledger()[0].metafield_recorded is False
    given.shopify.faults.clear()
    with given.services.db.transaction() as s:
        s.execute(update(Conversion).values(leased_until=None))
    sweep(given.services)
    assert given.ledger()[0].metafield_recorded is True


def test_the_balance_right_after_a_conversion_shows_the_points_gone(given):
    def shown() -> int:
        url = proxy_url(given.services.config.shopify_api_secret, "balance", TARO)
        return given.client.get(url).json["points"]["balance"]

    assert shown() == 1250
    assert given.convert(500).status_code == 201
    assert shown() == 750  # not the balance read a moment ago (reloads within 5 s reuse it)


def test_a_crash_after_the_code_was_created_is_compensated_by_the_sweeper(given):
    from app.points import conversion as conv
    from app.points.member import Shopper

    # The request reserved and created the code, then its process died.
    reserved, _ = conv._reserve(given.services, _shop_id(given), Shopper(SHOP, TARO),
                                _settings(given), given.taro["customerId"], 500, "crash-key-001")
    saga = Saga(given.services)
    saga._create_code(reserved, SHOP)
    assert len(given.active_codes()) == 1
    assert sweep(given.services) == 0  # its lease still holds
    with given.services.db.transaction() as s:
        s.execute(update(Conversion).values(leased_until=utcnow() - timedelta(seconds=1)))
    sweep(given.services)
    assert given.ledger()[0].status == "failed"
    assert given.active_codes() == [] and given.balance() == 1250


def test_a_crash_after_the_deduction_is_completed_by_the_sweeper(given, monkeypatch):
    from app.points import conversion as conv
    from app.points.member import Shopper

    reserved, _ = conv._reserve(given.services, _shop_id(given), Shopper(SHOP, TARO), _settings(given),
                                given.taro["customerId"], 500, "crash-key-002")
    saga = Saga(given.services)

    def process_dies(*_args, **_kwargs):  # after Smaregi deducted, before the ledger recorded it
        raise SystemExit

    monkeypatch.setattr(saga.discounts, "set_coupons", process_dies)
    with pytest.raises(SystemExit):
        saga._deduct(saga._create_code(reserved, SHOP), SHOP)
    assert given.ledger()[0].status == "deducting" and given.balance() == 750
    with given.services.db.transaction() as s:
        s.execute(update(Conversion).values(leased_until=None))
    sweep(given.services)
    [c] = given.ledger()
    assert (c.status, c.metafield_recorded) == ("completed", True)
    assert given.balance() == 750 and len(given.active_codes()) == 1


def test_an_undecidable_deduction_ends_in_review_with_the_code_deactivated(given, monkeypatch):
    from app.points import saga as saga_module

    given.smaregi.add_fault(match=r"POST .*/point/add", stall_after_apply_s=5, count=1)
    given.smaregi.add_fault(match=r"GET .*/transactions", status=503)  # and we cannot look
    resp = given.convert(500)
    assert resp.status_code == 504 and resp.json["error"]["code"] == "pos_timeout"
    assert given.conversions()["conversions"][0]["status"] == "pending"
    monkeypatch.setattr(saga_module, "MAX_SWEEP_ATTEMPTS", 2)
    for _ in range(2):
        with given.services.db.transaction() as s:
            s.execute(update(Conversion).values(leased_until=None, next_attempt_at=None))
        sweep(given.services)
    [c] = given.ledger()
    assert c.status == "needs_review" and "transactions" in c.error_message
    assert given.active_codes() == []  # deactivated until a person decides
    assert given.convert(100).status_code == 201  # and the customer is not blocked


def _shop_id(given) -> int:
    with given.services.db.transaction() as s:
        return s.scalar(select(Shop.id))


def _settings(given):
    from app.settings import effective_settings

    with given.services.db.transaction() as s:
        return effective_settings(s, s.scalar(select(Shop)), given.services.config)


# -- the coupon list (`loyalty.coupons`), written whole from the ledger ------------------------------------

def _coupon_list(given) -> list[tuple]:
    field = given.shopify.metafield(SHOP, f"gid://shopify/Customer/{TARO}", "loyalty", "coupons")
    return [(c["code"], c["status"], c.get("order_name")) for c in json.loads(field["value"])]


def _sweep_now(given) -> None:
    with given.services.db.transaction() as s:
        s.execute(update(Conversion).values(leased_until=None, next_attempt_at=None))
    sweep(given.services)


def test_the_coupon_list_is_the_ledgers_and_replaces_whatever_was_there(given):
    with given.shopify.lock:  # the `loyalty` namespace is not reserved: someone wrote there before us
        given.shopify.shop(SHOP).metafields[(f"gid://shopify/Customer/{TARO}", "loyalty", "coupons")] = {
            "value": '[{"code": "SOMEONE-ELSES"}]', "type": "json"}
    first, second = (given.convert(500).json["conversion"]["code"] for _ in range(2))
    assert _coupon_list(given) == [(first, "completed", None), (second, "completed", None)]
    assert [c.metafield_recorded for c in given.ledger()] == [True, True]


def test_a_list_written_while_a_conversion_is_in_flight_is_written_again_later(given):
    from app.points import conversion as conv
    from app.points.member import Shopper

    first = given.convert(500).json["conversion"]["code"]
    with given.services.db.transaction() as s:  # an order used it (orders/earning.py marks it so)
        s.execute(update(Conversion).values(status="used", order_name="#1001", metafield_recorded=False))
    reserved, _ = conv._reserve(given.services, _shop_id(given), Shopper(SHOP, TARO), _settings(given),
                                given.taro["customerId"], 500, "list-race-0001")
    sweep(given.services)  # writes `used`; the reserved conversion's own write may land after it
    assert _coupon_list(given) == [(first, "used", "#1001")]
    used = given.ledger()[0]
    assert not used.metafield_recorded and used.attempts == 0  # contended, not failed: no attempt used up
    assert used.leased_until is None and used.next_attempt_at > utcnow()  # written again in 30 s
    second = Saga(given.services).run(reserved).code
    assert _coupon_list(given) == [(first, "used", "#1001"), (second, "completed", None)]
    _sweep_now(given)
    assert [c.metafield_recorded for c in given.ledger()] == [True, True]
    assert _coupon_list(given) == [(first, "used", "#1001"), (second, "completed", None)]


def test_a_list_the_ledger_changed_under_while_it_was_written_is_written_again(given, monkeypatch):
    first, second = (given.convert(500).json["conversion"]["code"] for _ in range(2))
    with given.services.db.transaction() as s:
        s.execute(update(Conversion).where(Conversion.code == first).values(
            status="used", order_name="#1001", metafield_recorded=False))
    saga = Saga(given.services)
    write = saga.discounts.set_coupons

    def meanwhile_another_order_uses_the_second(*args):
        with given.services.db.transaction() as s:
            s.execute(update(Conversion).where(Conversion.code == second).values(
                status="used", order_name="#1002", metafield_recorded=False))
        write(*args)  # the list read before that change: `second` still completed

    monkeypatch.setattr(saga.discounts, "set_coupons", meanwhile_another_order_uses_the_second)
    [used] = [c for c in given.ledger() if c.code == first]
    saga.sweep_one(used.id)
    assert _coupon_list(given) == [(first, "used", "#1001"), (second, "completed", None)]
    assert not any(c.metafield_recorded for c in given.ledger())  # neither is the last word yet
    _sweep_now(given)
    assert _coupon_list(given) == [(first, "used", "#1001"), (second, "used", "#1002")]
    assert all(c.metafield_recorded for c in given.ledger())


def test_the_coupon_list_holds_every_usable_coupon_and_the_others_that_changed_last(given):
    from app.points.ledger import COUPON_LIST_LIMIT

    shop_id, now = _shop_id(given), utcnow()

    def old(code: str, status: str, created_days_ago: int, changed_days_ago: int) -> Conversion:
        return Conversion(id=str(uuid.uuid4()), shop_id=shop_id, shopify_customer_id=TARO, idempotency_key=code,
                          points=100, amount=100, currency="JPY", code=code, local_date=now.date(), status=status,
                          metafield_recorded=True, expires_at=now + timedelta(days=30),
                          created_at=now - timedelta(days=created_days_ago),
                          updated_at=now - timedelta(days=changed_days_ago))
    with given.services.db.transaction() as s:
        s.add_all([old(f"LIVE-{i}", "completed", 200 + i, 200 + i) for i in range(3)])  # unused for months
        # Used coupons: the one made first was used last.
        s.add_all([old(f"USED-{i:04}", "used", 100 - i, 1 + i) for i in range(COUPON_LIST_LIMIT + 5)])
    newest = given.convert(500).json["conversion"]["code"]
    listed = _coupon_list(given)
    assert [code for code, status, _ in listed if status == "completed"] == ["LIVE-2", "LIVE-1", "LIVE-0", newest]
    used = [code for code, status, _ in listed if status == "used"]
    assert used == [f"USED-{i:04}" for i in range(COUPON_LIST_LIMIT)]  # the five used longest ago fell off


def test_the_coupon_list_stays_within_shopifys_size_limit_with_the_newest_usable_coupons(given):
    """A JSON metafield holds at most 128 KB: a customer holding more than USABLE_LIST_LIMIT unused
    coupons finds the newest there (and every one in the proxy's listing)."""
    from app.points.ledger import USABLE_LIST_LIMIT

    shop_id, now = _shop_id(given), utcnow()
    with given.services.db.transaction() as s:
        s.add_all([Conversion(id=str(uuid.uuid4()), shop_id=shop_id, shopify_customer_id=TARO, idempotency_key=f"k{i}",
                              points=100, amount=100, currency="JPY", code=f"LIVE-{i:04}",
                              local_date=(now - timedelta(days=400 - i)).date(), status="completed",
                              metafield_recorded=True, expires_at=now + timedelta(days=30),
                              created_at=now - timedelta(days=400 - i)) for i in range(USABLE_LIST_LIMIT + 1)])
    newest = given.convert(500).json["conversion"]["code"]
    field = given.shopify.metafield(SHOP, f"gid://shopify/Customer/{TARO}", "loyalty", "coupons")
    listed = [c["code"] for c in json.loads(field["value"])]
    assert listed == [f"LIVE-{i:04}" for i in range(1, USABLE_LIST_LIMIT + 1)] + [newest]
    assert len(field["value"].encode()) < 128 * 1024


# -- Postgres: concurrency and a real crash ----------------------------------------------------------------

@pytest.fixture
def pg_given(pg_url, smaregi_em, shopify_em, make_services):
    services = make_services(pg_url, smaregi_url=smaregi_em[1], shopify_url=shopify_em[1])
    return Given(services, smaregi_em[0], shopify_em[0])


def ten_tabs_convert_at_once(given, post) -> None:
    """Ten requests for 500 points each, distinct keys, at the same moment: the balance never goes
    negative and every code issued is backed by exactly its points deducted."""
    results: list[int] = []

    def tab(i):
        client = create_app(services=given.services).test_client()
        results.append(post(client, json.dumps({"points": 500, "idempotency_key": f"tab-{i}-xxxxxx"})).status_code)

    threads = [threading.Thread(target=tab, args=(i,)) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    deducted = sum(int(t["spendPoint"]) for t in given.deductions())
    issued = sum(int(d["amount"]) for d in given.active_codes())
    assert given.balance() >= 0
    assert issued == deducted == 1250 - given.balance()
    assert results.count(201) == len(given.active_codes()) >= 1
    assert set(results) <= {201, 409, 422}


@pytest.mark.postgres
def test_ten_tabs_at_once_cannot_spend_the_same_points_twice(pg_given):
    url = proxy_url(pg_given.services.config.shopify_api_secret, "conversions", TARO)
    ten_tabs_convert_at_once(pg_given, lambda client, body: client.post(url, data=body,
                                                                        content_type="application/json"))


def _convert_then_die(env, started):
    from app.config import load_config
    from app.points.conversion import convert
    from app.points.member import Shopper
    from app.services import Services

    started.set()
    convert(Services.build(load_config(env)), Shopper(SHOP, TARO), 500, "killed-key-0001")


@pytest.mark.postgres
def test_a_process_killed_mid_deduction_leaves_nothing_half_done(pg_given, smaregi_em, shopify_em, pg_url):
    given = pg_given
    given.smaregi.add_fault(match=r"POST .*/point/add", latency_s=1.0, count=1)  # slow: we kill meanwhile
    ctx = multiprocessing.get_context("spawn")
    started = ctx.Event()
    proc = ctx.Process(target=_convert_then_die, args=(make_env(pg_url, smaregi_url=smaregi_em[1],
                                                                 shopify_url=shopify_em[1]), started))
    proc.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not given.smaregi.stats["point_changes_received"]:
        time.sleep(0.01)
    assert given.ledger()[0].status == "deducting"
    proc.kill()  # Smaregi has the request; its answer will have no one to go to
    proc.join(10)
    time.sleep(1.5)  # Smaregi finishes what it was given
    with given.services.db.transaction() as s:
        s.execute(update(Conversion).values(leased_until=None, next_attempt_at=None))
    sweep(given.services)
    [c] = given.ledger()
    deducted = sum(int(t["spendPoint"]) for t in given.deductions())
    assert c.status == "completed"  # the deduction happened, so the sweeper found it and finished
    assert deducted == 500 and given.balance() == 750
    assert [d["code"] for d in given.active_codes()] == [c.code]


# -- issue 10: the money path's findings ---------------------------------------------------------------

def test_while_the_deduction_is_undecided_no_code_is_shown_anywhere(given):
    """Finding 5: Smaregi failing the deduction must not leave a live code in the shopper's listing."""
    given.smaregi.add_fault(match=r"POST .*/point/add", status=503)  # ambiguous: maybe applied
    given.smaregi.add_fault(match=r"GET .*/transactions", status=503)
    resp = given.convert(500)
    code = given.ledger()[0].code
    assert resp.status_code == 504 and code not in json.dumps(resp.json)
    [listed] = given.conversions()["conversions"]
    assert (listed["status"], listed["code"]) == ("pending", None)
    admin = given.client.get("/admin/api/conversions", headers=_admin_headers(given)).json
    assert [c["code"] for c in admin["conversions"]] == [None]
    assert given.shopify.metafield(SHOP, f"gid://shopify/Customer/{TARO}", "loyalty", "coupons") is None
    assert given.balance() == 1250


def test_a_compensation_that_keeps_failing_goes_to_review_and_does_not_block_the_customer(given, monkeypatch):
    from app.points import saga as saga_module

    monkeypatch.setattr(saga_module, "MAX_SWEEP_ATTEMPTS", 3)
    given.smaregi.add_fault(match=r"POST .*/point/add", status=400, count=1)  # refused: must delete the code
    shopify_down = [given.shopify.add_fault(match=m, status=500)
                    for m in ("discountCodeDelete", "discountCodeDeactivate", "codeDiscountNodeByCode")]
    assert given.convert(500).json["error"]["code"] == "insufficient_points"
    assert given.ledger()[0].status == "compensating"
    for _ in range(3):
        with given.services.db.transaction() as s:
            s.execute(update(Conversion).values(leased_until=None, next_attempt_at=None))
        sweep(given.services)
    [c] = given.ledger()
    assert (c.status, c.error_code) == ("needs_review", "compensation_failed")
    for fault in shopify_down:
        given.shopify.faults.remove(fault)
    assert given.convert(500).status_code == 201  # not 409 conversion_in_progress
    assert given.balance() == 750


def test_a_needs_review_conversion_counts_toward_the_daily_limit(given, monkeypatch):
    from app.points import saga as saga_module

    given.settings(points_daily_limit=1000)
    given.smaregi.add_fault(match=r"POST .*/point/add", stall_after_apply_s=5, count=1)
    given.smaregi.add_fault(match=r"GET .*/transactions", status=503)
    assert given.convert(600).status_code == 504
    monkeypatch.setattr(saga_module, "MAX_SWEEP_ATTEMPTS", 1)
    with given.services.db.transaction() as s:
        s.execute(update(Conversion).values(leased_until=None, next_attempt_at=None))
    sweep(given.services)
    assert given.ledger()[0].status == "needs_review"
    given.smaregi.faults.clear()
    resp = given.convert(500)  # 600 may already have left the member: only 400 remain today
    assert (resp.status_code, resp.json["error"]["code"]) == (422, "daily_limit_exceeded")


def _admin_headers(given) -> dict[str, str]:
    cfg = given.services.config
    return {"Authorization": f"Bearer {app_home_id_token(cfg.shopify_api_key, cfg.shopify_api_secret, SHOP)}"}


@pytest.mark.postgres
def test_two_requests_with_one_key_at_the_same_moment_never_get_a_500(pg_given):
    given = pg_given
    given.smaregi.add_fault(match=r"POST .*/point/add", latency_s=0.5, count=1)  # the first is mid-saga
    url = proxy_url(given.services.config.shopify_api_secret, "conversions", TARO)
    barrier, answers = threading.Barrier(4), []

    def tab():
        client = create_app(services=given.services).test_client()
        barrier.wait()
        resp = client.post(url, data=json.dumps({"points": 500, "idempotency_key": "same-key-at-once"}),
                           content_type="application/json")
        answers.append((resp.status_code, resp.is_json and (resp.json.get("error") or {}).get("code")))

    threads = [threading.Thread(target=tab) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(answers) == 4
    assert [a for a in answers if a[0] == 201] == [(201, None)]
    assert all(a in ((200, None), (409, "conversion_in_progress")) for a in answers if a[0] != 201), answers
    assert len(given.deductions()) == 1 and given.balance() == 750
    again = given.convert(500, key="same-key-at-once")
    assert again.status_code == 200 and again.json["conversion"]["status"] == "completed"


@pytest.mark.postgres
def test_a_rule_combination_beyond_32_bits_converts(pg_given):
    """10,000 yen per point x 300,000 points = 3,000,000,000 yen: more than a 32-bit column holds."""
    given = pg_given
    given.settings(yen_per_point=10_000, points_daily_limit=1_000_000)
    rich = given.smaregi.add_member(CONTRACT, customerCode="8840734670936", lastName="Rich",
                                   firstName="Ren", points=500_000)
    given.shopify.add_customer(SHOP, 8840734670936)
    resp = given.convert(300_000, who=8840734670936)
    assert resp.status_code == 201, resp.json
    assert (resp.json["conversion"]["amount"], resp.json["conversion"]["balance_after"]) == (3_000_000_000, 200_000)
    assert given.balance(rich) == 200_000
