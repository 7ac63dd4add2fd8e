"""Smaregi's webhooks in: what the register changed reaches the app in seconds.

Smaregi waits about 3 s and never retries, and its body carries ids only, so the request records
the event (once per `Smaregi-Event-Id`) and the worker does the reading:

- `pos:customers` (created, edited, deleted, bulk-…): each member is read again; the member
  directory takes its e-mail, code, rank and status, links to it take its state at the register
  (active, withdrawn, deleted: the shopper then gets `not_registered`), and their balance
  snapshots are dropped so the next balance read is live;
- `pos:transactions`: each transaction is read for its member, whose snapshots are dropped.

Events of a contract no shop of ours uses are answered 200 and not stored at all. A member is
always read, never taken from the event: events arrive late and out of order, the read is the
truth. Missed events are caught by the periodic `upd_date_time` window refresh (scheduler).
"""
from __future__ import annotations

import hmac
import logging
import random
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import bindparam, delete, or_, select, update
from sqlalchemy.orm import Session

from ..config import Config
from ..db import Database, insert_ignoring_conflict
from ..models import BalanceSnapshot, MemberLink, Shop, SmaregiEvent, utcnow
from ..services import Services
from ..smaregi.errors import SmaregiError, SmaregiNotFound
from . import directory
from .intake import NOTIFY_CHANNEL
from .member_status import MemberStatus

log = logging.getLogger(__name__)

IDS_FIELD = {"pos:customers": "customerIds", "pos:transactions": "transactionHeadIds"}
MAX_IDS = 10_000
SMAREGI_ID = re.compile(r"[0-9]{1,32}")
CONTRACT_ID = re.compile(r"[A-Za-z0-9_]{1,64}")
LEASE_S = 300
MAX_ATTEMPTS = 5
READ_BUDGET_S = 10.0
READ_SHARE = 0.5  # of the contract's reads per second: the rest stays free for shoppers' balances
BULK_IDS = 20  # more members than this in one event: read by id range instead of one read each
KEEP_EVENTS = timedelta(days=7)  # dedupe records: Smaregi does not retry, duplicates come close together


class MalformedEvent(Exception):
    """The body or headers are not a Smaregi webhook (after the secret matched)."""


@dataclass(frozen=True)
class SmaregiDelivery:
    event_id: str
    contract_id: str
    event: str
    action: str
    ids: tuple[str, ...]


def secret_matches(given: str | None, secret: str) -> bool:
    """Constant time. Header values arrive as latin-1 text, so any character encodes (no 500)."""
    return given is not None and hmac.compare_digest(given.encode("utf-8"), secret.encode("utf-8"))


def parse(headers: Mapping[str, str], payload: Any) -> SmaregiDelivery | None:
    """The delivery, or None for an event we do not act on (other `pos:*` events)."""
    event_id = (headers.get("Smaregi-Event-Id") or "").strip()
    if not event_id or len(event_id) > 128:
        raise MalformedEvent("Smaregi-Event-Id header missing or too long")
    if not isinstance(payload, dict):
        raise MalformedEvent("body is not a JSON object")
    contract_id, event, action = payload.get("contractId"), payload.get("event"), payload.get("action")
    if not isinstance(contract_id, str) or not CONTRACT_ID.fullmatch(contract_id):
        raise MalformedEvent("contractId missing or not a contract id")
    if headers.get("Smaregi-Contract-Id") not in (None, contract_id):
        raise MalformedEvent("Smaregi-Contract-Id header and contractId differ")
    if not isinstance(event, str) or headers.get("Smaregi-Event") not in (None, event):
        raise MalformedEvent("event missing, or differs from the Smaregi-Event header")
    if not isinstance(action, str) or not 1 <= len(action) <= 32:
        raise MalformedEvent("action missing")
    if event not in IDS_FIELD:
        return None
    raw = payload.get(IDS_FIELD[event])
    if not isinstance(raw, list) or len(raw) > MAX_IDS:
        raise MalformedEvent(f"{IDS_FIELD[event]} missing or not a list")
    ids = []
    for value in raw:  # numbers travel as strings, but accept plain integers too
        text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
        if not isinstance(text, str) or not SMAREGI_ID.fullmatch(text):
            raise MalformedEvent(f"{IDS_FIELD[event]} holds something that is not an id")
        ids.append(text)
    return SmaregiDelivery(event_id, contract_id, event, action, tuple(dict.fromkeys(ids)))


def record(db: Database, config: Config, delivery: SmaregiDelivery | None) -> str:
    """Record one delivery (milliseconds, no call to Smaregi). Returns the outcome."""
    if delivery is None:
        return "ignored"
    with db.transaction() as session:
        if not contract_in_use(session, config, delivery.contract_id):
            outcome = "unknown_contract"
        else:
            inserted = insert_ignoring_conflict(session, SmaregiEvent, {
                "event_id": delivery.event_id, "contract_id": delivery.contract_id, "event": delivery.event,
                "action": delivery.action, "ids": list(delivery.ids), "received_at": utcnow(), "attempts": 0,
                "next_attempt_at": utcnow()}, ["event_id"])
            outcome = "queued" if inserted is not None else "duplicate"
            if inserted is not None and db.is_postgres:
                session.execute(_notify())  # wakes a worker at commit
    log.info("smaregi_webhook.recorded", extra={"contract_id": delivery.contract_id, "event": delivery.event,
                                                "action": delivery.action, "event_id": delivery.event_id,
                                                "ids": len(delivery.ids), "outcome": outcome})
    return outcome


