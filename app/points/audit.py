"""The ledger audit: what the app says it did, compared with what Smaregi holds.

Daily (worker scheduler) and on the merchant's button, per shop:
- every point movement the ledger says was applied in Smaregi has its Smaregi transaction, on
  that member (transactions of the last HISTORY_DAYS: Smaregi's list window);
- every linked member still exists, is not withdrawn, and has the code we set.

Differences become findings for the merchant. Nothing is changed silently: a finding stays open
until the merchant fixes it (only where the fix is safe: adopt a member's new code, or link the
customer again) or dismisses it, or a later run no longer sees the difference. Points are never
re-sent by the audit.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ..models import AuditFinding, AuditRun, MemberLink, Shop, utcnow
from ..services import Services
from ..settings import effective_settings
from ..sync import directory, scheduler
from . import movements

log = logging.getLogger(__name__)

HISTORY_DAYS = 31  # Smaregi lists transactions by update time, at most 31 days per call
OVERLAP = timedelta(minutes=10)
PAGE = 1000
MOVEMENT_DIVISIONS = ("6", "7", "8")  # ポイント加算, ポイント減算, ポイント失効 (point/add can lapse first)
AUDIT_EVERY = timedelta(hours=24)
CALL_BUDGET_S = 60.0


class AuditState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class FindingKind(StrEnum):
    MISSING_TRANSACTION = "missing_transaction"  # the ledger applied points; Smaregi has no such transaction
    OTHER_MEMBER = "transaction_other_member"  # the transaction exists, on another member
    MEMBER_MISSING = "member_missing"  # the linked member no longer exists in Smaregi
    MEMBER_WITHDRAWN = "member_withdrawn"
    CODE_CHANGED = "member_code_changed"  # the member's code is no longer the one we set


FIXES = {FindingKind.CODE_CHANGED: "adopt_code", FindingKind.MEMBER_MISSING: "link_again"}


@dataclass(frozen=True)
class AppliedMovement:
    ref: str  # "conversion:<id>": unique across the ledger
    shopify_customer_id: int
    smaregi_customer_id: str | None
    points: int  # signed as Smaregi saw it: − deducted, + added
    transaction_ids: tuple[str, ...]
    applied_at: datetime


def applied_movements(session: Session, shop_id: int, since: datetime) -> list[AppliedMovement]:
    """The point changes the app's ledger (app/points/movements.py) says it applied in Smaregi since
    `since`. A movement that sent nothing (all of it owed) has no transaction to look for."""
    return [AppliedMovement(f"movement:{m.id}", m.shopify_customer_id, m.smaregi_customer_id, m.sent_points,
                            (m.smaregi_transaction_id,) if m.smaregi_transaction_id else (), m.applied_at)
            for m in movements.applied_movements(session, shop_id, since=since) if m.sent_points]


@dataclass(frozen=True)
class Observed:
    kind: FindingKind
    subject: str
    shopify_customer_id: int | None
    details: dict[str, Any]


# -- running ---------------------------------------------------------------------------------------------
def request_audit(services: Services, shop_id: int) -> int:
    """The merchant's button: queue a run (one at a time per shop) for the worker."""
    with services.db.transaction() as session:
        queued = session.scalar(select(AuditRun.id).where(
            AuditRun.shop_id == shop_id, AuditRun.state.in_((AuditState.QUEUED, AuditState.RUNNING))))
        if queued is None:
            run = AuditRun(shop_id=shop_id, state=AuditState.QUEUED, requested_at=utcnow())
            session.add(run)
            session.flush()
            queued = run.id
    scheduler.schedule_now(services, "ledger_audit")
    return queued


def run_due(services: Services) -> int:
    """Queued runs, then shops whose last audit is older than a day. Returns runs done."""
    now = utcnow()
    with services.db.transaction() as session:
        queued = session.scalars(select(AuditRun.id).where(AuditRun.state == AuditState.QUEUED)
                                 .order_by(AuditRun.requested_at)).all()
        shops = session.scalars(select(Shop.id).where(Shop.uninstalled_at.is_(None))).all()
        for shop_id in shops:
            last = session.scalar(select(AuditRun.requested_at).where(AuditRun.shop_id == shop_id)
                                  .order_by(AuditRun.requested_at.desc()).limit(1))
            contract = effective_settings(session, session.get(Shop, shop_id), services.config).contract_id
            if contract and (last is None or now - last >= AUDIT_EVERY) and shop_id not in queued:
                run = AuditRun(shop_id=shop_id, state=AuditState.QUEUED, requested_at=now)
                session.add(run)
                session.flush()
                queued = [*queued, run.id]
    for run_id in queued:
        audit(services, run_id)
    return len(queued)


