"""The member directory: our index of a contract's Smaregi members by normalised e-mail.

Smaregi cannot search members by e-mail, so we page through every member once ("import", on first
use of a contract, resumable page by page), then keep the index fresh from the update-time window
(at most 31 days per call), and record every write we make ourselves.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from ..db import Database
from ..models import DirectoryMember, SmaregiContract, utcnow
from ..smaregi.client import SmaregiClient
from ..smaregi.ratelimit import ensure_contract
from .mapping import normalize_email

log = logging.getLogger(__name__)

PAGE_SIZE = 1000
REFRESH_PAGES = 3  # per call of the window refresh (≈ 0.3 s of reads at the sandbox limit)
WINDOW = timedelta(days=31)
OVERLAP = timedelta(minutes=5)  # Smaregi's updDateTime and our clock may disagree a little
SETTLE = timedelta(seconds=15)  # a change Smaregi stamped just before the cursor may commit after our read
WITHDRAWN = {"3", "4"}  # 退会, 名寄せ: not someone to link a new customer to


class DirectoryNotReady(Exception):
    """The first import of this contract's members has not finished; e-mail matching must wait."""


def _parse(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value)) if value else None
    except ValueError:
        return None


def remember(session: Session, contract_id: str, member: dict[str, Any]) -> None:
    """Upsert one member as Smaregi returned it (after our own write, or from a list page)."""
    remember_many(session, contract_id, [member])


def remember_many(session: Session, contract_id: str, members: list[dict[str, Any]]) -> None:
    """Upsert a list page at once (one statement, executed for every member)."""
    if not members:
        return
    now = utcnow()
    rows = [{"contract_id": contract_id, "smaregi_customer_id": str(m["customerId"]),
             "customer_code": m.get("customerCode"), "email_normalized": normalize_email(m.get("mailAddress")),
             "status": m.get("status"), "rank": m.get("rank"), "smaregi_updated_at": _parse(m.get("updDateTime")),
             "refreshed_at": now} for m in members]
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    stmt = insert(DirectoryMember.__table__)
    stmt = stmt.on_conflict_do_update(index_elements=["contract_id", "smaregi_customer_id"],
                                      set_={k: stmt.excluded[k] for k in rows[0] if k not in
                                            ("contract_id", "smaregi_customer_id")})
    session.connection().execute(stmt, rows)


def forget(session: Session, contract_id: str, smaregi_customer_id: str) -> None:
    session.execute(delete(DirectoryMember).where(DirectoryMember.contract_id == contract_id,
                                                  DirectoryMember.smaregi_customer_id == smaregi_customer_id))


def candidates_by_email(session: Session, contract_id: str, email: str | None) -> list[DirectoryMember]:
    return candidates_by_emails(session, contract_id, [email]).get(normalize_email(email), [])


def candidates_by_emails(session: Session, contract_id: str, emails) -> dict[str, list[DirectoryMember]]:
    """Store members a new customer could be, by normalised e-mail (one query for many customers)."""
    keys = {key for key in map(normalize_email, emails) if key is not None}
    found: dict[str, list[DirectoryMember]] = {}
    if not keys:
        return found
    rows = session.scalars(select(DirectoryMember).where(DirectoryMember.contract_id == contract_id,
                                                         DirectoryMember.email_normalized.in_(keys))
                           .order_by(DirectoryMember.smaregi_customer_id)).all()
    for r in rows:
        if r.status not in WITHDRAWN:
            found.setdefault(r.email_normalized, []).append(r)
    return found


def require_ready(session: Session, contract_id: str) -> None:
    row = session.get(SmaregiContract, contract_id)
    if row is None or row.directory_import_completed_at is None:
        raise DirectoryNotReady(contract_id)