def _notify():
    from sqlalchemy import text

    return text(f"NOTIFY {NOTIFY_CHANNEL}")


def contract_in_use(session: Session, config: Config, contract_id: str) -> bool:
    if contract_id == config.smaregi_contract_id:
        return True
    return session.scalar(select(Shop.id).where(Shop.smaregi_contract_id == contract_id,
                                                Shop.uninstalled_at.is_(None)).limit(1)) is not None


def shops_on_contract(session: Session, config: Config, contract_id: str) -> list[int]:
    """Shops whose members live in this contract (their own, or the deployment's default)."""
    on = Shop.smaregi_contract_id == contract_id
    if contract_id == config.smaregi_contract_id:
        on = or_(on, Shop.smaregi_contract_id.is_(None))
    return list(session.scalars(select(Shop.id).where(on)).all())


# -- the worker's side ----------------------------------------------------------------------------------
def drain(services: Services, owner: str, limit: int = 5) -> int:
    """Claim due events and act on them. Returns how many were claimed."""
    now = utcnow()
    with services.db.transaction() as session:
        bulk = SmaregiEvent.action.like("bulk%")
        claimed = session.execute(select(SmaregiEvent.id, bulk).where(
            SmaregiEvent.processed_at.is_(None), SmaregiEvent.next_attempt_at <= now,
            or_(SmaregiEvent.leased_until.is_(None), SmaregiEvent.leased_until < now))
            # A member edited at the register goes before bulk jobs (an import sends hundreds), and
            # one bulk job a call, so a live customer sync waits for at most one.
            .order_by(bulk, SmaregiEvent.id).limit(limit)
            .with_for_update(skip_locked=True)).all()
        singles = [event_id for event_id, is_bulk in claimed if not is_bulk]
        ids = singles or [event_id for event_id, _ in claimed[:1]]
        if not ids:
            return 0
        session.execute(update(SmaregiEvent).where(SmaregiEvent.id.in_(ids))
                        .values(leased_until=now + timedelta(seconds=LEASE_S)))
        events = session.scalars(select(SmaregiEvent).where(SmaregiEvent.id.in_(ids))
                                 .order_by(SmaregiEvent.id)).all()
        session.expunge_all()
    for event in events:
        _run(services, event, owner)
    return len(events)


def _run(services: Services, event: SmaregiEvent, owner: str) -> None:
    started = time.monotonic()
    try:
        if event.event == "pos:customers":
            refresh_members(services, event.contract_id, event.ids)
        else:
            forget_balances_of_transactions(services, event.contract_id, event.ids)
    except Exception as exc:
        attempts = event.attempts + 1
        done = attempts >= MAX_ATTEMPTS  # given up: the window refresh catches the members later
        with services.db.transaction() as session:
            session.execute(update(SmaregiEvent).where(SmaregiEvent.id == event.id).values(
                attempts=attempts, leased_until=None, last_error=type(exc).__name__,
                processed_at=utcnow() if done else None,
                next_attempt_at=utcnow() + timedelta(seconds=random.uniform(0.5, 1.0) * 5 * 2 ** attempts)))
        log.warning("smaregi_webhook.failed", extra={"event_id": event.event_id, "error": type(exc).__name__,
                                                     "status": getattr(exc, "status", None), "given_up": done})
        if not isinstance(exc, SmaregiError):
            log.exception("smaregi_webhook.unexpected", extra={"event_id": event.event_id})
        return
    with services.db.transaction() as session:
        session.execute(update(SmaregiEvent).where(SmaregiEvent.id == event.id).values(
            processed_at=utcnow(), leased_until=None, last_error=None))
    log.info("smaregi_webhook.done", extra={"event_id": event.event_id, "event": event.event, "worker": owner,
                                            "ids": len(event.ids), "ms": round((time.monotonic() - started) * 1000)})


def _pace(services: Services) -> float:
    return 1.0 / max(1.0, services.config.smaregi_reads_per_s * READ_SHARE)


def refresh_members(services: Services, contract_id: str, customer_ids: list[str]) -> None:
    """Read the members again (the event is only a hint) and let the directory and links take them."""
    client = services.smaregi.contract(contract_id)
    found = _read_by_id_range(client, customer_ids) if len(customer_ids) > BULK_IDS else {}
    with services.db.transaction() as session:
        directory.remember_many(session, contract_id, list(found.values()))
        mark_members(session, services.config, contract_id,
                     {customer_id: _state_of(member) for customer_id, member in found.items()}, code_is_current=True)
    for n, customer_id in enumerate(i for i in customer_ids if i not in found):
        if n:
            time.sleep(_pace(services))
        try:
            member = client.get_customer(customer_id, deadline=time.monotonic() + READ_BUDGET_S)
        except SmaregiNotFound:
            member = None
        with services.db.transaction() as session:
            if member is None:
                directory.forget(session, contract_id, customer_id)
            else:
                directory.remember(session, contract_id, member)
            mark_members(session, services.config, contract_id, {customer_id: _state_of(member)},
                         code_is_current=True)


