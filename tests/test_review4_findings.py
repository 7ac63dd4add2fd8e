"""Review 4 (b6bdf32..60fadd0): what the change broke, reproduced before it was fixed. Each test states the
behaviour the contract (DESIGN.md) or the change's own docstrings promise, and what happened before the fix."""
from __future__ import annotations

import contextvars
import json
import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from app.models import BalanceSnapshot, Conversion, utcnow

from .conftest import CONTRACT, SHOP


def _limiters_at(services, start: float, processes: int = 2):
    """`processes` limiters (each its own process's) on one clock the test moves; sleeps move it."""
    from app.smaregi.ratelimit import RateLimiter

    now = [start]
    return [RateLimiter(services.db, reads_per_s=10, writes_per_s=4, clock=lambda: now[0],
                        sleep=lambda s: now.__setitem__(0, now[0] + s)) for _ in range(processes)], now


# -- rate limit: a 429 must stop everyone, reserved slots included -------------------------------------------------

def test_a_429_stops_the_reserved_slots_of_another_request(services):
    """Expected (DESIGN: "on 429 honour Retry-After"; ratelimit.py: "a 429 fills every slot … every
    process sees a full contract"): once Smaregi answered 429 for the contract, no request of that
    contract is sent before Retry-After has passed.
    Was (before the fix): only the reservation of the request that got the 429 is cancelled (a context variable).
    Another shopper's live balance read, in another thread of this process or in another process,
    reserved its slots before the 429 and keeps taking them without asking the database: its
    pool threads send up to `reads` requests (up to the whole limit across shoppers) to a contract
    Smaregi just paused, for the rest of the second. Before this change every call took its slot
    with a statement that sees the paused second."""
    (mine, theirs), now = _limiters_at(services, 1_000_000.1)
    reservation_b = theirs.reserve(CONTRACT, "read", 3)  # shopper B, another process, reads side by side
    with mine.reserve(CONTRACT, "read", 3):
        mine.pause(CONTRACT, 5)  # shopper A's read got 429, Retry-After: 5
    now[0] = 1_000_000.4

    def shopper_b_pool_thread() -> bool:
        with reservation_b:
            return theirs.take_reserved(CONTRACT, "read")

    sent_during_pause = contextvars.copy_context().run(shopper_b_pool_thread)
    assert sent_during_pause is False, "a reserved slot was handed out while the contract is paused"


def test_a_429_stops_the_reserved_slots_of_another_request_in_the_same_process(services):
    """Same as above within one process (one limiter, two request threads): the 429 in request A
    does not reach request B's reservation either."""
    (limiter,), _now = _limiters_at(services, 1_000_000.1, processes=1)
    reservation_b = limiter.reserve(CONTRACT, "read", 3)
    result: list[bool] = []

    def request_a() -> None:
        with limiter.reserve(CONTRACT, "read", 3):
            limiter.pause(CONTRACT, 5)

    t = threading.Thread(target=request_a)
    t.start()
    t.join(10)

    def request_b() -> None:
        with reservation_b:
            result.append(limiter.take_reserved(CONTRACT, "read"))

    t = threading.Thread(target=request_b)
    t.start()
    t.join(10)
    assert result == [False]


# -- balance: "answers within 2 s whatever Smaregi does" ---------------------------------------------------------

TARO = 8840734670934


@pytest.fixture
def balance_shop(services, smaregi_em):
    from app.sync import directory
    from app.sync.worker import Worker
    from app.webhooks.dispatch import Delivery, record

    from .helpers import customer

    em, _ = smaregi_em
    member = em.add_member(CONTRACT, customerCode=str(TARO), lastName="山田", firstName="太郎",
                           mailAddress="taro@example.com", rank="gold", points=1250, expires_on="2027-03-31")
    directory.import_pages(services.db, services.smaregi.contract(CONTRACT))
    record(services.db, services.config, Delivery(SHOP, "customers/create", "w1", None, None, customer(TARO)))
    Worker(services, "w").drain()
    return em, member


