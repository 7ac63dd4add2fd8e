"""Review 5 (ce3287c..bd0b9f6): what the review-4 fixes left open or broke, reproduced before it was fixed.
Each test states the behaviour the contract (DESIGN.md) or the change's own docstrings promise, and
what happened before the fix ("Actual")."""
from __future__ import annotations

import contextvars
import json
import threading
import time
from datetime import timedelta

from sqlalchemy import func, select, update

from app.models import BalanceSnapshot, Conversion, RateSlot, utcnow

from .conftest import CONTRACT, SHOP
from .test_review4_findings import TARO, _limiters_at, balance_shop  # noqa: F401  (fixture)

# -- rate limit: a reservation lapses after 0.2 s, and its calls then count twice ----------------------------------

def test_reads_that_start_after_the_reservation_lapsed_count_twice_and_starve_other_shoppers(services):
    """Expected (ratelimit.py: a shopper's reads "take them from the reservation without a round trip";
    "Shoppers first, without leaving slots unused"; DESIGN: the balance answers within 2 s): a
    request's reads cost the contract's second as many slots as the request reserved.
    Actual: a Reservation now lapses RESERVATION_TTL_S (0.2 s) after it is made, and the docstring's
    premise ("a reservation's calls are submitted together, so they take their slots within a few
    ms") does not hold under load: the reads wait in the shared `pos-read` pool behind other
    shoppers' reads, or behind a token refresh, or (unlinked member) behind the sequential
    find-by-code call inside `reads_reserved`, all routinely > 0.2 s. Each late call then takes a
    fresh slot with a statement while its reserved slot stays counted: 3 reads cost 6 slots, and
    the next shopper in that second (who would have fitted) is refused and waits for the next second
    (or gets no live answer). Before the change a reservation lasted for its second."""
    from app.smaregi.errors import ContractPaused

    (limiter,), now = _limiters_at(services, 1_000_000.1, processes=1)  # 10 reads/s
    reservation = limiter.reserve(CONTRACT, "read", 3)
    now[0] += 0.25  # the reads start 0.25 s later, same second (busy pool / Smaregi latency)

    def pool_thread() -> None:  # client._request: take_reserved, else acquire
        with reservation:
            for _ in range(3):
                if not limiter.take_reserved(CONTRACT, "read"):
                    limiter.acquire(CONTRACT, "read")

    contextvars.copy_context().run(pool_thread)
    with services.db.transaction() as s:
        used = s.scalar(select(RateSlot.used).where(RateSlot.contract_id == CONTRACT, RateSlot.kind == "read",
                                                    RateSlot.second == 1_000_000))
    refused = False
    try:  # another shopper, 5 reads, same second: 3 + 5 <= 10 should fit
        limiter.reserve(CONTRACT, "read", 5, deadline=time.monotonic() + 0.3)
    except ContractPaused:
        refused = True
    assert used == 3 and not refused, f"3 reads counted {used} slots; next shopper refused={refused}"


# -- balance: a queued rank read is not cancelled when the answer gives up -----------------------------------------

def test_a_stale_balance_answer_leaves_no_queued_smaregi_read_behind(services, balance_shop):  # noqa: F811
    """Expected (the fix's own comment in balance._read_live: "a read still queued when the answer is
    given up on would only spend quota" — reads still queued are cancelled): once the answer came
    back stale, no read of that request takes a rate-limit slot of the contract afterwards.
    Actual: only `points` and `histories` are cancelled in the `finally`; the live rank read
    (`live`, client.get_customer, submitted for every linked member when no Smaregi webhook secret
    is configured) is cancelled only inside `_current_member`, which is never reached when the
    points read timed out. When the pool frees, the queued read runs after its deadline: its
    reservation has lapsed, so it takes a fresh slot of the contract (quota spent for nothing)
    before `_send` gives up with "no time left"."""
    from app import create_app
    from app.points import balance

    from .helpers import proxy_url

    client = create_app(services=services).test_client()
    url = proxy_url(services.config.shopify_api_secret, "balance", TARO)
    assert client.get(url).json["stale"] is False
    with services.db.transaction() as s:
        s.execute(update(BalanceSnapshot).values(fetched_at=utcnow() - timedelta(minutes=10)))

    def slots_used() -> int:
        with services.db.transaction() as s:
            return int(s.scalar(select(func.sum(RateSlot.used)).where(RateSlot.contract_id == CONTRACT,
                                                                      RateSlot.kind == "read")) or 0)

    release = threading.Event()
    blockers = [balance._pool.submit(release.wait, 30) for _ in range(balance._pool._max_workers)]
    try:
        time.sleep(0.1)
        resp = client.get(url)
        after_answer = slots_used()
    finally:
        release.set()
        for b in blockers:
            b.result(10)
    balance._pool.submit(lambda: None).result(10)
    time.sleep(0.5)  # whatever was still queued has run
    assert resp.status_code == 200 and resp.json["stale"] is True
    assert slots_used() == after_answer, "a read of the given-up answer took a slot after the answer"


