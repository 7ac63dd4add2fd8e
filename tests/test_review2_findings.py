"""Second independent review (security and money path): reproductions. Each test failed against the
reviewed code (main at 0463731) because of the finding its comment names; they now hold the fixes.
F1 NUL characters → 500 on Postgres; F2 expiry give-backs blocked for every shop by unreachable
ones; F3 concurrent review confirmations → 500; F4 a refused idempotency key is judged afresh; F5
deeply nested JSON → 500; F6 a malformed loyalty.coupons metafield strands deducted points; F7
updated_at overflow → 500; F8 a member deleted at the register can still hand a coupon back (code
withdrawn, points never land)."""
from __future__ import annotations

from app.dev.signing import app_home_id_token, customer_account_token

from .conftest import CONTRACT, SHOP
from .helpers import deliver, proxy_url
from .test_online_earning import TARO, order, pg_shopper, shopper  # noqa: F401  (fixtures)


def _admin(s, method, path, **kw):
    cfg = s.services.config
    token = app_home_id_token(cfg.shopify_api_key, cfg.shopify_api_secret, SHOP)
    return s.client.open(f"/admin/api{path}", method=method, headers={"Authorization": f"Bearer {token}"}, **kw)


def _coupon(s, points=500):
    resp = s.convert(points)
    assert resp.status_code == 201, resp.json
    return resp.json["conversion"]


# FINDING F1 (medium, robustness; Postgres only): a NUL character (U+0000) anywhere a request's text
# reaches a Postgres text/JSON column is a 500, never a clear 4xx. psycopg refuses NUL in text
# ("PostgreSQL text fields cannot contain NUL (0x00) bytes"); SQLite stores it, so the SQLite runs
# of the suite never see it. Verified shopper paths (a signed proxy request or a customer-account
# token whose path id holds %00), the merchant's admin API (?q=, ?status=, path ids) and — worst —
# verified Shopify webhooks (an order name / discount code / customer name holding \u0000) answer
# 500: Shopify retries the delivery for 48 hours and may drop the subscription, and the order or
# customer is never recorded (its points never granted, the member never synced).
# DESIGN: "Bad input → a clear error and nothing changed"; webhooks: "400 on a malformed body after
# a valid HMAC, 200 otherwise". At fault: app/points/returns.py:43 (conversion id into the query),
# app/merchant.py:255-261 and :273 (q, status, conversion id), app/orders/intake.py:126 (name,
# facts.codes), app/sync/intake.py:54/82 (customer payload into member_links.desired).
# Fix: one check at the edges — path ids that are not a UUID are `not_found` (proxy, account,
# admin); admin query text with a control character is 400; in webhook parsing
# (app/webhooks/delivery.py) strip or refuse U+0000 in every string of a verified payload (400
# invalid_request, or drop the character: Shopify's data is not ours to refuse), before any insert.
def test_F1a_a_shoppers_return_of_an_id_holding_nul_is_not_found_not_500(pg_shopper):  # noqa: F811
    s = pg_shopper
    resp = s.client.post(proxy_url(s.services.config.shopify_api_secret, "conversions/ab%00cd/return", TARO))
    assert (resp.status_code, (resp.json or {}).get("error", {}).get("code")) == (404, "not_found"), resp.status_code


