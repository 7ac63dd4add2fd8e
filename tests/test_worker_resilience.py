"""The worker outlives database trouble and stops promptly when asked, and never makes a member twice.

Issue 10, finding 6: one transient database error ended the worker loop (sync, sweeper and scheduler
stopped until a restart).
"""
from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import threading
import time

import psycopg
import pytest
from sqlalchemy import func, select

from app.models import LinkState, MemberLink
from app.sync import operations
from app.sync.worker import Worker

from .conftest import CONTRACT, ROOT, make_env
from .helpers import customer
from .test_member_sync import directory_ready, members, queue_customer

pytestmark = pytest.mark.postgres

FIRST_ID = 9100000000000


def count_creates(em) -> collections.Counter:
    """Members Smaregi actually created, by member code (a second create of one code would show here)."""
    created: collections.Counter = collections.Counter()
    original = em._create

    def counting(contract, fields):
        member = original(contract, fields)
        created[member["customerCode"]] += 1
        return member
    em._create = counting
    return created


def plain(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://").split("?")[0]


def terminate(admin: psycopg.Connection, application_name: str) -> int:
    return len(admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
                             (application_name,)).fetchall())


def synced(services) -> int:
    return operations.status_counts(services.db)["synced"]


def test_connections_killed_under_the_worker_lose_no_customer_and_create_none_twice(pg_url, smaregi_em, make_services,
                                                                                    caplog):
    em, url = smaregi_em
    feeder = make_services(pg_url, smaregi_url=url)
    doomed = make_services(f"{pg_url}?application_name=pb-doomed-worker", smaregi_url=url)
    directory_ready(feeder)
    created = count_creates(em)
    stop = threading.Event()
    worker = threading.Thread(target=Worker(doomed, "resilient").run, args=(stop,), daemon=True)
    worker.start()
    total, killed = 45, 0
    try:
        with psycopg.connect(plain(pg_url), autocommit=True) as admin:
            for i in range(total):  # customers keep arriving while the worker's connections are cut
                queue_customer(feeder, customer(FIRST_ID + i, email=f"k{i}@example.com"))
                killed += terminate(admin, "pb-doomed-worker")
                time.sleep(0.1)
            for _ in range(5):  # …including while it recovers
                time.sleep(0.3)
                killed += terminate(admin, "pb-doomed-worker")
        deadline = time.monotonic() + 90
        while synced(feeder) < total and time.monotonic() < deadline:
            time.sleep(0.2)
        assert worker.is_alive()  # the loop survived every cut
    finally:
        stop.set()
        worker.join(15)
    errors = [r for r in caplog.records if r.getMessage() == "worker.loop_error"]
    assert killed >= 5 and len(errors) >= 3  # the connections really were cut, under the worker's feet
    assert synced(feeder) == total
    assert len(members(em)) == total
    assert sorted(created) == sorted(str(FIRST_ID + i) for i in range(total))
    assert set(created.values()) == {1}  # none twice