def audit(services: Services, run_id: int) -> AuditRun:
    with services.db.transaction() as session:
        claimed = session.execute(update(AuditRun).where(AuditRun.id == run_id, AuditRun.state == AuditState.QUEUED)
                                  .values(state=AuditState.RUNNING, started_at=utcnow())).rowcount
        run = session.get(AuditRun, run_id)
        shop = session.get(Shop, run.shop_id)
        contract = effective_settings(session, shop, services.config).contract_id
    if not claimed:
        return run
    try:
        if contract is None:
            raise LookupError("no Smaregi contract")
        since = utcnow() - timedelta(days=HISTORY_DAYS)
        with services.db.transaction() as session:
            movements = applied_movements(session, run.shop_id, since)
            links = session.execute(select(MemberLink.id, MemberLink.shopify_customer_id,
                                           MemberLink.smaregi_customer_id, MemberLink.member_code).where(
                MemberLink.shop_id == run.shop_id, MemberLink.smaregi_customer_id.is_not(None),
                MemberLink.state != "conflict")).all()
        deadline = time.monotonic() + CALL_BUDGET_S
        client = services.smaregi.contract(contract)
        transactions = _transactions(client, since - OVERLAP, deadline)
        members = _members(services, client, deadline)
        observed = [*_compare_movements(movements, transactions),
                    *_compare_links(links, members)]
        checked = {m.ref for m in movements} | {f"link:{row.id}" for row in links}
        with services.db.transaction() as session:
            _record(session, run.shop_id, observed, checked)
            session.execute(update(AuditRun).where(AuditRun.id == run_id).values(
                state=AuditState.DONE, finished_at=utcnow(), movements_checked=len(movements),
                members_checked=len(links), differences=len(observed)))
        log.info("audit.done", extra={"shop_id": run.shop_id, "run_id": run_id, "movements": len(movements),
                                      "links": len(links), "differences": len(observed)})
    except Exception as exc:
        with services.db.transaction() as session:
            session.execute(update(AuditRun).where(AuditRun.id == run_id).values(
                state=AuditState.FAILED, finished_at=utcnow(), error=type(exc).__name__))
        log.warning("audit.failed", extra={"shop_id": run.shop_id, "run_id": run_id, "error": type(exc).__name__})
    with services.db.transaction() as session:
        return session.get(AuditRun, run_id)


def _transactions(client, since: datetime, deadline: float) -> dict[str, dict[str, Any]]:
    """Every point-movement transaction of the contract since `since`, by head id."""
    out: dict[str, dict[str, Any]] = {}
    now = utcnow()
    start = since
    while start < now:
        end = min(start + timedelta(days=HISTORY_DAYS), now)
        for division in MOVEMENT_DIVISIONS:
            page = 1
            while True:
                rows = client.list_point_transactions(division=division, updated_from=start, updated_to=end,
                                                      page=page, limit=PAGE, deadline=deadline)
                out.update({str(t["transactionHeadId"]): t for t in rows})
                if len(rows) < PAGE:
                    break
                page += 1
        start = end
    return out


def _members(services: Services, client, deadline: float) -> dict[str, dict[str, Any]]:
    """Every member of the contract (pages of 1,000), which also refreshes the directory."""
    out: dict[str, dict[str, Any]] = {}
    page = 1
    while True:
        rows = client.list_customers(page=page, limit=PAGE, deadline=deadline)
        with services.db.transaction() as session:
            for member in rows:
                directory.remember(session, client.contract_id, member)
        out.update({str(m["customerId"]): {"code": m.get("customerCode"), "status": m.get("status")} for m in rows})
        if len(rows) < PAGE:
            return out
        page += 1


def _compare_movements(movements: list[AppliedMovement], transactions: dict[str, dict[str, Any]]) -> list[Observed]:
    found = []
    claimed = {t for m in movements for t in m.transaction_ids}
    for m in movements:
        ids = list(m.transaction_ids)
        if not ids:  # e.g. confirmed by the merchant after a timeout: look for it like reconciliation does
            match = next((t for tid, t in transactions.items() if tid not in claimed
                          and str(t.get("transactionHeadDivision")) == ("7" if m.points < 0 else "6")
                          and int(t.get("spendPoint" if m.points < 0 else "newPoint") or 0) == abs(m.points)
                          and str(t.get("customerId")) == str(m.smaregi_customer_id)), None)
            if match is not None:
                claimed.add(str(match["transactionHeadId"]))
                continue
            found.append(Observed(FindingKind.MISSING_TRANSACTION, m.ref, m.shopify_customer_id,
                                  _movement_details(m, [])))
            continue
        missing = [t for t in ids if t not in transactions]
        if missing:
            found.append(Observed(FindingKind.MISSING_TRANSACTION, m.ref, m.shopify_customer_id,
                                  _movement_details(m, missing)))
        elif any(str(transactions[t].get("customerId")) != str(m.smaregi_customer_id) for t in ids):
            found.append(Observed(FindingKind.OTHER_MEMBER, m.ref, m.shopify_customer_id,
                                  {**_movement_details(m, []), "on_members": sorted(
                                      {str(transactions[t].get("customerId")) for t in ids})}))
    return found


def _movement_details(m: AppliedMovement, missing: list[str]) -> dict[str, Any]:
    return {"movement": m.ref, "points": m.points, "applied_at": m.applied_at.isoformat(),
            "smaregi_customer_id": m.smaregi_customer_id, "transaction_ids": list(m.transaction_ids),
            "missing_transaction_ids": missing}