def test_F1b_the_customer_account_return_of_an_id_holding_nul_is_not_found_not_500(pg_shopper):  # noqa: F811
    s = pg_shopper
    cfg = s.services.config
    token = customer_account_token(cfg.shopify_api_key, cfg.shopify_api_secret, SHOP, TARO)
    resp = s.client.post("/customer-account/conversions/ab%00cd/return", headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 404, resp.status_code


def test_F1c_the_admin_conversion_search_with_nul_is_a_clean_answer(pg_shopper):  # noqa: F811
    for query in ("q=%00", "status=%00"):
        resp = _admin(pg_shopper, "GET", f"/conversions?{query}")
        assert resp.status_code < 500, (query, resp.status_code)


def test_F1d_the_admin_review_of_an_id_holding_nul_is_not_found(pg_shopper):  # noqa: F811
    resp = _admin(pg_shopper, "POST", "/conversions/a%00b/review", json={"points_were_deducted": False})
    assert resp.status_code == 404, resp.status_code


def test_F1e_a_signed_order_webhook_with_nul_in_its_name_is_not_a_500(pg_shopper):  # noqa: F811
    s = pg_shopper
    o = order(subtotal="1000")
    o["name"] = "#50\u000001"
    resp = deliver(s.client, s.services.config.shopify_api_secret, "orders/paid", o)
    assert resp.status_code in (200, 400), resp.status_code


def test_F1f_a_signed_order_webhook_with_nul_in_a_discount_code_is_not_a_500(pg_shopper):  # noqa: F811
    s = pg_shopper
    resp = deliver(s.client, s.services.config.shopify_api_secret, "orders/paid",
                   order(subtotal="1000", codes=["AB\u0000C"]))
    assert resp.status_code in (200, 400), resp.status_code


def test_F1g_a_signed_customer_webhook_with_nul_in_a_name_is_not_a_500(pg_shopper):  # noqa: F811
    from .helpers import customer

    s = pg_shopper
    c = customer(123456)
    c["first_name"] = "太\u0000郎"
    resp = deliver(s.client, s.services.config.shopify_api_secret, "customers/create", c)
    assert resp.status_code in (200, 400), resp.status_code


def test_F1h_merchant_settings_with_nul_are_a_field_error_not_500(pg_shopper):  # noqa: F811
    current = _admin(pg_shopper, "GET", "/settings").json
    fields = ("yen_per_point", "points_unit", "points_minimum", "points_daily_limit", "coupon_valid_days",
              "blank_name_placeholder", "rank_labels", "keep_store_member_codes", "sync_enabled")
    body = {k: current.get(k) for k in fields}
    assert _admin(pg_shopper, "PUT", "/settings", json=body).status_code == 200  # as it stands: saved
    body["blank_name_placeholder"] = "名無\u0000し"
    resp = _admin(pg_shopper, "PUT", "/settings", json=body)
    assert resp.status_code in (400, 422), resp.status_code


# FINDING F2 (medium-high, money withheld from every shop): the expiry give-back job takes the 20
# oldest expired `completed` coupons of ALL shops (order by expires_at, limit 20), with no lease,
# no next attempt and no attempt count. A coupon whose code cannot be withdrawn (its shop uninstalled
# the app, its token expired or was revoked, Shopify refuses it) stays `completed` and is picked
# first again on every run. Twenty such coupons anywhere — one uninstalled shop is enough — and no
# other shop's expired coupon ever gives its points back (DESIGN: "A coupon that expires unused
# gives its points back within an hour of expiry"). Nothing tells the merchants.
# At fault: app/points/returns.py:127-150 (give_back_expired: the selection and the bare `except
# SHOPIFY_FAILURES: log`). Fix: skip shops without a usable token (uninstalled) in the query,
# and give each failed coupon a next_attempt_at with back-off (conversions already have
# next_attempt_at/attempts columns) that the selection honours, so failures cannot hold the head
# of the queue; after N attempts surface it to the merchant.
def test_F2_expired_coupons_of_a_shop_that_cannot_be_reached_do_not_block_every_other_shops_give_backs(shopper):  # noqa: F811
    import uuid as _uuid
    from datetime import UTC, date, datetime, timedelta

    from sqlalchemy import update

    from app.models import Conversion, Shop
    from app.points.returns import EXPIRY_BATCH, give_back_expired

    _coupon(shopper)  # Taro, 1250 → 750
    now = datetime.now(UTC)
    with shopper.services.db.transaction() as s:
        s.execute(update(Conversion).values(expires_at=now - timedelta(minutes=5)))
        gone = Shop(domain="gone-shop.myshopify.com", installed_at=now - timedelta(days=90),
                    uninstalled_at=now - timedelta(days=1))
        s.add(gone)
        s.flush()
        for i in range(EXPIRY_BATCH):  # its coupons expired before Taro's
            s.add(Conversion(id=str(_uuid.uuid4()), shop_id=gone.id, shopify_customer_id=1000 + i,
                             smaregi_customer_id=str(900 + i), idempotency_key=f"gone-key-{i:04d}", points=100,
                             amount=100, currency="JPY", code=f"0{i:04d}-GONEGO-100", local_date=date(2026, 10, 1),
                             status="completed", expires_at=now - timedelta(days=2), metafield_recorded=True))
    for _ in range(3):  # three runs of the job (15 minutes of the worker)
        give_back_expired(shopper.services)
    shopper.settle()
    [listed] = shopper.conversions()["conversions"]
    assert listed["status"] == "expired" and shopper.balance() == 1250, (listed["status"], shopper.balance())



def _in_parallel(n, fn):
    import threading

    barrier, out = threading.Barrier(n), [None] * n

    def run(i):
        barrier.wait()
        try:
            out[i] = fn(i)
        except Exception as exc:  # reported, not hidden
            out[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return out



# FINDING F3 (low, robustness): two staff members (or a double click) confirming the same
# conversion review at once: the second answers 500. merchant.resolve_review checks the status, then
# Saga.resolve_review's compare-and-set raises LostRace, which nobody catches
# (app/merchant.py:269-279; app/points/saga.py:73-86). A "not deducted" racing a "deducted" leaves
# Saga.resolve_review's activate() (run BEFORE its compare-and-set) able to re-enable a code the
# other path has just deactivated. Fix: catch LostRace in merchant.resolve_review (answer the state
# as it now is, 200/409), and activate the code only after the compare-and-set to `completed` won.
def test_F3_two_admins_confirming_the_same_review_get_no_500(pg_shopper, monkeypatch):  # noqa: F811
    import time as _time

    from sqlalchemy import update

    from app.models import Conversion
    from app.shopify.discounts import Discounts

    s = pg_shopper
    coupon = _coupon(s)
    with s.services.db.transaction() as db:
        db.execute(update(Conversion).values(status="needs_review", error_code="needs_review"))
    real = Discounts.activate
    monkeypatch.setattr(Discounts, "activate", lambda self, *a: (_time.sleep(0.3), real(self, *a))[1])
    out = _in_parallel(2, lambda i: _admin(s, "POST", f"/conversions/{coupon['id']}/review",
                                           json={"points_were_deducted": True}).status_code)
    assert all(code < 500 for code in out), out


# FINDING F4 (low, contract): "A replayed idempotency key returns the original outcome, success or
# failure" holds only for failures after the reservation. A conversion refused by the checks before
# it (insufficient_points from the balance read, below_minimum, not_multiple_of_unit,
# daily_limit_exceeded) leaves no trace of its key, so the same key later is judged afresh: after
# the member earned points at the register, a retry of the refused request (the block keeps the key
# across retries) deducts points and issues a code the customer was told they could not have.
# At fault: app/points/conversion.py:78-97 (convert: only a reserved row remembers a key).
# Fix: record the refused attempt under its key (a `failed` row with the error code, not counting
# toward the limit and not in flight), so replay() answers the same error; or document the narrower
# rule in DESIGN if that is the intent.
def test_F4_a_key_refused_for_insufficient_points_is_refused_again_after_the_balance_grew(shopper):  # noqa: F811
    first = shopper.convert(2000, key="f4-key-00000001")
    assert (first.status_code, first.json["error"]["code"]) == (422, "insufficient_points")
    with shopper.smaregi.lock:  # the member earns 1,000 points at the register
        shopper.smaregi.contracts[CONTRACT].points[shopper.taro["customerId"]]["point"] += 1000
    again = shopper.convert(2000, key="f4-key-00000001")
    assert (again.status_code, (again.json.get("error") or {}).get("code")) == (422, "insufficient_points"), \
        again.json
    assert shopper.balance() == 2250 and shopper.active_codes() == []


# FINDING F6 (high, money): a `loyalty.coupons` metafield that is valid JSON but not a list of
# objects ({} , null, ["x"], {"coupons": [...]}) — the merchant can edit it on the customer's page
# in Shopify admin, and any app with customer write access can write the unreserved `loyalty`
# namespace — makes Discounts.record_coupon raise AttributeError/TypeError (`entry in None`,
# `c.get` on a str). _append_coupon catches only Shopify failures, so the conversion that has
# ALREADY deducted the points stops in `deducted`: the shopper gets a 500 and no code, the sweeper
# hits the same error on every pass (the row never completes, never compensates), and because
# `deducted` is in flight the customer can never convert again (409 conversion_in_progress).
# DESIGN: "Never twice, never lost"; a crash anywhere leaves a row the sweeper finishes; the
# metafield write is best effort (saga.py's own docstring).
# At fault: app/shopify/discounts.py:135-141 (only ValueError handled; shape never checked) and
# app/points/saga.py:193-205 (_append_coupon: `except SHOPIFY_FAILURES` only).
# Fix: in record_coupon treat anything but a list as [] and skip non-dict items (keep foreign items
# untouched when rewriting, or refuse with ShopifyRejected("metafield_unreadable") so the saga
# treats it as a failed write); in _append_coupon never let the record step stop a deducted
# conversion from completing.
def test_F6_a_malformed_coupons_metafield_does_not_strand_deducted_points(shopper):  # noqa: F811
    from app.points.saga import sweep

    owner = f"gid://shopify/Customer/{TARO}"
    with shopper.shopify.lock:
        shopper.shopify.shop(SHOP).metafields[(owner, "loyalty", "coupons")] = {"value": "{}", "type": "json"}
    resp = shopper.convert(500)
    from sqlalchemy import update

    from app.models import Conversion

    for _ in range(3):  # the sweeper's passes, once the request's lease has run out
        with shopper.services.db.transaction() as s:
            s.execute(update(Conversion).values(leased_until=None, next_attempt_at=None))
        sweep(shopper.services)
    [row] = shopper.ledger()
    assert shopper.balance() == 750  # the points left the member...
    assert row.status == "completed", (resp.status_code, row.status)  # ...so the code is theirs
    assert shopper.convert(500).status_code == 201  # and the customer is not blocked for good


# FINDING F5 (medium, robustness): a deeply nested JSON body (a few kilobytes of "[[[[…]]]]") makes
# json.loads raise RecursionError, which is not a ValueError: Flask's get_json(silent=True) and the
# webhook parsers' `except ValueError` let it through, so the answer is a 500 instead of 400
# invalid_request. Any logged-in shopper can send it to POST /proxy/conversions (and with their
# token to /customer-account/conversions); the merchant's admin API and both webhook receivers do
# the same. At fault: app/web/shopper.py:55, app/web/admin.py:36/56/71, app/web/smaregi_connect.py:30
# (request.get_json(silent=True)), app/web/webhooks.py:22, app/web/smaregi_webhooks.py:31-34.
# Fix: one JSON-body helper for every blueprint that catches (ValueError, RecursionError) and
# answers invalid_request (and a MAX_CONTENT_LENGTH for these small bodies).
DEEP_JSON = ("[" * 50_000 + "]" * 50_000).encode()


def test_F5a_a_deeply_nested_conversion_body_is_400_not_500(shopper):  # noqa: F811
    s = shopper
    resp = s.client.post(proxy_url(s.services.config.shopify_api_secret, "conversions", TARO), data=DEEP_JSON,
                         content_type="application/json")
    assert resp.status_code == 400, resp.status_code
    cfg = s.services.config
    token = customer_account_token(cfg.shopify_api_key, cfg.shopify_api_secret, SHOP, TARO)
    resp = s.client.post("/customer-account/conversions", data=DEEP_JSON, content_type="application/json",
                         headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 400, resp.status_code
    assert s.balance() == 1250 and s.active_codes() == []


def test_F5b_a_deeply_nested_admin_body_is_a_clean_4xx(shopper):  # noqa: F811
    for method, path in (("PUT", "/settings"), ("PUT", "/earning"), ("POST", "/sync/retry")):
        resp = _admin(shopper, method, path, data=DEEP_JSON, content_type="application/json")
        assert resp.status_code in (400, 422), (path, resp.status_code)


def test_F5c_a_deeply_nested_signed_webhook_is_400_not_500(shopper):  # noqa: F811
    resp = deliver(shopper.client, shopper.services.config.shopify_api_secret, "orders/paid", None, raw=DEEP_JSON)
    assert resp.status_code == 400, resp.status_code


def test_F5d_a_deeply_nested_smaregi_webhook_is_400_not_500(db_url, make_services):
    from app import create_app

    client = create_app(services=make_services(db_url, SMAREGI_WEBHOOK_SECRET="review-secret-0001")).test_client()
    resp = client.post("/smaregi/webhooks", data=DEEP_JSON, content_type="application/json",
                       headers={"X-Pointbridge-Secret": "review-secret-0001", "Smaregi-Event": "pos:customers",
                                "Smaregi-Contract-Id": CONTRACT, "Smaregi-Event-Id": "review-event-1"})
    assert resp.status_code == 400, resp.status_code


# FINDING F7 (low, robustness): an `updated_at` that parses but cannot be turned into UTC
# ("0001-01-01T00:00:00+09:00", "9999-12-31T23:59:59-09:00") passes parse_time and then overflows
# in the UTCDateTime column type: a signed delivery answers 500 (Shopify retries it for 48 hours)
# instead of 400. At fault: app/webhooks/delivery.py:24-33 (parse_time checks the zone, not the
# range). Fix: convert to UTC inside parse_time and answer MalformedPayload on OverflowError (and
# refuse a moment far in the future, which would otherwise make every later delivery "stale").
def test_F7_an_updated_at_at_the_edge_of_the_calendar_is_400_not_500(shopper):  # noqa: F811
    for i, moment in enumerate(("0001-01-01T00:00:00+09:00", "9999-12-31T23:59:59-09:00")):
        payload = order(order_id=7000 + i)
        payload["updated_at"] = moment
        resp = deliver(shopper.client, shopper.services.config.shopify_api_secret, "orders/paid", payload)
        assert resp.status_code == 400, (moment, resp.status_code)


# FINDING F8 (medium, money): a member deleted or withdrawn at the register can still "hand back" a
# coupon: return_coupon never asks whether the member is registered, so it withdraws the code in
# Shopify (the customer loses a coupon that was worth money) and plans a give-back that can never
# land (point/add answers 404: not applied, retried every minute for ever, no attempt counted,
# nobody told). DESIGN: "A member deleted or withdrawn in Smaregi: the shopper gets
# `not_registered`". At fault: app/points/returns.py:40-70 (no linked_member/NotRegistered check
# before _withdraw). Fix: read the link as convert() does (linked_member raises NotRegistered) before
# touching Shopify, and give a movement whose member is gone (404) a state the merchant sees
# instead of an endless NOT_APPLIED loop.
def test_F8_a_member_deleted_at_the_register_is_not_registered_and_keeps_the_coupon(shopper):  # noqa: F811
    from sqlalchemy import update

    from app.models import MemberLink

    coupon = _coupon(shopper)
    shopper.smaregi.delete_member(CONTRACT, shopper.taro["customerId"])
    with shopper.services.db.transaction() as s:  # what the pos:customers webhook records
        s.execute(update(MemberLink).values(member_status="deleted"))
    resp = shopper.hand_back(coupon["id"])
    assert (resp.status_code, (resp.json.get("error") or {}).get("code")) == (404, "not_registered"), resp.json
    assert len(shopper.active_codes()) == 1  # nothing changed


# F2, the other half: a coupon whose code Shopify would not withdraw waits out its back-off, says
# why to the merchant, and gives its points back once Shopify answers again.
def test_F2_a_coupon_whose_withdrawal_failed_is_retried_after_its_back_off_and_then_given_back(shopper):  # noqa: F811
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import update

    from app.models import Conversion
    from app.points.returns import give_back_expired

    _coupon(shopper)
    with shopper.services.db.transaction() as s:
        s.execute(update(Conversion).values(expires_at=datetime.now(UTC) - timedelta(minutes=5)))
    shopper.shopify.add_fault(match="codeDiscountNodeByCode|DiscountUsage", status=503)
    give_back_expired(shopper.services)
    [row] = shopper.ledger()
    assert (row.status, row.error_code, row.attempts) == ("completed", "withdraw_failed", 1)
    assert row.next_attempt_at > datetime.now(UTC) + timedelta(minutes=1)
    shopper.shopify.faults.clear()
    give_back_expired(shopper.services)  # still backing off: nothing tried
    assert shopper.ledger()[0].status == "completed"
    with shopper.services.db.transaction() as s:  # the back-off has run out
        s.execute(update(Conversion).values(next_attempt_at=datetime.now(UTC) - timedelta(seconds=1)))
    give_back_expired(shopper.services)
    shopper.settle()
    [row] = shopper.ledger()
    assert (row.status, row.error_code) == ("expired", None) and shopper.balance() == 1250


# F4, the other halves: the refused key keeps its amount, and a POS that did not answer is not a
# verdict (the block retries with the same key).
def test_F4_a_refused_key_with_another_amount_is_invalid_and_a_pos_outage_is_not_remembered(shopper):  # noqa: F811
    assert shopper.convert(5000, key="f4-key-00000002").json["error"]["code"] == "insufficient_points"
    assert shopper.convert(100, key="f4-key-00000002").json["error"]["code"] == "invalid_request"
    shopper.smaregi.add_fault(match=r"/customers/point", status=500)
    down = shopper.convert(500, key="f4-key-00000003")
    assert down.status_code == 503, down.json
    shopper.smaregi.faults.clear()
    again = shopper.convert(500, key="f4-key-00000003")
    assert again.status_code == 201 and shopper.balance() == 750


# F8, the other half: a planned give-back whose member has gone from Smaregi is not retried for
# ever out of sight: it waits for the merchant, with its points, on the review list.
def test_F8_a_movement_whose_member_is_gone_waits_for_the_merchant(shopper):  # noqa: F811
    coupon = _coupon(shopper)
    shopper.smaregi.delete_member(CONTRACT, shopper.taro["customerId"])  # deleted, the app not yet told
    assert shopper.hand_back(coupon["id"]).status_code == 200  # the code is withdrawn; the points are planned
    shopper.settle()
    [give_back] = [m for m in shopper.moves() if m.kind == "give_back"]
    assert give_back.state == "needs_review" and "no longer in Smaregi" in give_back.error


# F8, and a conversion by a member deleted at the register (the app not yet told) is not_registered.
def test_F8_a_conversion_by_a_member_gone_from_smaregi_deducts_nothing(shopper):  # noqa: F811
    shopper.smaregi.delete_member(CONTRACT, shopper.taro["customerId"])
    resp = shopper.convert(500)
    assert resp.status_code in (404, 422, 503), resp.json  # refused before anything is reserved
    assert shopper.active_codes() == []