# -- loyalty.coupons: a released conversion stays listed `completed` while undecided -------------------------------

def test_a_released_coupon_is_not_listed_usable_while_its_deduction_is_undecided(services, smaregi_em, shopify_em):
    """Expected (ledger.py: "A code is only ever shown once its points are known to be deducted";
    movements.release_claim: "its code is hidden again and the sweeper reconciles it"; DESIGN: the
    code is only shown when `completed` or later, "while undecided it is null"): once a completed
    conversion's claim is released (back to `deducting`), loyalty.coupons no longer lists its code
    as `completed`.
    Actual: release_claim sets metafield_recorded False, but the list is rewritten only for rows in
    LIST_FOLLOWS (completed/used/…/failed/needs_review), and `deducting` is not among them: while
    Smaregi cannot tell (up to MAX_SWEEP_ATTEMPTS undecided sweeps, ~25 minutes of back-off) the
    customer's metafield keeps showing the undeducted code as a usable `completed` coupon."""
    from app.points import movements
    from app.points.saga import sweep

    from .test_conversions import TARO as taro
    from .test_conversions import Given

    em = smaregi_em[0]
    given = Given(services, em, shopify_em[0])
    code = given.convert(500).json["conversion"]["code"]
    [c] = given.ledger()
    movements.release_claim(services, c.shop_id, c.smaregi_transaction_ids[-1])
    em.add_fault(match="^GET", status=503)  # Smaregi cannot tell yet
    for _ in range(2):
        with services.db.transaction() as s:
            s.execute(update(Conversion).values(leased_until=None, next_attempt_at=None))
        sweep(services)
    em.clear_faults()
    [c] = given.ledger()
    assert c.status == "deducting"
    field = given.shopify.metafield(SHOP, f"gid://shopify/Customer/{taro}", "loyalty", "coupons")
    listed = {x["code"]: x["status"] for x in json.loads(field["value"])}
    assert listed.get(code) != "completed", "an undeducted (released) code is listed as a usable coupon"


# -- migration 0017: the rows fix 5 was for are marked recorded, so their list is never rewritten ------------------

def test_migration_0017_keeps_a_released_and_failed_coupon_listed(db_url, services, smaregi_em, shopify_em):
    """Expected (migration 0017's docstring: "only one that was listed (and then failed, after its claim
    was released) has its list rewritten on the way to `failed`"; ledger.py: a code is only shown once
    its points are known deducted): a conversion that, before the upgrade, completed, had its claim
    released (release_claim sets metafield_recorded False) and was then compensated to `failed` by the
    old code (which never rewrote the list for `failed`) has its list rewritten by the sweeper after
    the upgrade, so the withdrawn code stops being listed `completed`.
    Actual: 0017 sets metafield_recorded = true for every non-listed row with false, these victims
    included (nothing tells them apart in the UPDATE: it does not look at the released movement), so
    the sweeper never selects them and loyalty.coupons shows the withdrawn code as usable for good.
    (The downgrade's own comment says a false flag "would cost one write per row, nothing else".)"""
    from app import migrate
    from app.points import movements
    from app.points.saga import sweep

    from .test_conversions import TARO as taro
    from .test_conversions import Given

    given = Given(services, smaregi_em[0], shopify_em[0])
    code = given.convert(500).json["conversion"]["code"]
    [c] = given.ledger()
    movements.release_claim(services, c.shop_id, c.smaregi_transaction_ids[-1])
    with services.db.transaction() as s:  # compensated by the code before bd0b9f6: failed, list untouched
        s.execute(update(Conversion).values(status="failed", error_code="pos_timeout", leased_until=None,
                                            next_attempt_at=None))
        assert s.scalar(select(Conversion.metafield_recorded)) is False  # the sweeper's cue, before 0017
    services.db.dispose()
    migrate.downgrade(db_url, "0016")
    migrate.upgrade(db_url)
    sweep(services)
    field = given.shopify.metafield(SHOP, f"gid://shopify/Customer/{taro}", "loyalty", "coupons")
    listed = {x["code"]: x["status"] for x in json.loads(field["value"])}
    assert listed.get(code) != "completed", "a withdrawn, undeducted code is still listed as completed"



