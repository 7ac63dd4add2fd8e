"""Shopify customers become Smaregi members exactly once, store members are linked, edits reach the POS."""
from __future__ import annotations

import multiprocessing
import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from app import create_app
from app.models import MemberLink, ShopSettings, SmaregiContract, utcnow
from app.sync import operations, queue, scheduler
from app.sync.worker import Worker, resume_paused
from app.webhooks.dispatch import Delivery, record

from .conftest import CONTRACT, SHOP, make_env
from .helpers import customer, deliver


def queue_customer(services, payload, topic="customers/update", shop=SHOP):
    import uuid

    return record(services.db, services.config, Delivery(shop, topic, str(uuid.uuid4()), None, None, payload))


def directory_ready(services):
    """The first member import has run (as the worker's scheduler does on first use of a contract)."""
    from app.sync import directory

    assert directory.import_pages(services.db, services.smaregi.contract(CONTRACT))


def link_of(services, customer_id=8840734670934) -> MemberLink:
    with services.db.transaction() as s:
        return s.scalar(select(MemberLink).where(MemberLink.shopify_customer_id == customer_id))


def drain(services, worker: Worker | None = None, rounds: int = 5):
    worker = worker or Worker(services, "test-worker")
    for _ in range(rounds):
        if worker.drain() == 0:
            break
    return worker


def members(em):
    return list(em.contracts[CONTRACT].customers.values())


def test_a_new_online_customer_becomes_a_member_with_their_shopify_id_as_code(services, smaregi_em):
    em, _ = smaregi_em
    directory_ready(services)
    queue_customer(services, customer(), topic="customers/create")
    drain(services)
    [member] = members(em)
    assert member["customerCode"] == "8840734670934"
    assert (member["lastName"], member["firstName"], member["mailAddress"]) == ("山田", "太郎", "taro@example.com")
    assert member["phoneNumber"] == "090-1111-2222"  # +81 → domestic
    assert (member["postCode"], member["address"]) == ("150-0001", "東京都渋谷区神宮前1-2-3 101号室")
    link = link_of(services)
    assert (link.state, link.smaregi_customer_id, link.member_code) == ("synced", member["customerId"], "8840734670934")
    assert link.synced_at is not None and link.event_received_at is None


def test_a_store_member_with_the_same_email_is_linked_not_duplicated(services, smaregi_em):
    em, _ = smaregi_em
    store = em.add_member(CONTRACT, customerCode="S-000101", lastName="佐藤", firstName="花子",
                          mailAddress="Hanako@Example.com", points=320)
    directory_ready(services)
    queue_customer(services, customer(8840734670936, first="花子", last="佐藤", email="hanako@example.com"))
    drain(services)
    assert len(members(em)) == 1
    assert em.contracts[CONTRACT].customers[store["customerId"]]["customerCode"] == "8840734670936"
    assert em.balance(CONTRACT, store["customerId"]) == 320  # her store points are hers online too
    link = link_of(services, 8840734670936)
    assert (link.state, link.smaregi_customer_id, link.member_code) == ("synced", store["customerId"], "8840734670936")


def test_the_shop_may_keep_the_store_member_code(services, smaregi_em):
    em, _ = smaregi_em
    store = em.add_member(CONTRACT, customerCode="S-000101", lastName="佐藤", firstName="花子",
                          mailAddress="hanako@example.com")
    directory_ready(services)
    queue_customer(services, customer(8840734670936, first="花子", last="佐藤", email="hanako@example.com"))
    with services.db.transaction() as s:
        s.add(ShopSettings(shop_id=link_of(services, 8840734670936).shop_id, keep_store_member_codes=True))
    drain(services)
    assert em.contracts[CONTRACT].customers[store["customerId"]]["customerCode"] == "S-000101"
    assert link_of(services, 8840734670936).member_code == "S-000101"


