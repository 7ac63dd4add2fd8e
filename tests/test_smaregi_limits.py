"""Smaregi's per-contract rate limit holds across processes; a 429 pauses the contract for everyone."""
from __future__ import annotations

import threading
import time

import pytest

from app.smaregi.errors import ContractPaused, SmaregiTimeout

from .conftest import CONTRACT
from .helpers import early_in_a_second


@pytest.mark.postgres
def test_three_processes_writing_stay_within_the_contract_limit(pg_url, smaregi_em, make_services):
    em, url = smaregi_em
    em.writes_per_s = 10
    # Each "process" has its own Services: own pool, own token cache; they share only Postgres.
    workers = [make_services(pg_url, smaregi_url=url, SMAREGI_WRITES_PER_S="10") for _ in range(3)]
    errors: list[Exception] = []

    def create(services, n: int):
        client = services.smaregi.contract(CONTRACT)
        for i in range(10):
            try:
                client.create_customer({"customerCode": f"R{n}-{i}", "lastName": "a", "firstName": "b"})
            except Exception as exc:
                errors.append(exc)

    threads = [threading.Thread(target=create, args=(s, n)) for n, s in enumerate(workers)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    elapsed = time.monotonic() - started
    assert errors == []
    assert len(em.contracts[CONTRACT].customers) == 30
    assert em.stats["rate_limited"] == 0
    assert max(em.stats["writes_by_second"].values()) <= 10
    assert elapsed >= 2.0  # 31 writes (30 + one token) at 10/s cannot finish sooner


def test_a_429_pauses_the_contract_and_a_short_deadline_gives_up_quickly(services, smaregi_em):
    em, _ = smaregi_em
    client = services.smaregi.contract(CONTRACT)
    client.create_customer({"customerCode": "A1", "lastName": "a", "firstName": "b"})
    services.limiter.pause(CONTRACT, 5)
    started = time.monotonic()
    with pytest.raises(ContractPaused):
        client.get_points("1", deadline=time.monotonic() + 0.5)
    assert time.monotonic() - started < 0.6  # gave up at once, without sending
    assert em.stats["requests"] == 2  # token + create; nothing sent during the pause


def test_reads_retry_5xx_but_writes_do_not(services, smaregi_em):
    em, _ = smaregi_em
    client = services.smaregi.contract(CONTRACT)
    member = client.create_customer({"customerCode": "A1", "lastName": "a", "firstName": "b"})
    em.add_fault(match=r"GET .*/customers/point", status=503, count=1)
    assert client.get_points(member["customerId"]).points == 0
    em.add_fault(match=r"POST .*/point/add", status=500, count=1)
    from app.smaregi.errors import SmaregiServerError

    with pytest.raises(SmaregiServerError):
        client.add_points(member["customerId"], 100)
    assert em.balance(CONTRACT, member["customerId"]) == 0  # not retried


def test_a_stalled_write_is_reported_as_ambiguous_not_retried(services, smaregi_em):
    em, _ = smaregi_em
    client = services.smaregi.contract(CONTRACT)
    member = em.add_member(CONTRACT, customerCode="A1", lastName="a", firstName="b", points=1000)
    em.add_fault(match=r"POST .*/point/add", stall_after_apply_s=1.5, count=1)
    with pytest.raises(SmaregiTimeout):
        client.add_points(member["customerId"], -500, deadline=time.monotonic() + 0.8)
    assert em.balance(CONTRACT, member["customerId"]) == 500  # applied once, and only once


def test_a_revoked_token_is_replaced_once(services, smaregi_em):
    em, _ = smaregi_em
    client = services.smaregi.contract(CONTRACT)
    client.create_customer({"customerCode": "A1", "lastName": "a", "firstName": "b"})
    em.tokens.clear()  # Smaregi forgot every token
    assert client.find_customer_by_code("A1")["customerCode"] == "A1"
    assert em.stats["token_requests"] == 2


# -- shoppers first, without leaving slots unused ---------------------------------------------------------
def _limiter_at(services, start: float, writes_per_s: int = 4):
    """A limiter on a clock the test moves; its sleeps move it."""
    from app.smaregi.ratelimit import RateLimiter

    now = [start]
    limiter = RateLimiter(services.db, reads_per_s=10, writes_per_s=writes_per_s, clock=lambda: now[0],
                          sleep=lambda s: now.__setitem__(0, now[0] + s))
    return limiter, now


def test_background_work_alone_uses_every_slot_of_each_second(services):
    limiter, now = _limiter_at(services, 1_000_000.1)
    for _ in range(8):
        limiter.acquire(CONTRACT, "write", background=True)
    assert int(now[0]) == 1_000_001  # eight writes in two seconds: none of the four a second lost
    limiter.acquire(CONTRACT, "write", background=True)
    assert int(now[0]) == 1_000_002


def test_background_takes_the_shoppers_slot_only_late_in_the_second(services):
    from app.smaregi.ratelimit import LATE_S

    limiter, now = _limiter_at(services, 1_000_000.1)
    for _ in range(3):
        limiter.acquire(CONTRACT, "write", background=True)
    assert now[0] < 1_000_000.2  # three at once; the fourth waits for LATE_S, when no shopper took it
    limiter.acquire(CONTRACT, "write", background=True)
    assert 1_000_000 + LATE_S <= now[0] < 1_000_001


def test_while_shoppers_are_about_background_leaves_their_slot_for_the_whole_second(services):
    from app.smaregi.ratelimit import LATE_S, SHOPPERS_QUIET_S

    limiter, now = _limiter_at(services, 1_000_000.1)
    for _ in range(3):
        limiter.acquire(CONTRACT, "write", background=True)
    limiter.acquire(CONTRACT, "write")  # a shopper arriving now is not delayed by them
    assert now[0] < 1_000_000.2
    for second in range(1_000_001, 1_000_001 + SHOPPERS_QUIET_S):
        for _ in range(3):  # each second after: background's three early slots, never the fourth…
            limiter.acquire(CONTRACT, "write", background=True)
            assert second <= now[0] < second + LATE_S
        now[0] = second + 0.95
        limiter.acquire(CONTRACT, "write")  # …so a shopper arriving late in the second is not kept waiting
        assert now[0] == second + 0.95
        now[0] = second + 1.0
    last_shopper = 1_000_000 + SHOPPERS_QUIET_S
    quiet = last_shopper + SHOPPERS_QUIET_S + 1  # no shopper for SHOPPERS_QUIET_S seconds: every slot is used again
    now[0] = quiet + 0.1
    for _ in range(4):
        limiter.acquire(CONTRACT, "write", background=True)
    assert quiet + LATE_S <= now[0] < quiet + 1


def test_a_shopper_arriving_after_background_filled_a_second_waits_only_for_the_next(services):
    from app.smaregi.ratelimit import JITTER_S, LATE_S

    limiter, now = _limiter_at(services, 1_000_000.1)
    for _ in range(4):
        limiter.acquire(CONTRACT, "write", background=True)  # the last one late in the second
    started = now[0]
    limiter.acquire(CONTRACT, "write")
    assert now[0] - started <= 1 - LATE_S + JITTER_S and int(now[0]) == 1_000_001


def test_a_slot_is_one_statement(services, smaregi_em):
    from sqlalchemy import event

    statements: list[str] = []

    def seen(_conn, _cursor, statement, *_args) -> None:
        statements.append(statement)

    engine = services.db.ephemeral  # the slots' own engine (the money path's is services.db.engine)
    event.listen(engine, "before_cursor_execute", seen)
    early_in_a_second()
    try:
        services.limiter.acquire(CONTRACT, "write")
        services.limiter.acquire(CONTRACT, "read", background=True)
        services.limiter.reserve(CONTRACT, "read", 3)  # a balance read's three slots at once
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    # (SQLite opens its write transaction with BEGIN IMMEDIATE; Postgres sends no BEGIN of its own.)
    slots = [s for s in statements if not s.startswith("BEGIN")]
    assert len(slots) == 3 and all("smaregi_rate_slots" in s for s in slots), statements


def test_a_shopper_late_in_a_second_is_counted_in_both_and_sent_at_once(services):
    from app.smaregi.ratelimit import EDGE_GUARD_S

    limiter, now = _limiter_at(services, 1_000_000.0)
    for _ in range(2):
        limiter.acquire(CONTRACT, "write")
    now[0] = 1_000_001 - EDGE_GUARD_S / 2  # it may reach Smaregi in this second or the next
    limiter.acquire(CONTRACT, "write")
    assert now[0] < 1_000_001  # not held back
    limiter.acquire(CONTRACT, "write", background=True)  # background waits for the next second
    assert now[0] >= 1_000_001
    now[0] = 1_000_001.5
    for _ in range(2):  # the next second holds two of its four already
        limiter.acquire(CONTRACT, "write")
    assert now[0] < 1_000_002
    limiter.acquire(CONTRACT, "write")
    assert now[0] >= 1_000_002  # four in 1_000_001, and the first one counted in both


def test_a_shopper_late_in_a_full_second_waits_for_the_next(services):
    from app.smaregi.ratelimit import EDGE_GUARD_S

    limiter, now = _limiter_at(services, 1_000_000.0)
    for _ in range(4):
        limiter.acquire(CONTRACT, "write")
    now[0] = 1_000_001 - EDGE_GUARD_S / 2
    limiter.acquire(CONTRACT, "write")
    assert now[0] >= 1_000_001  # no room to count it where it might land: sent in the next second


# -- a shopper's reads side by side: their slots in one statement -------------------------------------------
def test_reserved_slots_never_exceed_the_second_across_concurrent_shoppers(services):
    limiter, _ = _limiter_at(services, 1_000_000.1)  # ten reads a second; the clock stands still
    taken: list[int] = []
    refused: list[Exception] = []

    def shopper():
        try:
            taken.append(limiter.reserve(CONTRACT, "read", 3, deadline=time.monotonic() + 0.5).left)
        except ContractPaused as exc:  # the second is full: the next one is past the deadline
            refused.append(exc)

    threads = [threading.Thread(target=shopper) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert taken == [3, 3, 3] and len(refused) == 5  # 9 of 10: a fourth three would be 12
    limiter.acquire(CONTRACT, "read", deadline=time.monotonic() + 0.5)  # the tenth is still there
    with pytest.raises(ContractPaused):
        limiter.acquire(CONTRACT, "read", deadline=time.monotonic() + 0.5)


def test_a_paused_contract_blocks_a_reservation_too(services):
    limiter, now = _limiter_at(services, 1_000_000.5)
    limiter.pause(CONTRACT, 5)
    with pytest.raises(ContractPaused):  # a shopper's short deadline: given up at once
        limiter.reserve(CONTRACT, "read", 3, deadline=time.monotonic() + 0.3)
    reservation = limiter.reserve(CONTRACT, "read", 3)
    assert now[0] >= 1_000_005.5 and reservation.second >= 1_000_005  # nothing before Retry-After


def test_reserved_slots_serve_this_request_and_its_pool_threads_within_their_second(services):
    import contextvars
    from concurrent.futures import ThreadPoolExecutor

    limiter, now = _limiter_at(services, 1_000_000.1)
    reservation = limiter.reserve(CONTRACT, "read", 3)
    assert not limiter.take_reserved(CONTRACT, "read")  # not this context's until `with`
    with reservation, ThreadPoolExecutor(2) as pool:
        assert limiter.take_reserved(CONTRACT, "read")
        assert not limiter.take_reserved(CONTRACT, "write") and not limiter.take_reserved("other", "read")
        ctx = contextvars.copy_context()
        assert pool.submit(ctx.run, limiter.take_reserved, CONTRACT, "read").result()
        assert limiter.take_reserved(CONTRACT, "read")
        assert not limiter.take_reserved(CONTRACT, "read")  # three taken: a fourth call takes its own
    with limiter.reserve(CONTRACT, "read", 3):
        now[0] = 1_000_001.0 - 0.01  # too late in the second to send: the slots are not used
        assert not limiter.take_reserved(CONTRACT, "read")
    now[0] = 1_000_002.1
    with limiter.reserve(CONTRACT, "read", 3):
        limiter.pause(CONTRACT, 1)  # a 429 on one of the reads: the others wait like everyone
        assert not limiter.take_reserved(CONTRACT, "read")


def test_a_reservation_is_at_most_the_limit(services):
    limiter, _ = _limiter_at(services, 1_000_000.1)
    assert limiter.reserve(CONTRACT, "write", 9).left == 4  # writes_per_s: the other calls take their own


def test_a_429_fills_the_paused_seconds_for_background_work_too(services):
    limiter, now = _limiter_at(services, 1_000_000.5)
    limiter.pause(CONTRACT, 2)
    limiter.acquire(CONTRACT, "write", background=True)
    assert now[0] >= 1_000_002.5  # nothing sent before Retry-After has passed
    limiter.pause(CONTRACT, 5)
    with pytest.raises(ContractPaused):  # a shopper's short deadline: given up at once
        limiter.acquire(CONTRACT, "read", deadline=time.monotonic() + 0.3)


@pytest.mark.postgres
def test_shoppers_and_background_in_three_processes_stay_within_the_limit(pg_url, smaregi_em, make_services):
    em, url = smaregi_em
    em.writes_per_s = 6
    workers = [make_services(pg_url, smaregi_url=url, SMAREGI_WRITES_PER_S="6") for _ in range(3)]
    member = em.add_member(CONTRACT, customerCode="M1", lastName="a", firstName="b", points=0)
    errors: list[Exception] = []

    def add(services, background: bool):
        client = services.smaregi.contract(CONTRACT)
        for _ in range(8):
            try:
                client.add_points(member["customerId"], 1, background=background,
                                  deadline=time.monotonic() + 30)
            except Exception as exc:
                errors.append(exc)

    threads = [threading.Thread(target=add, args=(s, background)) for s in workers for background in (True, True, False)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert em.balance(CONTRACT, member["customerId"]) == 72  # every write applied once
    assert em.stats["rate_limited"] == 0
    assert max(em.stats["writes_by_second"].values()) <= 6  # tokens included


@pytest.mark.postgres
def test_shoppers_reserving_reads_in_three_processes_stay_within_the_limit(pg_url, smaregi_em, make_services):
    import contextvars
    from concurrent.futures import ThreadPoolExecutor

    em, url = smaregi_em
    em.reads_per_s = 9
    workers = [make_services(pg_url, smaregi_url=url, SMAREGI_READS_PER_S="9") for _ in range(3)]
    member = em.add_member(CONTRACT, customerCode="M1", lastName="a", firstName="b", points=5)
    errors: list[Exception] = []

    def balance_reads(services, pool):
        client = services.smaregi.contract(CONTRACT)
        for _ in range(2):
            try:
                with client.reads_reserved(3, deadline=time.monotonic() + 30):
                    reads = [pool.submit(contextvars.copy_context().run, client.get_points, member["customerId"])
                             for _ in range(3)]
                assert [r.result().points for r in reads] == [5, 5, 5]
            except Exception as exc:
                errors.append(exc)

    with ThreadPoolExecutor(18) as pool:
        threads = [threading.Thread(target=balance_reads, args=(s, pool)) for s in workers for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    assert errors == []
    assert em.stats["rate_limited"] == 0  # 36 reads, never more than 9 in a second


@pytest.mark.postgres
def test_only_slots_and_the_balance_cache_skip_the_wal_flush(pg_migrated):
    """Points, links and every request's data are committed durably; the rate-limit slots and the
    balance cache (worth nothing after a database crash) do not wait for the disk."""
    from sqlalchemy import text

    from app.db import Database

    db = Database(pg_migrated, max_connections=2)
    try:
        with db.transaction() as session:
            assert session.execute(text("SHOW synchronous_commit")).scalar() == "on"
        with db.ephemeral.connect() as conn:
            assert conn.execute(text("SHOW synchronous_commit")).scalar() == "off"
    finally:
        db.dispose()
