"""The member-link table is the work queue.

A worker claims due rows (`FOR UPDATE SKIP LOCKED` on Postgres; SQLite's write lock serialises the
claim) and holds a lease on each. A crashed worker's lease runs out and another takes the row. A
worker writes its result only while it still holds the lease, so a taken-over row is never
overwritten by a worker that woke up late.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import or_, select, update

from ..config import Config
from ..db import Database
from ..models import LinkState, MemberLink, Shop, utcnow
from ..settings import effective_settings
from . import reasons
from .matching import Job, Synced
from .member_status import MemberStatus

LEASE_S = 120
MAX_ATTEMPTS = 8
BACKOFF_BASE_S = 5
BACKOFF_CAP_S = 3600


@dataclass(frozen=True)
class Failure:
    reason: str  # plain words, shown to the merchant (app/sync/reasons.py)
    retryable: bool
    wait_s: float | None = None  # a pause that is not the link's fault (429, directory import)


def backoff_s(attempts: int) -> float:
    """Exponential with full jitter: 5 s, 10 s, 20 s … capped at an hour."""
    return random.uniform(0.5, 1.0) * min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** max(0, attempts - 1))


def claim(db: Database, config: Config, owner: str, limit: int) -> list[Job]:
    now = utcnow()
    with db.transaction() as session:
        due = (select(MemberLink.id)
               .where(MemberLink.state == LinkState.PENDING, MemberLink.next_attempt_at <= now,
                      or_(MemberLink.leased_until.is_(None), MemberLink.leased_until < now))
               .order_by(MemberLink.next_attempt_at).limit(limit)
               .with_for_update(skip_locked=True))
        ids = session.scalars(due).all()
        if not ids:
            return []
        session.execute(update(MemberLink).where(MemberLink.id.in_(ids))
                        .values(leased_until=now + timedelta(seconds=LEASE_S), lease_owner=owner))
        links = session.scalars(select(MemberLink).where(MemberLink.id.in_(ids))
                                .execution_options(populate_existing=True)).all()
        jobs = []
        settings_by_shop: dict[int, Any] = {}
        for link in links:
            if link.shop_id not in settings_by_shop:
                settings_by_shop[link.shop_id] = effective_settings(session, session.get(Shop, link.shop_id), config)
            settings = settings_by_shop[link.shop_id]
            if not settings.syncable:
                link.state, link.leased_until, link.lease_owner = LinkState.PAUSED, None, None
                continue
            jobs.append(Job(link.id, link.shop_id, link.shopify_customer_id, link.smaregi_customer_id,
                            link.member_code, dict(link.desired or {}), link.desired_hash or "",
                            link.synced_hash, settings))
        return jobs


def renew(db: Database, job: Job, owner: str) -> bool:
    """Extend the lease just before working on a row; False if another worker took it over."""
    with db.transaction() as session:
        result = session.execute(update(MemberLink)
                                 .where(MemberLink.id == job.link_id, MemberLink.lease_owner == owner)
                                 .values(leased_until=utcnow() + timedelta(seconds=LEASE_S)))
        return result.rowcount == 1


def release(db: Database, link_ids: list[int], owner: str) -> int:
    """Hand back claimed links this worker will not work on (it is stopping): due again at once."""
    with db.transaction() as session:
        return session.execute(update(MemberLink).where(MemberLink.id.in_(link_ids), MemberLink.lease_owner == owner)
                               .values(leased_until=None, lease_owner=None)).rowcount


def release_all(db: Database, owner: str) -> int:
    """After an error in the loop nothing of this worker is running: every lease it holds can go."""
    with db.transaction() as session:
        return session.execute(update(MemberLink).where(MemberLink.lease_owner == owner)
                               .values(leased_until=None, lease_owner=None)).rowcount


def _still_ours(session, job: Job, owner: str) -> MemberLink | None:
    """The link, locked, if our lease on it still holds (else another worker took it over)."""
    link = session.scalar(select(MemberLink).where(MemberLink.id == job.link_id).with_for_update()
                          .execution_options(populate_existing=True))
    return link if link is not None and link.lease_owner == owner else None


def complete(db: Database, job: Job, owner: str, result: Synced) -> bool:
    now = utcnow()
    with db.transaction() as session:
        link = _still_ours(session, job, owner)
        if link is None:
            return False
        still_current = link.desired_hash == job.desired_hash and link.state == LinkState.PENDING
        if link.smaregi_customer_id != result.smaregi_customer_id:
            link.member_status = MemberStatus.ACTIVE.value  # linked to another (found or new) member than the one gone
        link.smaregi_customer_id = result.smaregi_customer_id
        link.member_code = result.member_code
        if result.store_code:
            link.store_member_code = result.store_code
        link.synced_hash = result.synced_hash
        link.attempts, link.last_error, link.conflict_candidates = 0, None, None
        link.leased_until = link.lease_owner = None
        if still_current:
            if link.event_received_at is not None:
                link.last_latency_ms = int((now - link.event_received_at).total_seconds() * 1000)
            link.state, link.synced_at, link.event_received_at = LinkState.SYNCED, now, None
        # else: a newer state arrived while we worked; the row stays pending and due.
        return True


def conflict(db: Database, job: Job, owner: str, candidates: list[dict]) -> bool:
    return _wait_for_merchant(db, job, owner, LinkState.CONFLICT, candidates,
                              reasons.text("conflict", count=len(candidates)))


def hold(db: Database, job: Job, owner: str, candidates: list[dict]) -> bool:
    return _wait_for_merchant(db, job, owner, LinkState.HELD, candidates, reasons.text("held"))


def _wait_for_merchant(db: Database, job: Job, owner: str, state: LinkState, candidates: list[dict],
                       reason: str) -> bool:
    """Nothing is sent to Smaregi; the link waits with the members the merchant may choose from.
    A newer customer state (intake) makes it pending again."""
    with db.transaction() as session:
        link = _still_ours(session, job, owner)
        if link is None:
            return False
        link.state, link.conflict_candidates, link.last_error = state, candidates, reason
        link.leased_until = link.lease_owner = None
        return True


def fail(db: Database, job: Job, owner: str, failure: Failure) -> bool:
    now = utcnow()
    with db.transaction() as session:
        link = _still_ours(session, job, owner)
        if link is None:
            return False
        link.leased_until = link.lease_owner = None
        if failure.wait_s is not None:  # not the link's fault: try again later, no attempt counted
            link.next_attempt_at = now + timedelta(seconds=failure.wait_s)
            return True
        link.attempts += 1
        link.last_error = failure.reason
        if failure.retryable and link.attempts < MAX_ATTEMPTS:
            link.next_attempt_at = now + timedelta(seconds=backoff_s(link.attempts))
        else:
            link.state = LinkState.FAILED
        return True