def _worker_process(pg_url: str, smaregi_url: str) -> subprocess.Popen:
    env = {**os.environ, **make_env(pg_url, smaregi_url=smaregi_url), "LOG_LEVEL": "INFO"}
    return subprocess.Popen([sys.executable, "-m", "app.cli", "worker"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _leased(services) -> int:
    with services.db.transaction() as s:
        return s.scalar(select(func.count()).select_from(MemberLink).where(MemberLink.lease_owner.is_not(None)))


def _wait_for_members(em, n: int, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while len(members(em)) < n and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(members(em)) >= n


def test_sigterm_mid_batch_stops_the_worker_within_10_s_and_the_rest_is_synced_once(pg_url, smaregi_em, make_services):
    em, url = smaregi_em
    services = make_services(pg_url, smaregi_url=url)
    directory_ready(services)
    created = count_creates(em)
    total = 30
    for i in range(total):
        queue_customer(services, customer(FIRST_ID + i, email=f"t{i}@example.com"))
    em.add_fault(match=r"POST .*/pos/customers$", latency_s=0.3)  # a batch of 10 takes ~3 s
    proc = _worker_process(pg_url, url)
    try:
        _wait_for_members(em, 3)
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(15)
        took = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
        stderr = proc.stderr.read().decode()
    assert took < 10, stderr
    assert "worker.stopped" in stderr  # it left through the loop, not the grace timer
    assert len(members(em)) < total  # it really was stopped mid-way
    assert _leased(services) == 0  # the job in progress finished; the rest of its batch was handed back

    em.clear_faults()
    while Worker(services, "next").drain():
        pass
    assert synced(services) == total
    assert set(created.values()) == {1} and len(created) == total


def test_sigterm_during_a_stalled_call_exits_anyway_and_the_lease_is_safely_reclaimed(pg_url, smaregi_em, make_services):
    em, url = smaregi_em
    services = make_services(pg_url, smaregi_url=url)
    directory_ready(services)
    created = count_creates(em)
    queue_customer(services, customer(FIRST_ID, email="stall@example.com"))
    # Smaregi creates the member, then its answer does not come for 30 s.
    em.add_fault(match=r"POST .*/pos/customers$", stall_after_apply_s=30, count=1)
    proc = _worker_process(pg_url, url)
    try:
        _wait_for_members(em, 1)
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(15)
        took = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
        stderr = proc.stderr.read().decode()
    assert took < 10, stderr
    assert "worker.stop_grace_exceeded" in stderr
    [link] = _links(services)
    assert link.state == LinkState.PENDING and link.lease_owner is not None  # left leased, not half-written

    from datetime import timedelta

    from sqlalchemy import update

    from app.models import utcnow
    with services.db.transaction() as s:  # the lease runs out…
        s.execute(update(MemberLink).values(leased_until=utcnow() - timedelta(seconds=1)))
    Worker(services, "next").drain()  # …and the next worker finds the member by its code
    [link] = _links(services)
    assert link.state == LinkState.SYNCED and link.smaregi_customer_id == members(em)[0]["customerId"]
    assert dict(created) == {str(FIRST_ID): 1}


def _links(services) -> list[MemberLink]:
    with services.db.transaction() as s:
        return list(s.scalars(select(MemberLink)).all())


def test_a_database_error_in_the_loop_is_logged_and_the_loop_carries_on(pg_url, smaregi_em, make_services, monkeypatch):
    em, url = smaregi_em
    services = make_services(pg_url, smaregi_url=url)
    directory_ready(services)
    worker = Worker(services, "flaky")
    from sqlalchemy.exc import OperationalError

    from app.sync import scheduler

    calls = {"n": 0}
    real = scheduler.run_due

    def failing_twice(s, owner, names=None):
        calls["n"] += 1
        if calls["n"] <= 2:
            raise OperationalError("SELECT 1", {}, psycopg.OperationalError("server closed the connection"))
        return real(s, owner, names)
    monkeypatch.setattr(scheduler, "run_due", failing_twice)
    monkeypatch.setattr("app.sync.worker.ERROR_BACKOFF_S", (0.05,))
    queue_customer(services, customer(FIRST_ID, email="late@example.com"))
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while synced(services) < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    thread.join(10)
    assert calls["n"] > 2 and synced(services) == 1 and not thread.is_alive()
    assert members(em)[0]["customerCode"] == str(FIRST_ID)
    assert CONTRACT in em.contracts


def test_a_periodic_job_cut_off_by_a_database_error_runs_again_at_once_not_after_its_lease(pg_url, make_services,
                                                                                           monkeypatch):
    from sqlalchemy.exc import OperationalError

    from app.sync import scheduler

    services = make_services(pg_url)
    runs: list[float] = []
    real_release = scheduler.release
    released = {"n": 0}

    def sweeper(_services):
        runs.append(time.monotonic())
        return 15

    def release_once_broken(s, name, again_s, error):
        released["n"] += 1
        if released["n"] == 1:  # the database went away right as the job finished
            raise OperationalError("UPDATE scheduled_jobs", {}, psycopg.OperationalError("server closed the connection"))
        real_release(s, name, again_s, error)
    monkeypatch.setattr(scheduler, "JOBS", {"conversion_sweeper": sweeper})
    monkeypatch.setattr(scheduler, "release", release_once_broken)
    monkeypatch.setattr("app.sync.worker.ERROR_BACKOFF_S", (0.1,))
    stop = threading.Event()
    thread = threading.Thread(target=Worker(services, "cut-off").run, args=(stop,), daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while len(runs) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    thread.join(10)
    assert len(runs) == 2 and runs[1] - runs[0] < 5  # not scheduler.JOB_LEASE_S (300 s) later
    assert scheduler.JOB_LEASE_S > 60