def import_pages(db: Database, client: SmaregiClient, max_pages: int | None = None,
                 deadline: float | None = None) -> bool:
    """Continue the first import where it stopped. Returns True once the whole list is in."""
    contract_id = client.contract_id
    with db.transaction() as session:
        ensure_contract(session, contract_id)
        row = session.get(SmaregiContract, contract_id)
        if row.directory_import_completed_at is not None:
            return True
        if row.directory_import_started_at is None:
            row.directory_import_started_at = utcnow()
        page = row.directory_import_page + 1
    pages = 0
    while max_pages is None or pages < max_pages:
        started_at = utcnow()
        rows = client.list_customers(page=page, limit=PAGE_SIZE, deadline=deadline)
        with db.transaction() as session:
            remember_many(session, contract_id, rows)
            values: dict[str, Any] = {"directory_import_page": page,
                                      "directory_imported": SmaregiContract.directory_imported + len(rows)}
            done = len(rows) < PAGE_SIZE
            if done:
                # Anything changed while we paged is picked up by the window refresh from here.
                # Our clock starts the cursor; from here on it is Smaregi's (refresh_window).
                values.update(directory_import_completed_at=utcnow(),
                              directory_fresh_until=(_import_start(session, contract_id) or started_at) - OVERLAP)
            session.execute(update(SmaregiContract).where(SmaregiContract.contract_id == contract_id).values(**values))
        log.info("directory.import_page", extra={"contract_id": contract_id, "page": page, "rows": len(rows)})
        if done:
            return True
        page += 1
        pages += 1
    return False


def _import_start(session: Session, contract_id: str) -> datetime | None:
    return session.scalar(select(SmaregiContract.directory_import_started_at)
                          .where(SmaregiContract.contract_id == contract_id))


def refresh_window(db: Database, client: SmaregiClient, *, max_pages: int = REFRESH_PAGES,
                   max_age: timedelta = timedelta(0), deadline: float | None = None) -> int:
    """Read members changed since the cursor, oldest change first, at most `max_pages` pages a call
    (it runs in the worker's loop, in front of live syncs). Returns rows seen; a call that saw
    `max_pages` full pages has more to read. With `max_age`, does nothing if the cursor is that fresh.

    The cursor is the newest `updDateTime` read, on Smaregi's clock, so ours does not matter. Each
    page starts at the previous page's newest stamp rather than at a page number: a member changed
    again while we read moves to the end instead of shifting the pages under us. (More than
    PAGE_SIZE times `max_pages` changes stamped in one second would hold it in place: several times
    what a bulk import at 4 writes/s makes.) Our own writes and the import's re-reads are
    remembered as they happen; this is the backstop for the rest."""
    contract_id = client.contract_id
    with db.transaction() as session:
        row = session.get(SmaregiContract, contract_id)
        if row is None or row.directory_fresh_until is None:
            return 0
        cursor = row.directory_fresh_until
    if max_age and utcnow() - cursor <= max_age:
        return 0
    seen, page, start = 0, 1, cursor
    for _ in range(max_pages):
        end = min(start + WINDOW, max(utcnow(), start) + OVERLAP)  # Smaregi's clock may be ahead of ours
        rows = client.list_customers(page=page, limit=PAGE_SIZE, updated_from=start, updated_to=end,
                                     sort="updDateTime,customerId", deadline=deadline, background=True)
        stamps = [stamp for stamp in (_parse(m.get("updDateTime")) for m in rows) if stamp is not None]
        seen += len(rows)
        full = len(rows) == PAGE_SIZE
        if full and stamps and min(stamps) == max(stamps):
            page += 1  # a whole page changed in one second: the next page of that second
        elif full and stamps:
            start, page = max(stamps), 1
        if full:  # every change before the page's newest stamp is read; the next page starts there
            cursor = max([cursor, *stamps])
        else:  # caught up: the next call re-reads the last SETTLE of changes (only a clock far off
            # could still add one before `end - OVERLAP`). Full pages always move the cursor, so a
            # busy import (many pages inside SETTLE) cannot hold the refresh in place.
            cursor = max([cursor, *(stamp - SETTLE for stamp in stamps), min(end, utcnow()) - OVERLAP])
        with db.transaction() as session:
            remember_many(session, contract_id, rows)
            session.execute(update(SmaregiContract).where(SmaregiContract.contract_id == contract_id)
                            .values(directory_fresh_until=cursor))
        if not full:
            break
    log.info("directory.refreshed", extra={"contract_id": contract_id, "rows": seen})
    return seen