def test_two_store_members_with_one_email_are_a_conflict_for_the_merchant(services, smaregi_em):
    em, _ = smaregi_em
    a = em.add_member(CONTRACT, customerCode="S-1", lastName="佐藤", firstName="花子", mailAddress="hanako@example.com")
    em.add_member(CONTRACT, customerCode="S-2", lastName="佐藤", firstName="華子", mailAddress="hanako@example.com")
    directory_ready(services)
    queue_customer(services, customer(8840734670936, email="hanako@example.com"))
    drain(services)
    link = link_of(services, 8840734670936)
    assert link.state == "conflict" and len(link.conflict_candidates) == 2
    assert "choose" in link.last_error
    assert len(members(em)) == 2  # nothing created, nothing guessed
    [problem] = operations.problems(services.db)
    assert problem.state == "conflict"

    assert operations.resolve_conflict(services.db, link.shop_id, link.id, a["customerId"])
    drain(services)
    link = link_of(services, 8840734670936)
    assert (link.state, link.smaregi_customer_id) == ("synced", a["customerId"])
    assert em.contracts[CONTRACT].customers[a["customerId"]]["customerCode"] == "8840734670936"


def test_an_edit_online_reaches_the_pos_and_no_change_means_no_call(services, smaregi_em):
    em, _ = smaregi_em
    directory_ready(services)
    queue_customer(services, customer())
    drain(services)
    queue_customer(services, customer(last="山本", minutes=1))
    drain(services)
    assert members(em)[0]["lastName"] == "山本"
    requests_before = em.stats["requests"]
    # Shopify reformatted the phone; what Smaregi holds would not change, so nothing is sent.
    queue_customer(services, customer(last="山本", phone="090-1111-2222", minutes=2))
    drain(services)
    assert link_of(services).state == "synced"
    assert em.stats["requests"] == requests_before


def test_a_crash_between_create_and_save_is_repaired_by_the_member_code(services, smaregi_em):
    em, _ = smaregi_em
    em.add_member(CONTRACT, customerCode="8840734670934", lastName="山田", firstName="太郎",
                  mailAddress="taro@example.com")
    directory_ready(services)
    queue_customer(services, customer())
    drain(services)
    assert len(members(em)) == 1
    assert link_of(services).state == "synced"


def test_5xx_is_retried_with_backoff_and_gives_up_with_a_reason(services, smaregi_em, monkeypatch):
    em, _ = smaregi_em
    directory_ready(services)
    em.add_fault(match=r"POST .*/pos/customers$", status=503, count=1)
    queue_customer(services, customer())
    drain(services)
    link = link_of(services)
    assert (link.state, link.attempts) == ("pending", 1)
    assert "did not answer" in link.last_error
    assert link.next_attempt_at > utcnow()  # backed off
    with services.db.transaction() as s:
        s.execute(update(MemberLink).values(next_attempt_at=utcnow()))
    drain(services)
    assert link_of(services).state == "synced" and len(members(em)) == 1

    em.add_fault(match=r"POST .*/pos/customers$", status=500)  # from now on, always
    queue_customer(services, customer(8840734670999, email="other@example.com"))
    monkeypatch.setattr(queue, "backoff_s", lambda attempts: 0)
    drain(services, rounds=queue.MAX_ATTEMPTS + 2)
    failed = link_of(services, 8840734670999)
    assert (failed.state, failed.attempts) == ("failed", queue.MAX_ATTEMPTS)
    em.clear_faults()
    assert operations.retry_failed(services.db) == 1
    drain(services)
    assert link_of(services, 8840734670999).state == "synced"


def test_data_smaregi_rejects_fails_at_once_with_the_field_named(services, smaregi_em):
    em, _ = smaregi_em
    em.contracts[CONTRACT].required_columns["birthDate"] = "1"  # the contract demands what Shopify lacks
    directory_ready(services)
    queue_customer(services, customer())
    drain(services)
    link = link_of(services)
    assert (link.state, link.attempts) == ("failed", 1)
    assert "birthDate" in link.last_error


def test_a_429_reschedules_the_member_without_spending_an_attempt(services, smaregi_em):
    em, _ = smaregi_em
    directory_ready(services)
    services.limiter.pause(CONTRACT, 30)
    queue_customer(services, customer())
    drain(services)
    link = link_of(services)
    assert (link.state, link.attempts) == ("pending", 0)
    assert link.next_attempt_at > utcnow() + timedelta(seconds=20)
    assert members(em) == []


