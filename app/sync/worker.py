"""The worker process (Procfile `worker`): drains member syncs and runs the periodic jobs.

Several workers on several machines cooperate through the database alone: rows are claimed with
leases, periodic jobs are claimed through `scheduled_jobs`, and on Postgres workers wake on
LISTEN/NOTIFY the moment a webhook queues something (SQLite: short polling).
"""
from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
import uuid

import psycopg
from sqlalchemy import select, update
from sqlalchemy.exc import InterfaceError, OperationalError

from ..models import LinkState, MemberLink, Shop, utcnow
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
from . import queue, reasons, scheduler, smaregi_events
from .customer_import import Importer
from .directory import DirectoryNotReady
from .intake import NOTIFY_CHANNEL
from .matching import Conflict, Held, Job, sync_member

log = logging.getLogger(__name__)

BATCH = 10
POLL_S = 0.5  # SQLite, or when no NOTIFY arrives
CALL_BUDGET_S = 20.0  # per member: a worker may wait on Smaregi; a 429 pause longer than this moves on
RESUME_EVERY_S = 5.0
ERROR_BACKOFF_S = (0.5, 1, 2, 5, 10, 30)  # after consecutive loop errors (database down, connection lost)
JOBS_ERROR_PAUSE_S = 1.0  # the own-thread jobs after an error (their next run reconnects)
STOP_GRACE_S = 8.0  # SIGTERM → exit within 10 s; a job still running then is left leased for another worker
# The database went away or dropped our connection: nothing about the link, so it is not the link's
# attempt; the loop backs off, reconnects and the link is claimed again.
TRANSIENT_DB_ERRORS = (OperationalError, InterfaceError, psycopg.OperationalError, psycopg.InterfaceError)


def describe(error: Exception) -> queue.Failure:
    """A Smaregi failure in the merchant's words (app/sync/reasons.py), and whether trying again can help."""
    if isinstance(error, (ContractPaused, SmaregiRateLimited)):
        wait = getattr(error, "wait_s", None) or getattr(error, "retry_after_s", 1.0)
        return queue.Failure(reasons.text("rate_limited"), True, wait_s=max(wait, 0.5))
    if isinstance(error, DirectoryNotReady):
        return queue.Failure(reasons.text("directory_not_ready"), True, wait_s=10)
    if isinstance(error, SmaregiBadRequest):
        if error.field:
            return queue.Failure(reasons.text("rejected_field", field=error.field, detail=error.detail), False)
        return queue.Failure(reasons.text("rejected", detail=error.detail), False)
    if isinstance(error, SmaregiForbidden):
        return queue.Failure(reasons.text("forbidden"), False)
    if isinstance(error, SmaregiUnauthorized):
        return queue.Failure(reasons.text("credentials"), True)
    if isinstance(error, SmaregiNotFound):
        return queue.Failure(reasons.text("not_found"), True)
    if isinstance(error, (SmaregiServerError, SmaregiTimeout, SmaregiUnreachable)):
        return queue.Failure(reasons.text("no_answer"), True)
    if isinstance(error, SmaregiError):
        return queue.Failure(reasons.text("smaregi_error", status=error.status, detail=error.detail), True)
    return queue.Failure(reasons.text("unexpected", error=type(error).__name__), True)


