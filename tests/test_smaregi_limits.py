"""Smaregi's per-contract rate limit holds across processes; a 429 pauses the contract for everyone."""
from __future__ import annotations

import threading
import time

import pytest

from app.smaregi.errors import ContractPaused, SmaregiTimeout

from .conftest import CONTRACT


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