def _state_of(member: dict[str, Any] | None) -> tuple[MemberStatus, str | None]:
    if member is None:
        return MemberStatus.DELETED, None
    withdrawn = member.get("status") in directory.WITHDRAWN
    return MemberStatus.WITHDRAWN if withdrawn else MemberStatus.ACTIVE, member.get("customerCode")


def _read_by_id_range(client, customer_ids: list[str]) -> dict[str, dict[str, Any]]:
    """A bulk job's members, up to 1,000 ids a read (`customer_id-from/-to`) instead of a read each.
    Only a member inside the range asked for counts, and one not found is read on its own, so a
    filter Smaregi ignored (the parameter is third-party knowledge) costs reads, never a member."""
    wanted = sorted(set(customer_ids), key=int)
    found: dict[str, dict[str, Any]] = {}
    first = 0
    while first < len(wanted):
        low = int(wanted[first])
        last = first
        while last + 1 < len(wanted) and int(wanted[last + 1]) - low < directory.PAGE_SIZE:
            last += 1
        high = int(wanted[last])
        rows = client.list_customers(limit=directory.PAGE_SIZE, id_from=str(low), id_to=str(high),
                                     deadline=time.monotonic() + READ_BUDGET_S, background=True)
        found.update((str(m["customerId"]), m) for m in rows if low <= int(m["customerId"]) <= high)
        first = last + 1
    return {cid: found[cid] for cid in wanted if cid in found}


def prune(services: Services) -> int:
    """Dedupe records of handled events, after a week."""
    with services.db.transaction() as session:
        return session.execute(delete(SmaregiEvent).where(
            SmaregiEvent.processed_at.is_not(None), SmaregiEvent.received_at < utcnow() - KEEP_EVENTS)).rowcount


def mark_member(session: Session, config: Config, contract_id: str, smaregi_customer_id: str,
                status: MemberStatus | None, code: str | None = None, code_is_current: bool = False) -> None:
    mark_members(session, config, contract_id, {smaregi_customer_id: (status, code)}, code_is_current)


def mark_members(session: Session, config: Config, contract_id: str,
                 marks: dict[str, tuple[MemberStatus | None, str | None]], code_is_current: bool = False) -> None:
    """Links to these members take their state (when given); their customers' snapshots are dropped.
    A numeric member code is also a Shopify id (our codes are), for a member found by code only.
    `code_is_current`: read from the member itself (not an old transaction), so links adopt it, as
    the audit's fix does: the register's code is the one its scanner knows. A few statements
    whatever the number of members (a bulk job's event carries a hundred)."""
    shop_ids = shops_on_contract(session, config, contract_id)
    if not shop_ids or not marks:
        return
    links = session.execute(select(MemberLink.id, MemberLink.shopify_customer_id, MemberLink.smaregi_customer_id)
                            .where(MemberLink.shop_id.in_(shop_ids),
                                   MemberLink.smaregi_customer_id.in_(list(marks)))).all()
    by_status: dict[MemberStatus, list[int]] = {}
    for row in links:
        status = marks[row.smaregi_customer_id][0]
        if status is not None:
            by_status.setdefault(status, []).append(row.id)
    for status, link_ids in by_status.items():
        session.execute(update(MemberLink).where(MemberLink.id.in_(link_ids)).values(member_status=status.value)
                        .execution_options(synchronize_session=False))
    recoded = [{"l_id": row.id, "l_code": marks[row.smaregi_customer_id][1]} for row in links
               if code_is_current and marks[row.smaregi_customer_id][1]]
    if recoded:
        table = MemberLink.__table__
        session.connection().execute(table.update().where(
            table.c.id == bindparam("l_id"), table.c.member_code.is_distinct_from(bindparam("l_code")))
            .values(member_code=bindparam("l_code")), recoded)
    customers = {row.shopify_customer_id for row in links}
    customers |= {int(code) for _, code in marks.values() if code and code.isdigit() and len(code) <= 18}
    if customers:
        session.execute(delete(BalanceSnapshot).where(BalanceSnapshot.shop_id.in_(shop_ids),
                                                      BalanceSnapshot.shopify_customer_id.in_(customers)))


def forget_balances_of_transactions(services: Services, contract_id: str, transaction_ids: list[str]) -> None:
    client = services.smaregi.contract(contract_id)
    for n, transaction_id in enumerate(transaction_ids):
        if n:
            time.sleep(_pace(services))
        try:
            head = client.get_transaction(transaction_id, deadline=time.monotonic() + READ_BUDGET_S)
        except SmaregiNotFound:
            continue
        if not head.get("customerId"):
            continue  # a sale without a member
        with services.db.transaction() as session:
            mark_member(session, services.config, contract_id, str(head["customerId"]), None,
                        head.get("customerCode"))
