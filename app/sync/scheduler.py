"""Periodic jobs that must run once across all workers, however many there are.

Each job has a row in `scheduled_jobs`; a worker runs a job only after its UPDATE claimed the due
row (one statement, so two workers cannot both win). A job returns how soon it wants to run again.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from datetime import timedelta

from sqlalchemy import delete, or_, update

from .. import shops
from ..db import insert_ignoring_conflict
from ..models import RateSlot, ScheduledJob, utcnow
from ..services import Services
from . import directory

log = logging.getLogger(__name__)

JOB_LEASE_S = 300
# Live e-mail matching no longer refreshes the directory first (it sat in front of every webhook),
# so this backstop for missed register events runs often; each run reads a few pages at most.
DIRECTORY_EVERY_S = 30
DIRECTORY_CATCH_UP_S = 5
IMPORT_PAGES_PER_RUN = 20
AUDIT_CHECK_EVERY_S = 600  # how often the job looks for due audits (each shop's is daily)


def contracts_in_use(services: Services) -> list[str]:
    with services.db.transaction() as session:
        return shops.contracts_in_use(session, services.config)


def refresh_directories(services: Services) -> float:
    """First import (resumable, a few pages per run), then the update-window refresh."""
    again = DIRECTORY_EVERY_S
    for contract_id in contracts_in_use(services):
        client = services.smaregi.contract(contract_id)
        try:
            if not directory.import_pages(services.db, client, max_pages=IMPORT_PAGES_PER_RUN,
                                          deadline=time.monotonic() + 120):
                again = 1  # keep going soon: new customers with an e-mail wait for it
            elif directory.refresh_window(services.db, client, deadline=time.monotonic() + 120) >= \
                    directory.REFRESH_PAGES * directory.PAGE_SIZE:
                again = min(again, DIRECTORY_CATCH_UP_S)
        except Exception as exc:
            log.warning("directory.failed", extra={"contract_id": contract_id, "error": type(exc).__name__})
            again = min(again, 60)
    return again


def cleanup_rate_slots(services: Services) -> float:
    with services.db.transaction() as session:
        session.execute(delete(RateSlot).where(RateSlot.second < int(time.time()) - 120))
    return 60


def cleanup_smaregi_events(services: Services) -> float:
    from . import smaregi_events

    smaregi_events.prune(services)
    return 3600


def sweep_conversions(services: Services) -> float:
    from ..points.saga import sweep

    while sweep(services) == 20:  # a full batch: there may be more
        pass
    return 15


def online_earning(services: Services) -> float:
    from ..orders.earning import run

    return run(services)


def coupon_expiry(services: Services) -> float:
    from ..points.returns import give_back_expired

    return give_back_expired(services)
def audit_ledgers(services: Services) -> float:
    """Queued audits (the merchant's button) and each shop's daily one (app/points/audit.py)."""
    from ..points.audit import run_due as run_audits

    run_audits(services)
    return AUDIT_CHECK_EVERY_S


JOBS: dict[str, Callable[[Services], float]] = {
    "member_directory": refresh_directories,
    "rate_slot_cleanup": cleanup_rate_slots,
    "conversion_sweeper": sweep_conversions,
    "online_earning": online_earning,
    "coupon_expiry": coupon_expiry,
    "ledger_audit": audit_ledgers,
    "smaregi_event_cleanup": cleanup_smaregi_events,
}


def claim(services: Services, name: str, owner: str | None = None) -> bool:
    now = utcnow()
    with services.db.transaction() as session:
        insert_ignoring_conflict(session, ScheduledJob, {"name": name, "next_run_at": now}, ["name"])
        result = session.execute(update(ScheduledJob).where(
            ScheduledJob.name == name, ScheduledJob.next_run_at <= now,
            or_(ScheduledJob.leased_until.is_(None), ScheduledJob.leased_until < now))
            .values(leased_until=now + timedelta(seconds=JOB_LEASE_S), lease_owner=owner))
        return result.rowcount == 1


def release(services: Services, name: str, again_s: float, error: str | None) -> None:
    now = utcnow()
    with services.db.transaction() as session:
        session.execute(update(ScheduledJob).where(ScheduledJob.name == name).values(
            leased_until=None, lease_owner=None, last_run_at=now, last_error=error,
            next_run_at=now + timedelta(seconds=again_s)))


def release_all(services: Services, owner: str) -> int:
    """A worker whose loop failed (the database went away mid-job) runs nothing now: the jobs it
    held are due again at once instead of after their lease (the sweeper would stop for minutes)."""
    with services.db.transaction() as session:
        return session.execute(update(ScheduledJob).where(ScheduledJob.lease_owner == owner)
                               .values(leased_until=None, lease_owner=None)).rowcount


# Run by the worker in a thread of their own: a long periodic job (a directory import, an audit
# reading every member) must not stall the point movements a backlog of orders is waiting on.
OWN_THREAD = ("online_earning",)


def run_due(services: Services, owner: str, names: Iterable[str] | None = None) -> dict[str, float]:
    """Run the due jobs (of `names`, else all); returns each one run and how soon it wants to run
    again (0: work is left)."""
    ran: dict[str, float] = {}
    for name, job in JOBS.items():
        if names is not None and name not in names:
            continue
        if not claim(services, name, owner):
            continue
        error = None
        try:
            again = job(services)
        except Exception as exc:
            log.exception("scheduler.job_failed", extra={"job": name, "worker": owner})
            again, error = 60, type(exc).__name__
        release(services, name, again, error)
        ran[name] = again
    return ran


def schedule_now(services: Services, name: str) -> None:
    """Ask for a job to run at the next chance (e.g. after connecting a contract)."""
    with services.db.transaction() as session:
        insert_ignoring_conflict(session, ScheduledJob, {"name": name, "next_run_at": utcnow()}, ["name"])
        session.execute(update(ScheduledJob).where(ScheduledJob.name == name).values(next_run_at=utcnow()))