def test_a_stale_balance_answer_is_not_held_up_by_a_busy_read_pool(services, balance_shop):
    """Expected (DESIGN: GET /proxy/balance answers within 2 s whatever Smaregi does; a last-known
    balance is shown `stale` when Smaregi is slow): with a 10-minute-old snapshot and the Smaregi
    reads stuck (here: every worker of the shared `pos-read` pool busy with other shoppers' slow
    reads, as in a reload storm while Smaregi stalls), the answer is the snapshot, stale, in ~1 s.
    Was (before the fix): the database part of the answer (today's conversions, pending points, labels) now runs
    as a task on that same pool, and both `account.result()` and `beside.result()` wait for it
    without a timeout: the shopper waits until a worker frees (here 4 s), past the 2 s budget.
    Before this change those reads ran on the request thread and the stale answer came at ~1 s."""
    from app import create_app
    from app.points import balance

    from .helpers import proxy_url

    client = create_app(services=services).test_client()
    url = proxy_url(services.config.shopify_api_secret, "balance", TARO)
    assert client.get(url).json["stale"] is False  # a good read: the snapshot
    with services.db.transaction() as s:
        s.execute(update(BalanceSnapshot).values(fetched_at=utcnow() - timedelta(minutes=10)))
    release = threading.Event()
    blockers = [balance._pool.submit(release.wait, 30) for _ in range(balance._pool._max_workers)]
    timer = threading.Timer(4.0, release.set)
    timer.start()
    try:
        time.sleep(0.1)
        started = time.monotonic()
        resp = client.get(url)
        elapsed = time.monotonic() - started
    finally:
        release.set()
        timer.cancel()
        for b in blockers:
            b.result(10)
    assert resp.status_code == 200 and resp.json["stale"] is True
    assert elapsed < 2.0, f"the stale answer took {elapsed:.1f} s"


# -- loyalty.coupons: newest 50 by creation, whatever their status ------------------------------------------------

def test_a_live_coupon_is_never_dropped_from_the_coupon_list(services, smaregi_em, shopify_em):
    """Expected (DESIGN: an order using a coupon marks it `used` "in the ledger, the listing and
    loyalty.coupons"; the brief: a coupon the shopper owns must not go missing): every coupon the
    customer can still use (status completed) is in `loyalty.coupons`, and one an order used shows
    `used` there.
    Was (before the fix): the list is cut to the newest COUPON_LIST_LIMIT (50) rows by creation time, whatever
    their status. A shopper who makes 51 conversions of 100 points (well inside the default daily limit of
    10,000) loses their first, still valid, coupon from the metafield at the 51st conversion; when
    an order later uses it, `_record_coupon` writes a list without it and marks it recorded: the
    metafield never shows it (nor `used`). Used/expired/returned coupons also push live ones out."""
    from app.points.saga import sweep

    from .test_conversions import TARO as taro
    from .test_conversions import Given

    given = Given(services, smaregi_em[0], shopify_em[0])
    given.smaregi.contracts[CONTRACT].points[given.taro["customerId"]]["point"] = 6000
    codes = []
    for _ in range(51):
        resp = given.convert(100)
        assert resp.status_code == 201, resp.json
        codes.append(resp.json["conversion"]["code"])

    def listed() -> dict[str, str]:
        field = given.shopify.metafield(SHOP, f"gid://shopify/Customer/{taro}", "loyalty", "coupons")
        return {c["code"]: c["status"] for c in json.loads(field["value"])}

    first_is_listed = codes[0] in listed()
    with services.db.transaction() as s:  # an order uses the first coupon (orders/earning.py marks it so)
        s.execute(update(Conversion).where(Conversion.code == codes[0]).values(
            status="used", order_name="#1001", metafield_recorded=False))
        s.execute(update(Conversion).values(leased_until=None, next_attempt_at=None))
    sweep(services)
    with services.db.transaction() as s:
        recorded = s.scalar(select(Conversion.metafield_recorded).where(Conversion.code == codes[0]))
    assert first_is_listed, "a completed, unexpired coupon is missing from loyalty.coupons"
    assert listed().get(codes[0]) == "used", f"used coupon not shown used (recorded={recorded})"