def _compare_links(links, members: dict[str, dict[str, Any]]) -> list[Observed]:
    found = []
    for row in links:
        subject = f"link:{row.id}"
        base = {"link_id": row.id, "smaregi_customer_id": row.smaregi_customer_id, "our_code": row.member_code}
        member = members.get(str(row.smaregi_customer_id))
        if member is None:
            found.append(Observed(FindingKind.MEMBER_MISSING, subject, row.shopify_customer_id, base))
        elif member["status"] in directory.WITHDRAWN:
            found.append(Observed(FindingKind.MEMBER_WITHDRAWN, subject, row.shopify_customer_id, base))
        elif row.member_code and member["code"] != row.member_code:
            found.append(Observed(FindingKind.CODE_CHANGED, subject, row.shopify_customer_id,
                                  {**base, "smaregi_code": member["code"]}))
    return found


def _record(session: Session, shop_id: int, observed: list[Observed], checked: set[str]) -> None:
    """Open what is seen (a dismissed finding stays dismissed); close as `gone` what was checked
    this time and no longer differs."""
    now = utcnow()
    existing = {(f.kind, f.subject): f for f in session.scalars(
        select(AuditFinding).where(AuditFinding.shop_id == shop_id)).all()}
    seen = set()
    for o in observed:
        key = (o.kind.value, o.subject)
        seen.add(key)
        row = existing.get(key)
        if row is None:
            session.add(AuditFinding(shop_id=shop_id, kind=o.kind.value, subject=o.subject,
                                     shopify_customer_id=o.shopify_customer_id, details=o.details,
                                     first_seen_at=now, last_seen_at=now))
            continue
        row.details, row.last_seen_at = o.details, now
        if row.resolution in ("fixed", "gone"):
            row.resolved_at, row.resolution, row.first_seen_at = None, None, now
    for key, row in existing.items():
        if key not in seen and row.resolved_at is None and row.subject in checked:
            row.resolved_at, row.resolution = now, "gone"


# -- what the merchant sees and does --------------------------------------------------------------------
def overview(services: Services, shop_id: int) -> dict[str, Any]:
    with services.db.transaction() as session:
        last = session.scalar(select(AuditRun).where(AuditRun.shop_id == shop_id)
                              .order_by(AuditRun.requested_at.desc()).limit(1))
        rows = session.scalars(select(AuditFinding).where(AuditFinding.shop_id == shop_id,
                                                          AuditFinding.resolved_at.is_(None))
                               .order_by(AuditFinding.first_seen_at.desc()).limit(500)).all()
    return {"last_run": None if last is None else {
                "state": last.state, "requested_at": last.requested_at.isoformat(),
                "finished_at": last.finished_at.isoformat() if last.finished_at else None,
                "movements_checked": last.movements_checked, "members_checked": last.members_checked,
                "differences": last.differences, "error": last.error},
            "findings": [{"id": f.id, "kind": f.kind, "customer_id": f.shopify_customer_id, "details": f.details,
                          "first_seen_at": f.first_seen_at.isoformat(), "last_seen_at": f.last_seen_at.isoformat(),
                          "fix": FIXES.get(FindingKind(f.kind))} for f in rows]}


def fix(services: Services, shop_id: int, finding_id: int) -> bool:
    """The one-click fix, where it is safe; False when this finding has none (or is not this shop's)."""
    from ..sync.member_status import MemberStatus

    with services.db.transaction() as session:
        finding = session.scalar(select(AuditFinding).where(
            AuditFinding.id == finding_id, AuditFinding.shop_id == shop_id,
            AuditFinding.resolved_at.is_(None)).with_for_update())
        if finding is None or FindingKind(finding.kind) not in FIXES:
            return False
        link = session.scalar(select(MemberLink).where(MemberLink.id == finding.details["link_id"],
                                                       MemberLink.shop_id == shop_id).with_for_update())
        if link is None or link.smaregi_customer_id != finding.details["smaregi_customer_id"]:
            return False  # the link moved on since the audit: run it again
        if finding.kind == FindingKind.CODE_CHANGED:
            # The register's code is the one its scanner knows: keep the member, take its code.
            link.member_code = finding.details["smaregi_code"]
        else:
            # Find the member by code or create it again, through the normal sync. No points move.
            link.smaregi_customer_id = link.member_code = link.synced_hash = None
            link.member_status = MemberStatus.ACTIVE.value
            link.state, link.attempts, link.next_attempt_at = "pending", 0, utcnow()
        finding.resolved_at, finding.resolution = utcnow(), "fixed"
    log.info("audit.fixed", extra={"shop_id": shop_id, "finding_id": finding_id})
    return True


def dismiss(services: Services, shop_id: int, finding_id: int) -> bool:
    with services.db.transaction() as session:
        return session.execute(update(AuditFinding).where(
            AuditFinding.id == finding_id, AuditFinding.shop_id == shop_id, AuditFinding.resolved_at.is_(None))
            .values(resolved_at=utcnow(), resolution="dismissed")).rowcount == 1