def test_sync_off_then_on_sends_only_the_newest_state(db_url, smaregi_em, shopify_em, make_services):
    em, url = smaregi_em
    off = make_services(db_url, smaregi_url=url, SMAREGI_SYNC_ENABLED="false")
    for minute, name in enumerate(["一", "二", "三"]):
        queue_customer(off, customer(first=name, minutes=minute))
    assert link_of(off).state == "paused"
    drain(off)
    assert em.stats["requests"] == 0
    on = make_services(db_url, smaregi_url=url)
    directory_ready(on)
    assert resume_paused(on) == 1
    drain(on)
    [member] = members(em)
    assert member["firstName"] == "三"
    assert len([t for t in em.contracts[CONTRACT].customers]) == 1


def test_the_directory_import_pages_and_the_window_refresh_finds_new_store_members(services, smaregi_em, monkeypatch):
    from app.sync import directory

    em, _ = smaregi_em
    for i in range(5):
        em.add_member(CONTRACT, customerCode=f"S-{i}", lastName="a", firstName="b", mailAddress=f"m{i}@example.com")
    monkeypatch.setattr(directory, "PAGE_SIZE", 2)
    client = services.smaregi.contract(CONTRACT)
    assert directory.import_pages(services.db, client, max_pages=1) is False  # resumable
    assert directory.import_pages(services.db, client) is True
    with services.db.transaction() as s:
        row = s.get(SmaregiContract, CONTRACT)
        assert (row.directory_imported, row.directory_import_page) == (5, 3)
    em.add_member(CONTRACT, customerCode="S-new", lastName="a", firstName="b", mailAddress="new@example.com")
    assert directory.refresh_window(services.db, client) >= 1
    with services.db.transaction() as s:
        assert [m.customer_code for m in directory.candidates_by_email(s, CONTRACT, "NEW@example.com")] == ["S-new"]


def test_the_window_refresh_reads_a_few_pages_a_call_and_misses_no_member_changed_between_calls(
        services, smaregi_em, monkeypatch):
    from app.sync import directory

    em, _ = smaregi_em
    client = services.smaregi.contract(CONTRACT)
    assert directory.import_pages(services.db, client)  # no members yet
    monkeypatch.setattr(directory, "PAGE_SIZE", 2)
    clock = [time.time()]
    monkeypatch.setattr(em, "clock", lambda: clock[0])
    members = []
    for i in range(9):
        clock[0] += 20  # further apart than the re-read overlap; and Smaregi's clock runs ahead of ours
        members.append(em.add_member(CONTRACT, customerCode=f"S-{i}", lastName="a", firstName="b",
                                     mailAddress=f"m{i}@example.com")["customerId"])
    assert directory.refresh_window(services.db, client, max_pages=2) == 4  # bounded: it sits in the worker's loop

    def known(email):
        with services.db.transaction() as s:
            return [m.customer_code for m in directory.candidates_by_email(s, CONTRACT, email)]

    assert known("m2@example.com") == ["S-2"] and known("m3@example.com") == []  # each page starts at the last stamp
    clock[0] += 20
    em.edit_member(CONTRACT, members[0], mailAddress="moved@example.com")  # now the newest change
    while directory.refresh_window(services.db, client, max_pages=2) >= 4:
        pass
    assert all(known(f"m{i}@example.com") == [f"S-{i}"] for i in range(1, 9))
    assert known("moved@example.com") == ["S-0"] and known("m0@example.com") == []
    requests = em.stats["requests"]
    directory.refresh_window(services.db, client)
    assert em.stats["requests"] - requests == 1  # caught up: one short page


def test_email_matching_waits_for_the_first_import(services, smaregi_em):
    em, _ = smaregi_em
    em.add_member(CONTRACT, customerCode="S-1", lastName="佐藤", firstName="花子", mailAddress="taro@example.com")
    queue_customer(services, customer())
    drain(services)
    link = link_of(services)
    assert (link.state, link.attempts) == ("pending", 0)  # not created as a duplicate
    assert list(scheduler.run_due(services, "w1")) == list(scheduler.JOBS)
    with services.db.transaction() as s:
        s.execute(update(MemberLink).values(next_attempt_at=utcnow()))
    drain(services)
    assert len(members(em)) == 1 and link_of(services).member_code == "8840734670934"


def test_a_periodic_job_runs_once_however_many_workers_ask(services):
    assert scheduler.claim(services, "member_directory") is True
    assert scheduler.claim(services, "member_directory") is False
    scheduler.release(services, "member_directory", 300, None)
    assert scheduler.claim(services, "member_directory") is False  # not due for 5 minutes