# -- loyalty.coupons: a coupon whose list write failed a few times is never written again --------------------------

def test_a_used_coupon_is_shown_used_once_shopify_is_back(services, smaregi_em, shopify_em):
    """Expected (DESIGN: an order using a coupon marks it `used` in loyalty.coupons; saga.py: "the
    conversion stands even if Shopify's metafield write fails (retried later)"): once Shopify
    answers again, the sweeper writes the list and the used coupon shows `used`.
    Was (before the fix): a failed write costs one of the conversion's MAX_SWEEP_ATTEMPTS (8) and sets no
    back-off (the next sweep after the 60 s lease tries again), and `used` (orders/earning.py) does
    not start the count afresh as a give-back does: eight failed sweeps (≈ 8 minutes of Shopify
    trouble, fewer for a conversion that used attempts while reconciling) and the row is never
    swept again. The list is now written whole from the ledger, so only another conversion of
    the same customer would ever correct it."""
    from app.points.saga import sweep

    from .test_conversions import TARO as taro
    from .test_conversions import Given

    given = Given(services, smaregi_em[0], shopify_em[0])
    code = given.convert(500).json["conversion"]["code"]
    with services.db.transaction() as s:
        s.execute(update(Conversion).values(status="used", order_name="#1001", metafield_recorded=False))
    given.shopify.add_fault(match="metafieldsSet", status=500)
    for _ in range(8):  # one sweep a lease (60 s) while Shopify fails
        with services.db.transaction() as s:
            s.execute(update(Conversion).values(leased_until=None))
        sweep(services)
    given.shopify.faults.clear()
    for _ in range(3):
        with services.db.transaction() as s:
            s.execute(update(Conversion).values(leased_until=None, next_attempt_at=None))
        sweep(services)
    field = given.shopify.metafield(SHOP, f"gid://shopify/Customer/{taro}", "loyalty", "coupons")
    assert {c["code"]: c["status"] for c in json.loads(field["value"])}.get(code) == "used"


def test_a_coupon_whose_claim_was_released_and_then_compensated_leaves_the_list(services, smaregi_em, shopify_em):
    """Expected (DESIGN: a code is only ever shown while its points are known to be deducted;
    the list is "written whole from our ledger"): a conversion that was completed, whose
    deduction turned out to be another change's (movements.release_claim → `deducting`) and was
    then compensated (code withdrawn, `failed`), is no longer listed as `completed` in
    loyalty.coupons.
    Was (before the fix): nothing writes the list on the way to `failed` (the sweeper only rewrites rows in
    CODE_SHOWN): the metafield keeps showing the withdrawn code as `completed` until some other
    coupon of that customer changes."""
    from app.points import movements
    from app.points.saga import Saga

    from .test_conversions import TARO as taro
    from .test_conversions import Given

    given = Given(services, smaregi_em[0], shopify_em[0])
    code = given.convert(500).json["conversion"]["code"]
    [c] = given.ledger()
    movements.release_claim(services, c.shop_id, c.smaregi_transaction_ids[-1])
    saga = Saga(services)
    [c] = given.ledger()
    assert c.status == "deducting"
    c = saga._start_compensation(c, "pos_timeout", from_status="deducting")
    c = saga.sweep_one(c.id)  # the sweeper withdraws the code
    assert c.status == "failed"
    field = given.shopify.metafield(SHOP, f"gid://shopify/Customer/{taro}", "loyalty", "coupons")
    listed = {x["code"]: x["status"] for x in json.loads(field["value"])}
    assert listed.get(code) != "completed", "a withdrawn, undeducted code is still listed as completed"
