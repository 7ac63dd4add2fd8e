"""What an operator (CLI) and the merchant (admin) can see and do about the sync."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, or_, select, update

from ..db import Database
from ..models import LinkState, MemberLink, Shop, utcnow
from .member_status import MemberStatus

# What the merchant is shown and can act on.
PROBLEMS = (LinkState.FAILED, LinkState.CONFLICT, LinkState.HELD)


@dataclass(frozen=True)
class LinkView:
    link_id: int
    shop_domain: str
    shopify_customer_id: int
    smaregi_customer_id: str | None
    member_code: str | None
    state: LinkState
    attempts: int
    last_error: str | None
    conflict_candidates: list | None
    updated_at: datetime
    member_status: str = "active"  # withdrawn / deleted at the register


def status_counts(db: Database, shop_id: int | None = None) -> dict[str, int]:
    with db.transaction() as session:
        query = select(MemberLink.state, func.count()).group_by(MemberLink.state)
        if shop_id is not None:
            query = query.where(MemberLink.shop_id == shop_id)
        counts = dict(session.execute(query).all())
    return {state.value: counts.get(state, 0) for state in LinkState}


def problems(db: Database, shop_id: int | None = None, limit: int = 200) -> list[LinkView]:
    """Failed and conflicting links, and links whose member was withdrawn or deleted at the
    register, most recent first, with the reason in plain words."""
    with db.transaction() as session:
        query = (select(MemberLink, Shop.domain).join(Shop, Shop.id == MemberLink.shop_id)
                 .where(or_(MemberLink.state.in_(PROBLEMS), MemberLink.member_status != MemberStatus.ACTIVE.value))
                 .order_by(MemberLink.updated_at.desc()).limit(limit))
        if shop_id is not None:
            query = query.where(MemberLink.shop_id == shop_id)
        return [LinkView(link.id, domain, link.shopify_customer_id, link.smaregi_customer_id, link.member_code,
                         link.state, link.attempts, link.last_error, link.conflict_candidates, link.updated_at,
                         link.member_status)
                for link, domain in session.execute(query).all()]


def retry_failed(db: Database, *, shop_id: int | None = None, link_ids: list[int] | None = None) -> int:
    """Failed links become due now, with a fresh attempt budget."""
    with db.transaction() as session:
        stmt = update(MemberLink).where(MemberLink.state == LinkState.FAILED)
        if shop_id is not None:
            stmt = stmt.where(MemberLink.shop_id == shop_id)
        if link_ids is not None:
            stmt = stmt.where(MemberLink.id.in_(link_ids))
        return session.execute(stmt.values(state=LinkState.PENDING, attempts=0, next_attempt_at=utcnow(),
                                           leased_until=None, lease_owner=None)).rowcount


def resync(db: Database, shop_id: int, shopify_customer_id: int) -> bool:
    """Write the customer to Smaregi again even if we think it is up to date."""
    with db.transaction() as session:
        result = session.execute(update(MemberLink).where(
            MemberLink.shop_id == shop_id, MemberLink.shopify_customer_id == shopify_customer_id,
            MemberLink.desired.is_not(None)).values(
            state=LinkState.PENDING, synced_hash=None, attempts=0, next_attempt_at=utcnow(), leased_until=None,
            lease_owner=None, event_received_at=utcnow()))
        return result.rowcount == 1


def resolve_conflict(db: Database, shop_id: int, link_id: int, smaregi_customer_id: str) -> bool:
    """The merchant chose which store member this customer is (several shared the e-mail, or the one
    that has it waits for Shopify to verify the customer's); the worker links and updates it."""
    with db.transaction() as session:
        link = session.scalar(select(MemberLink).where(MemberLink.id == link_id, MemberLink.shop_id == shop_id,
                                                       MemberLink.state.in_((LinkState.CONFLICT, LinkState.HELD)))
                           .with_for_update())
        allowed = {c["smaregi_customer_id"] for c in (link.conflict_candidates or [])} if link else set()
        if link is None or smaregi_customer_id not in allowed:
            return False
        link.smaregi_customer_id = smaregi_customer_id
        link.member_code = None
        link.synced_hash = None
        link.state, link.attempts, link.next_attempt_at = LinkState.PENDING, 0, utcnow()
        link.conflict_candidates = None
        return True


def shop_id_for(db: Database, domain: str) -> int | None:
    with db.transaction() as session:
        return session.scalar(select(Shop.id).where(Shop.domain == domain))