def test_cli_shows_counts_and_failures_and_retries(db_url, smaregi_em, shopify_em, make_services, monkeypatch):
    from click.testing import CliRunner

    from app.cli import main

    em, url = smaregi_em
    services = make_services(db_url, smaregi_url=url)
    directory_ready(services)
    em.contracts[CONTRACT].required_columns["birthDate"] = "1"
    queue_customer(services, customer())
    drain(services)
    for key, value in make_env(db_url, smaregi_url=url).items():
        monkeypatch.setenv(key, value)
    runner = CliRunner()
    status = runner.invoke(main, ["sync", "status", "--shop", SHOP])
    assert status.exit_code == 0 and "failed     1" in status.output
    failures = runner.invoke(main, ["sync", "failures"])
    assert "customer 8840734670934 failed" in failures.output and "birthDate" in failures.output
    em.contracts[CONTRACT].required_columns.clear()
    assert "1 link(s) queued again" in runner.invoke(main, ["sync", "retry", "--all"]).output
    drain(services)
    assert link_of(services).state == "synced"
    assert runner.invoke(main, ["sync", "resync", "8840734670934", "--shop", SHOP]).output.strip() == "queued"


def test_webhook_to_member_end_to_end_through_http(services, smaregi_em):
    em, _ = smaregi_em
    directory_ready(services)
    client = create_app(services=services).test_client()
    deliver(client, services.config.shopify_api_secret, "customers/create", customer())
    drain(services)
    assert members(em)[0]["customerCode"] == "8840734670934"


# -- Postgres: several workers, crashes --------------------------------------------------------------

@pytest.mark.postgres
def test_two_workers_racing_for_one_backlog_sync_each_customer_once(pg_url, smaregi_em, make_services):
    em, url = smaregi_em
    a, b = (make_services(pg_url, smaregi_url=url) for _ in range(2))
    directory_ready(a)
    for i in range(40):
        queue_customer(a, customer(9000000000000 + i, email=f"c{i}@example.com"))
    claimed: dict[str, list[int]] = {"a": [], "b": []}

    def run(name, services):
        worker = Worker(services, name)
        original = worker.process

        def counting(job):
            claimed[name].append(job.link_id)
            original(job)
        worker.process = counting
        while worker.drain(limit=3):
            pass

    threads = [threading.Thread(target=run, args=(n, s)) for n, s in (("a", a), ("b", b))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(members(em)) == 40
    assert sorted(claimed["a"] + claimed["b"]) == sorted(set(claimed["a"] + claimed["b"]))  # each job once
    assert claimed["a"] and claimed["b"]  # both worked
    assert operations.status_counts(a.db)["synced"] == 40


def _worker_that_dies(env):
    from app.config import load_config
    from app.services import Services

    Worker(Services.build(load_config(env)), "doomed").drain()


@pytest.mark.postgres
def test_a_worker_killed_mid_job_is_taken_over_without_a_second_member(pg_url, smaregi_em, make_services):
    em, url = smaregi_em
    services = make_services(pg_url, smaregi_url=url)
    directory_ready(services)
    queue_customer(services, customer())
    # Smaregi creates the member, then the answer never comes back before the process dies.
    em.add_fault(match=r"POST .*/pos/customers$", stall_after_apply_s=30, count=1)
    ctx = multiprocessing.get_context("spawn")
    doomed = ctx.Process(target=_worker_that_dies, args=(make_env(pg_url, smaregi_url=url),))
    doomed.start()
    deadline = time.monotonic() + 30
    while not members(em) and time.monotonic() < deadline:
        time.sleep(0.05)
    doomed.kill()
    doomed.join(10)
    assert len(members(em)) == 1
    link = link_of(services)
    assert (link.state, link.lease_owner) == ("pending", "doomed")
    assert Worker(services, "other").drain() == 0  # the lease still holds
    with services.db.transaction() as s:  # …until it runs out
        s.execute(update(MemberLink).values(leased_until=utcnow() - timedelta(seconds=1)))
    Worker(services, "other").drain()
    link = link_of(services)
    assert (link.state, link.smaregi_customer_id) == ("synced", members(em)[0]["customerId"])
    assert len(members(em)) == 1
    # The dead worker's lease is gone: had it woken up, its result would have been refused.
    assert queue.complete(services.db, queue.Job(link.id, link.shop_id, 1, None, None, {}, "", None, None),
                          "doomed", None) is False