def test_an_unlinked_shoppers_balance_reads_count_twice_when_the_lookup_takes_over_0_2_s(services, smaregi_em):
    """Expected (client.reads_reserved: "The rate-limit slots of the `reads` calls a shopper's request
    is about to make side by side, in one round trip"; balance._reads: an unlinked shopper's live
    answer makes 3 reads — "the member found by code, its points, its one history"): the answer
    counts 3 read slots of the contract.
    Actual: the lookup by code runs first, on the request thread, inside the reservation; the points
    and history reads are submitted only once Smaregi answered it. With Smaregi taking 0.3 s for that
    lookup (ordinary latency), the reservation (RESERVATION_TTL_S = 0.2 s) has lapsed: both reads
    take fresh slots, and the request counts 5 slots for 3 requests (every such shopper costs the
    contract's second two slots more, so others wait sooner). Before the change the reservation
    lasted for its second."""
    from app import create_app

    from .helpers import proxy_url

    em, _ = smaregi_em
    em.add_member(CONTRACT, customerCode=str(TARO), lastName="山田", firstName="太郎",
                  mailAddress="taro@example.com", rank="gold", points=1250, expires_on="2027-03-31")
    client = create_app(services=services).test_client()
    url = proxy_url(services.config.shopify_api_secret, "balance", TARO)

    def slots_used() -> int:
        with services.db.transaction() as s:
            return int(s.scalar(select(func.sum(RateSlot.used)).where(RateSlot.contract_id == CONTRACT,
                                                                      RateSlot.kind == "read")) or 0)

    before = slots_used()
    em.add_fault(match="^GET .*customers", latency_s=0.3, count=1)
    time.sleep(1 - time.time() % 1 + 0.02)  # early in a second: nothing here counts in two seconds
    resp = client.get(url)
    assert resp.status_code == 200, resp.json
    assert slots_used() - before == 3, f"3 reads counted {slots_used() - before} slots"


def test_a_released_coupon_that_goes_to_review_starts_its_list_retries_afresh(services, smaregi_em, shopify_em):
    """Expected (ledger.LIST_OUTDATED: a coupon's list entry is rewritten after a change in the ledger
    "its retries afresh (an earlier step's back-off must not use them up)"; saga.LIST_ATTEMPTS: a failed
    list write backs off 30 s·2^n to an hour, 12 tries): a released conversion that ends in
    `needs_review` and whose first list write fails is tried again about 30 s later.
    Actual: release_claim and the step to needs_review do not use LIST_OUTDATED: the row carries the
    7 attempts its undecided reconciliation used, so the first retry of the list write is an hour
    away (30·2^7 s, capped) and only 5 tries remain: the undeducted code stays listed `completed`
    for at least an hour after one Shopify error."""
    from app.points import movements
    from app.points.saga import sweep

    from .test_conversions import Given

    em = smaregi_em[0]
    given = Given(services, em, shopify_em[0])
    given.convert(500)
    [c] = given.ledger()
    movements.release_claim(services, c.shop_id, c.smaregi_transaction_ids[-1])
    em.add_fault(match="^GET", status=503)  # Smaregi cannot tell: undecided until review
    given.shopify.add_fault(match="metafieldsSet", status=500)  # and Shopify refuses the list meanwhile
    for _ in range(8):
        with services.db.transaction() as s:
            s.execute(update(Conversion).values(leased_until=None, next_attempt_at=None))
        sweep(services)
    em.clear_faults()
    given.shopify.faults.clear()
    [c] = given.ledger()
    assert c.status == "needs_review" and c.metafield_recorded is False
    wait = (c.next_attempt_at.replace(tzinfo=None) - utcnow().replace(tzinfo=None)).total_seconds()
    assert wait <= 60, f"first list retry in {wait:.0f} s (attempts={c.attempts})"
