"""The worker process (Procfile `worker`): drains member syncs and runs the periodic jobs.

Several workers on several machines cooperate through the database alone: rows are claimed with
leases, periodic jobs are claimed through `scheduled_jobs`, and on Postgres workers wake on
LISTEN/NOTIFY the moment a webhook queues something (SQLite: short polling).
"""
from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid

from sqlalchemy import select, update

from ..models import MemberLink, Shop, utcnow
from ..services import Services
from ..settings import effective_settings
from ..smaregi.errors import (
    ContractPaused,
    SmaregiBadRequest,
    SmaregiError,
    SmaregiForbidden,
    SmaregiNotFound,
    SmaregiRateLimited,
    SmaregiServerError,
    SmaregiTimeout,
    SmaregiUnauthorized,
    SmaregiUnreachable,
)
from . import queue, scheduler
from .customer_import import Importer
from .directory import DirectoryNotReady
from .intake import NOTIFY_CHANNEL
from .matching import Conflict, Job, sync_member

log = logging.getLogger(__name__)

BATCH = 10
POLL_S = 0.5  # SQLite, or when no NOTIFY arrives
CALL_BUDGET_S = 20.0  # per member: a worker may wait on Smaregi; a 429 pause longer than this moves on
RESUME_EVERY_S = 5.0


def describe(error: Exception) -> queue.Failure:
    """A Smaregi failure in the merchant's words, and whether trying again can help."""
    if isinstance(error, (ContractPaused, SmaregiRateLimited)):
        wait = getattr(error, "wait_s", None) or getattr(error, "retry_after_s", 1.0)
        return queue.Failure("Smaregi asked us to slow down.", True, wait_s=max(wait, 0.5))
    if isinstance(error, DirectoryNotReady):
        return queue.Failure("Waiting for the first import of store members.", True, wait_s=10)
    if isinstance(error, SmaregiBadRequest):
        field = f" ({error.field})" if error.field else ""
        return queue.Failure(f"Smaregi rejected the member data{field}: {error.detail}", False)
    if isinstance(error, SmaregiForbidden):
        return queue.Failure("Smaregi refused access: the contract's plan may not include members and points "
                             "(Premium Plus, Food Business or Retail Business), or the app lacks the "
                             "pos.customers scope.", False)
    if isinstance(error, SmaregiUnauthorized):
        return queue.Failure("Smaregi refused the app's credentials (client id/secret or contract id).", True)
    if isinstance(error, SmaregiNotFound):
        return queue.Failure("Smaregi does not know this contract or member.", True)
    if isinstance(error, (SmaregiServerError, SmaregiTimeout, SmaregiUnreachable)):
        return queue.Failure("Smaregi did not answer in time; we will try again.", True)
    if isinstance(error, SmaregiError):
        return queue.Failure(f"Smaregi error {error.status}: {error.detail}", True)
    return queue.Failure(f"Unexpected error: {type(error).__name__}", True)


class Worker:
    def __init__(self, services: Services, name: str | None = None):
        self.s = services
        self.name = name or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self._last_resume = 0.0
        self.imports = Importer(services, self.name, self.process)

    # -- the loop -------------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        log.info("worker.started", extra={"worker": self.name})
        listener = _Listener(self.s.db.url) if self.s.db.is_postgres else None
        try:
            while not stop.is_set():
                self.housekeeping()
                if self.drain() == 0 and not self.imports.step():  # live syncs first, then an import step
                    if listener:
                        listener.wait(POLL_S * 4)
                    else:
                        stop.wait(POLL_S)
        finally:
            if listener:
                listener.close()
            log.info("worker.stopped", extra={"worker": self.name})

    def housekeeping(self) -> None:
        now = time.monotonic()
        if now - self._last_resume >= RESUME_EVERY_S:
            self._last_resume = now
            resume_paused(self.s)
        scheduler.run_due(self.s, self.name)

    def drain(self, limit: int = BATCH) -> int:
        jobs = queue.claim(self.s.db, self.s.config, self.name, limit)
        for job in jobs:
            if queue.renew(self.s.db, job, self.name):
                self.process(job)
        return len(jobs)

    def process(self, job: Job) -> str | None:
        """Sync one member; returns what happened (Synced.action, "conflict"), None on failure."""
        started = time.monotonic()
        client = self.s.smaregi.contract(job.settings.contract_id)
        try:
            result = sync_member(self.s.db, client, job, deadline=time.monotonic() + CALL_BUDGET_S)
        except Conflict as exc:
            queue.conflict(self.s.db, job, self.name, exc.candidates)
            log.warning("sync.conflict", extra={"link_id": job.link_id, "candidates": len(exc.candidates)})
            return "conflict"
        except Exception as exc:
            failure = describe(exc)
            queue.fail(self.s.db, job, self.name, failure)
            log.warning("sync.failed", extra={"link_id": job.link_id, "error": type(exc).__name__,
                                              "retryable": failure.retryable, "status": getattr(exc, "status", None)})
            return None
        if queue.complete(self.s.db, job, self.name, result):
            log.info("sync.done", extra={"link_id": job.link_id, "action": result.action,
                                         "smaregi_customer_id": result.smaregi_customer_id,
                                         "ms": round((time.monotonic() - started) * 1000)})
            return result.action
        log.warning("sync.lease_lost", extra={"link_id": job.link_id, "worker": self.name})
        return None


def resume_paused(services: Services) -> int:
    """Paused links of shops that can sync again become due (newest state only: that is all we keep)."""
    resumed = 0
    with services.db.transaction() as session:
        shop_ids = session.scalars(select(MemberLink.shop_id).where(MemberLink.state == "paused").distinct()).all()
        for shop_id in shop_ids:
            if effective_settings(session, session.get(Shop, shop_id), services.config).syncable:
                result = session.execute(update(MemberLink)
                                         .where(MemberLink.shop_id == shop_id, MemberLink.state == "paused")
                                         .values(state="pending", next_attempt_at=utcnow()))
                resumed += result.rowcount
    if resumed:
        log.info("sync.resumed", extra={"links": resumed})
    return resumed


class _Listener:
    """LISTEN pointbridge_sync on a dedicated connection; wait() returns early on a NOTIFY."""

    def __init__(self, url: str):
        import psycopg

        self.conn = psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True)
        self.conn.execute(f"LISTEN {NOTIFY_CHANNEL}")

    def wait(self, timeout_s: float) -> None:
        for _ in self.conn.notifies(timeout=timeout_s, stop_after=1):
            pass

    def close(self) -> None:
        self.conn.close()


def run_worker(services: Services) -> None:
    import signal

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    Worker(services).run(stop)