class Worker:
    def __init__(self, services: Services, name: str | None = None):
        self.s = services
        self.name = name or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self._last_resume = 0.0
        self._job_due: dict[str, float] = {}  # monotonic moment each job asked to run again
        self.imports = Importer(services, self.name, self.process)

    # -- the loop -------------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        """Until `stop`: no single error ends the loop. Each one is logged (ids and the error's type),
        waited out with a growing pause, and followed by a fresh LISTEN connection; the links and
        periodic jobs this worker had claimed are handed back so that they do not wait for their
        leases to run out."""
        log.info("worker.started", extra={"worker": self.name})
        lane = threading.Thread(target=self._own_thread_jobs, args=(stop,), name="jobs", daemon=True)
        lane.start()
        listener: _Listener | None = None
        errors = 0
        try:
            while not stop.is_set():
                try:
                    if errors:
                        queue.release_all(self.s.db, self.name)
                        scheduler.release_all(self.s, self.name)
                    if listener is None and self.s.db.is_postgres:
                        listener = _Listener(self.s.db.url)
                    # A job with work left (a backlog of point movements) runs again without a pause,
                    # and an idle wait never outlasts the moment a job asked to run again.
                    job_in_s = self.housekeeping()
                    busy = self.drain(stop=stop) or self.imports.step() or job_in_s <= 0  # live syncs first
                    errors = 0
                    if not busy:
                        if listener:
                            listener.wait(min(POLL_S * 4, job_in_s))
                        else:
                            stop.wait(min(POLL_S, job_in_s))
                except Exception as exc:
                    errors += 1
                    pause = ERROR_BACKOFF_S[min(errors, len(ERROR_BACKOFF_S)) - 1]
                    log.warning("worker.loop_error", exc_info=True, extra={
                        "worker": self.name, "error": type(exc).__name__, "consecutive": errors, "pause_s": pause})
                    if listener:
                        listener.close()
                        listener = None
                    stop.wait(pause)
        finally:
            if listener:
                listener.close()
            log.info("worker.stopped", extra={"worker": self.name})

    def housekeeping(self) -> float:
        """Periodic jobs; returns how soon one of those this worker ran wants to run again."""
        now = time.monotonic()
        if now - self._last_resume >= RESUME_EVERY_S:
            self._last_resume = now
            resume_paused(self.s)
        ran = scheduler.run_due(self.s, self.name, [n for n in scheduler.JOBS if n not in scheduler.OWN_THREAD])
        if any(again <= 0 for again in ran.values()):
            return 0.0
        now = time.monotonic()
        self._job_due = {name: at for name, at in self._job_due.items() if at > now}  # (past: another's turn)
        self._job_due.update({name: now + again for name, again in ran.items()})
        return min(self._job_due.values(), default=now + POLL_S * 4) - now

    def _own_thread_jobs(self, stop: threading.Event) -> None:
        """scheduler.OWN_THREAD's jobs, again as soon as they ask; woken like the loop."""
        listener: _Listener | None = None
        while not stop.is_set():
            try:
                if listener is None and self.s.db.is_postgres:
                    listener = _Listener(self.s.db.url)
                ran = scheduler.run_due(self.s, self.name, scheduler.OWN_THREAD)
                wait = min(ran.values(), default=POLL_S)
                if wait > 0 and listener:
                    listener.wait(wait)
                elif wait > 0:
                    stop.wait(wait)
            except Exception as exc:
                log.warning("worker.jobs_error", exc_info=True, extra={"worker": self.name,
                                                                        "error": type(exc).__name__})
                if listener:
                    listener.close()
                    listener = None
                stop.wait(JOBS_ERROR_PAUSE_S)
        if listener:
            listener.close()

    def drain(self, limit: int = BATCH, stop: threading.Event | None = None) -> int:
        """Claim and work one batch. Asked to stop, it hands back the jobs it has not begun."""
        jobs = queue.claim(self.s.db, self.s.config, self.name, limit)
        for i, job in enumerate(jobs):
            if stop is not None and stop.is_set():
                queue.release(self.s.db, [j.link_id for j in jobs[i:]], self.name)
                break
            if queue.renew(self.s.db, job, self.name):
                self.process(job)
        return len(jobs) + smaregi_events.drain(self.s, self.name)

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
        except Held as exc:
            queue.hold(self.s.db, job, self.name, exc.candidates)
            log.info("sync.held_unverified_email", extra={"link_id": job.link_id, "candidates": len(exc.candidates)})
            return "held"
        except TRANSIENT_DB_ERRORS:
            raise  # to the loop; what Smaregi got is found again by the member code
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
        shop_ids = session.scalars(select(MemberLink.shop_id).where(MemberLink.state == LinkState.PAUSED).distinct()).all()
        for shop_id in shop_ids:
            if effective_settings(session, session.get(Shop, shop_id), services.config).syncable:
                result = session.execute(update(MemberLink)
                                         .where(MemberLink.shop_id == shop_id, MemberLink.state == LinkState.PAUSED)
                                         .values(state=LinkState.PENDING, next_attempt_at=utcnow()))
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
        with contextlib.suppress(Exception):  # already broken: nothing to hand back
            self.conn.close()


def run_worker(services: Services) -> None:
    import signal

    stop = threading.Event()

    def on_signal(signum, _frame) -> None:
        if stop.is_set():
            return
        log.info("worker.stopping", extra={"signal": signum})
        stop.set()
        # The job in progress may be waiting on Smaregi (up to CALL_BUDGET_S) or a periodic job on
        # a page of members: past the grace, leave. Its lease stays, and another worker takes the
        # link over when it runs out; the member code makes that safe (no second member).
        timer = threading.Timer(STOP_GRACE_S, _leave_now)
        timer.daemon = True
        timer.start()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
    Worker(services).run(stop)


def _leave_now() -> None:
    log.warning("worker.stop_grace_exceeded", extra={"grace_s": STOP_GRACE_S})
    logging.shutdown()
    os._exit(0)

