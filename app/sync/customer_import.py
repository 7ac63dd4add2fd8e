"""Import of a shop's existing Shopify customers into Smaregi (DESIGN "Installing on a store that
already has customers").

An import moves through three phases, each resumable from what the database holds:

1. export — a Shopify bulk query of every customer; we keep the operation id and poll it;
2. read — the JSONL result is streamed line by line; each customer becomes (or refreshes) its
   member link, as a webhook would, except that the link is not due in the live queue: the import
   owns it. `lines_read` moves in the same transaction as the rows, so a crash re-reads nothing;
3. match — the same rules as live sync. What needs no judgement goes to Smaregi in bulk: a new
   customer (no member with their code, no store member with their e-mail) is bulk-created, a
   customer whose numeric id already is a member's code is bulk-updated, and a customer whose
   verified e-mail is that of exactly one store member nobody else links or wants is linked by a
   bulk update that gives the store member our code (the directory is checked again just before
   sending). Everything else (a stored link, an unverified or shared e-mail, a bulk result we could
   not confirm) is synced one by one by the worker's own `process`, i.e. by app/sync/matching.py,
   so held customers and conflicts follow exactly the live rules.

Smaregi's bulk requests are asynchronous. A batch is written before it is sent; its callback URL
carries a random token. Smaregi does not sign callbacks, so a callback only says "look now": we
re-read the members updated since the batch was sent (one paged list call covers many batches),
record what we find, and sync the rest one by one. A lost callback is noticed after
CALLBACK_WAIT_S and handled the same way. Nothing is created twice: member codes are unique in
Smaregi and the one-by-one sync finds a member by code before creating.

The worker runs one bounded step at a time, only when the live queue is empty, so a live webhook
waits at most one step and shares the contract's write limit with the import.
"""
from __future__ import annotations

import hashlib
import logging
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import and_, bindparam, case, delete, func, or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from ..db import Database, insert_ignoring_conflict
from ..models import (
    CustomerImport,
    DirectoryMember,
    ImportBatch,
    ImportCustomer,
    LinkState,
    MemberLink,
    Shop,
    utcnow,
)
from ..services import Services
from ..settings import effective_settings
from ..shopify import bulk
from ..shopify.admin import ShopifyRejected, ShopifyUnavailable
from ..shopify.tokens import ShopNotAuthorized
from ..smaregi.client import BULK_MAX
from ..smaregi.errors import ContractPaused, SmaregiRateLimited, SmaregiServerError, SmaregiTimeout, SmaregiUnreachable
from . import directory, reasons, scheduler
from .intake import NOTIFY_CHANNEL, MalformedPayload, parse_time
from .mapping import customer_state, email_verified, fingerprint, normalize_email, smaregi_fields
from .matching import Job, _update_fields
from .queue import LEASE_S as LINK_LEASE_S

log = logging.getLogger(__name__)

IMPORT_LEASE_S = 30  # a dead worker's import is taken over this long after its last step
MAX_IN_FLIGHT = 8  # bulk requests awaiting their result before we send more
CALLBACK_WAIT_S = 20.0  # a callback later than this is presumed lost: re-read anyway
CLOCK_SKEW_S = 10  # between our clock and Smaregi's updDateTime
READ_CHUNK = 500  # lines staged per step (one transaction)
CLASSIFY_CHUNK = 500  # customers matched against the directory per step
CLASSIFY_AHEAD = 4 * BULK_MAX  # match more once fewer customers than this wait for a bulk request
SINGLES_PER_STEP = 2
LIST_PAGE = 1000
STEP_BUDGET_S = 20.0
SEND_BURST_S = 1.0  # bulk requests are sent for this long per step (≈ 3 at the background write share)
DIRECTORY_MAX_AGE = timedelta(seconds=60)


class ImportState(StrEnum):
    NONE = "none"
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


class ImportPhase(StrEnum):
    EXPORT = "export"
    READ = "read"
    MATCH = "match"


class Outcome(StrEnum):
    NEW = "new"  # read, not matched yet
    TO_CREATE = "to_create"  # waiting for a bulk create
    TO_UPDATE = "to_update"  # waiting for a bulk update (their id is a member's code)
    TO_LINK = "to_link"  # waiting for a bulk update that links the store member with their verified e-mail
    BULK = "bulk"  # in a bulk request whose result we have not confirmed
    SINGLE = "single"  # to be synced one by one (the live rules)
    LINKED = "linked"
    CREATED = "created"
    HELD = "held"
    FAILED = "failed"


BULK_KINDS = {Outcome.TO_CREATE: "create", Outcome.TO_UPDATE: "update", Outcome.TO_LINK: "link"}
ACTIVE = (ImportState.QUEUED.value, ImportState.RUNNING.value)
UNFINISHED = (Outcome.NEW.value, Outcome.TO_CREATE.value, Outcome.TO_UPDATE.value, Outcome.TO_LINK.value,
              Outcome.BULK.value, Outcome.SINGLE.value)
COUNTED = ("linked", "created", "held", "failed")
# Any other link state is held for the merchant.
LIVE_STATES = (LinkState.PENDING, LinkState.SYNCED, LinkState.FAILED, LinkState.PAUSED)


@dataclass(frozen=True)
class ImportStatus:
    id: int | None
    state: str
    counted: int = 0
    linked: int = 0
    created: int = 0
    held: int = 0
    failed: int = 0
    phase: str | None = None
    reason: str | None = None
    time_left_s: int | None = None
    created_at: datetime | None = None
    finished_at: datetime | None = None

    def contract_json(self) -> dict[str, Any]:
        """The CLI's `import status --json` object (DESIGN: the shape is a contract)."""
        return {"state": self.state, "counted": self.counted, "linked": self.linked, "created": self.created,
                "held": self.held, "failed": self.failed}

    def admin_json(self) -> dict[str, Any]:
        return {**self.contract_json(), "id": self.id, "phase": self.phase, "reason": self.reason,
                "time_left_s": self.time_left_s,
                "created_at": self.created_at.isoformat() if self.created_at else None,
                "finished_at": self.finished_at.isoformat() if self.finished_at else None}


class _NoLongerOurs(Exception):
    pass


class ImportFailed(Exception):
    """The import cannot go on; `reason` is shown to the merchant and the operator."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


# -- what the CLI and the admin call ----------------------------------------------------------------
def start(db: Database, shop_id: int) -> tuple[ImportStatus, bool]:
    """Queue an import unless one is queued or running. Returns (its status, whether it is new)."""
    with db.transaction() as session:
        new_id = insert_ignoring_conflict(session, CustomerImport, {
            "shop_id": shop_id, "state": ImportState.QUEUED.value, "phase": ImportPhase.EXPORT.value,
            "lines_read": 0, "created_at": utcnow(), "updated_at": utcnow()})
        _notify(session)
    if new_id is not None:
        log.info("import.queued", extra={"shop_id": shop_id, "import_id": new_id})
    return status(db, shop_id), new_id is not None


def cancel(db: Database, shop_id: int) -> bool:
    """Stop the shop's queued or running import. Customers it had not reached are left as they were
    before it: links it made for them are removed, links that existed go back to the live queue."""
    with db.transaction() as session:
        imp = session.scalar(select(CustomerImport).where(CustomerImport.shop_id == shop_id,
                                                          CustomerImport.state.in_(ACTIVE)).with_for_update())
        if imp is None:
            return False
        _close(session, imp, ImportState.CANCELLED, None)
    log.info("import.cancelled", extra={"shop_id": shop_id, "import_id": imp.id})
    return True


def status(db: Database, shop_id: int) -> ImportStatus:
    """The latest import of the shop (state `none`, zeros, before any)."""
    with db.transaction() as session:
        imp = session.scalar(select(CustomerImport).where(CustomerImport.shop_id == shop_id)
                             .order_by(CustomerImport.id.desc()).limit(1))
        if imp is None:
            return ImportStatus(None, ImportState.NONE.value)
        counts = dict(session.execute(select(ImportCustomer.outcome, func.count())
                                      .where(ImportCustomer.import_id == imp.id)
                                      .group_by(ImportCustomer.outcome)).all())
    counted = sum(counts.values())
    done = sum(counts.get(k, 0) for k in COUNTED)
    time_left = None
    if imp.state == ImportState.RUNNING.value and imp.phase == ImportPhase.MATCH.value and imp.matching_started_at:
        elapsed = (utcnow() - imp.matching_started_at).total_seconds()
        if done and elapsed > 0:
            time_left = round((counted - done) / (done / elapsed))
    return ImportStatus(imp.id, imp.state, counted, counts.get("linked", 0), counts.get("created", 0),
                        counts.get("held", 0), counts.get("failed", 0), imp.phase, imp.reason, time_left,
                        imp.created_at, imp.finished_at)


def held_customers(db: Database, shop_id: int, limit: int = 200) -> list[dict[str, Any]]:
    """The latest import's held customers, with the link the merchant resolves them through."""
    with db.transaction() as session:
        import_id = session.scalar(select(func.max(CustomerImport.id)).where(CustomerImport.shop_id == shop_id))
        rows = session.execute(
            select(ImportCustomer.shopify_customer_id, MemberLink.id, MemberLink.state, MemberLink.last_error)
            .join(MemberLink, MemberLink.id == ImportCustomer.link_id)
            .where(ImportCustomer.import_id == import_id, ImportCustomer.outcome == Outcome.HELD.value,
                   MemberLink.shop_id == shop_id)
            .order_by(ImportCustomer.line).limit(limit)).all()
    return [{"customer_id": str(cid), "link_id": link_id, "state": state, "reason": reason}
            for cid, link_id, state, reason in rows]


def record_callback(db: Database, token: str) -> bool:
    """Smaregi says a bulk request finished. Unsigned, so it is only a hint: the batch is re-read
    at once instead of after CALLBACK_WAIT_S. False for a token no batch of ours carries."""
    if not token or len(token) > 128:
        return False
    with db.transaction() as session:
        batch_id = session.scalar(select(ImportBatch.id).where(ImportBatch.token_hash == _token_hash(token)))
        if batch_id is None:
            return False
        session.execute(update(ImportBatch).where(ImportBatch.id == batch_id, ImportBatch.callback_at.is_(None))
                        .values(callback_at=utcnow()))
        _notify(session)
    log.info("import.callback", extra={"batch_id": batch_id})
    return True


def callback_url(app_url: str, token: str) -> str:
    return f"{app_url.rstrip('/')}/smaregi/bulk-callback/{token}"


# -- the worker's side ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Claimed:
    id: int
    shop_id: int
    domain: str
    phase: str
    bulk_operation_id: str | None
    result_url: str | None
    lines_read: int


class Importer:
    """Advances the imports, one bounded step per call (Worker.run calls it when idle)."""

    def __init__(self, services: Services, owner: str, process: Callable[[Job], str | None]):
        self.s = services
        self.owner = owner
        self.process = process  # the worker's one-member sync (matching + queue bookkeeping)
        self._reader: tuple[int, int, Iterator[dict[str, Any]]] | None = None  # (import id, next line, lines)

    def step(self) -> bool:
        """True if it did some work (call again soon), False when there is nothing to do now."""
        claimed = self._claim()
        if claimed is None:
            return False
        try:
            if claimed.phase == ImportPhase.EXPORT.value:
                return self._export(claimed)
            if claimed.phase == ImportPhase.READ.value:
                return self._read(claimed)
            return self._match(claimed)
        except ImportFailed as exc:
            self._fail(claimed, exc.reason)
            return True
        except (ShopifyUnavailable, ContractPaused, SmaregiRateLimited, SmaregiUnreachable, SmaregiServerError,
                SmaregiTimeout) as exc:
            log.warning("import.step_deferred", extra={"import_id": claimed.id, "error": type(exc).__name__})
            return False
        except Exception:
            log.exception("import.step_failed", extra={"import_id": claimed.id})
            return False

    # -- claiming -----------------------------------------------------------------------------
    def _claim(self) -> _Claimed | None:
        now = utcnow()
        with self.s.db.transaction() as session:
            imp = session.scalar(
                select(CustomerImport).where(
                    CustomerImport.state.in_(ACTIVE),
                    or_(CustomerImport.lease_owner == self.owner, CustomerImport.leased_until.is_(None),
                        CustomerImport.leased_until < now))
                .order_by(CustomerImport.id).limit(1).with_for_update(skip_locked=True))
            if imp is None:
                return None
            if imp.state == ImportState.QUEUED.value:
                log.info("import.started", extra={"import_id": imp.id, "shop_id": imp.shop_id})
            elif imp.lease_owner != self.owner:
                log.info("import.resumed", extra={"import_id": imp.id, "phase": imp.phase, "worker": self.owner})
            imp.state, imp.lease_owner = ImportState.RUNNING.value, self.owner
            imp.leased_until = now + timedelta(seconds=IMPORT_LEASE_S)
            domain = session.scalar(select(Shop.domain).where(Shop.id == imp.shop_id))
            return _Claimed(imp.id, imp.shop_id, domain, imp.phase, imp.bulk_operation_id, imp.result_url,
                            imp.lines_read)

    def _save(self, claimed: _Claimed, **values: Any) -> bool:
        """Write the import's progress while it is still ours and still running."""
        with self.s.db.transaction() as session:
            return session.execute(update(CustomerImport).where(
                CustomerImport.id == claimed.id, CustomerImport.lease_owner == self.owner,
                CustomerImport.state == ImportState.RUNNING.value).values(**values)).rowcount == 1

    def _fail(self, claimed: _Claimed, reason: str) -> None:
        with self.s.db.transaction() as session:
            imp = session.scalar(select(CustomerImport).where(CustomerImport.id == claimed.id,
                                                              CustomerImport.state == ImportState.RUNNING.value)
                                 .with_for_update())
            if imp is not None:
                _close(session, imp, ImportState.FAILED, reason)
        log.warning("import.failed", extra={"import_id": claimed.id, "shop_id": claimed.shop_id})

    def _settings(self, claimed: _Claimed):
        with self.s.db.transaction() as session:
            settings = effective_settings(session, session.get(Shop, claimed.shop_id), self.s.config)
        if settings.contract_id is None:
            raise ImportFailed(reasons.text("import_no_contract"))
        if not settings.syncable:
            raise ImportFailed(reasons.text("import_sync_off"))
        return settings

    # -- 1. export ----------------------------------------------------------------------------
    def _export(self, claimed: _Claimed) -> bool:
        self._settings(claimed)
        try:
            if claimed.bulk_operation_id is None:
                operation_id = bulk.start_customer_export(self.s.admin, claimed.domain)
                self._save(claimed, bulk_operation_id=operation_id)
                log.info("import.export_started", extra={"import_id": claimed.id})
                return True
            op = bulk.operation(self.s.admin, claimed.domain, claimed.bulk_operation_id)
        except ShopNotAuthorized:
            raise ImportFailed(reasons.text("import_no_token")) from None
        except ShopifyRejected as exc:
            raise ImportFailed(reasons.text("import_export_refused", reason=exc.reason)) from None
        if op is None:
            raise ImportFailed(reasons.text("import_export_gone"))
        if not op.finished:
            return False
        if op.status != "COMPLETED":
            raise ImportFailed(reasons.text("import_export_ended", status=op.status, error_code=op.error_code or "no code"))
        log.info("import.exported", extra={"import_id": claimed.id, "customers": op.object_count})
        if op.url is None:  # a shop without customers
            return self._save(claimed, phase=ImportPhase.MATCH.value, matching_started_at=utcnow())
        return self._save(claimed, phase=ImportPhase.READ.value, result_url=op.url)

    # -- 2. read --------------------------------------------------------------------------------
    def _lines(self, claimed: _Claimed) -> Iterator[dict[str, Any]]:
        if self._reader and self._reader[0] == claimed.id and self._reader[1] == claimed.lines_read:
            return self._reader[2]
        return bulk.stream_customers(claimed.result_url, skip=claimed.lines_read)

    def _read(self, claimed: _Claimed) -> bool:
        settings = self._settings(claimed)
        lines = self._lines(claimed)
        chunk: list[dict[str, Any]] = []
        for node in lines:
            chunk.append(node)
            if len(chunk) == READ_CHUNK:
                break
        finished = len(chunk) < READ_CHUNK
        try:
            with self.s.db.transaction() as session:
                moved = session.execute(update(CustomerImport).where(
                    CustomerImport.id == claimed.id, CustomerImport.lease_owner == self.owner,
                    CustomerImport.state == ImportState.RUNNING.value,
                    CustomerImport.lines_read == claimed.lines_read).values(
                    lines_read=claimed.lines_read + len(chunk),
                    **({"phase": ImportPhase.MATCH.value, "matching_started_at": utcnow()} if finished else {})))
                if moved.rowcount != 1:
                    raise _NoLongerOurs
                _stage(session, claimed, settings.syncable, claimed.lines_read, chunk)
        except _NoLongerOurs:  # cancelled, or taken over: nothing of this chunk is kept
            self._reader = None
            return False
        self._reader = None if finished else (claimed.id, claimed.lines_read + len(chunk), lines)
        if finished:
            log.info("import.read", extra={"import_id": claimed.id, "lines": claimed.lines_read + len(chunk)})
        return True

    # -- 3. match -------------------------------------------------------------------------------
    def _match(self, claimed: _Claimed) -> bool:
        settings = self._settings(claimed)
        client = self.s.smaregi.contract(settings.contract_id)
        with self.s.db.transaction() as session:
            try:
                directory.require_ready(session, client.contract_id)
            except directory.DirectoryNotReady:
                ready = False
            else:
                ready = True
        if not ready:
            scheduler.schedule_now(self.s, "member_directory")
            return False
        deadline = time.monotonic() + STEP_BUDGET_S
        progressed = self._resolve(claimed, client, deadline)
        # Several bulk requests a step keep MAX_IN_FLIGHT busy (each result comes back while the
        # next step runs); the burst is short, so a live webhook still waits about a second at most.
        burst_end = time.monotonic() + SEND_BURST_S
        while time.monotonic() < burst_end and self._send(claimed, settings, client, deadline):
            progressed = True
        if self._waiting_for_bulk(claimed) < CLASSIFY_AHEAD:  # results keep coming: match more meanwhile
            progressed = self._classify(claimed, settings, client, deadline) or progressed
        return progressed or self._singles(claimed) or self._finish_if_done(claimed)

    def _waiting_for_bulk(self, claimed: _Claimed) -> int:
        with self.s.db.transaction() as session:
            return session.scalar(select(func.count()).where(
                ImportCustomer.import_id == claimed.id, ImportCustomer.outcome.in_([o.value for o in BULK_KINDS])))

    def _classify(self, claimed: _Claimed, settings, client, deadline: float) -> bool:
        """Decide, from our own tables only, which customers can go in bulk. The directory is brought
        up to date first, as live matching does, so a store member registered a minute ago counts."""
        contract_id = client.contract_id
        with self.s.db.transaction() as session:
            if session.scalar(select(func.count()).where(ImportCustomer.import_id == claimed.id,
                                                         ImportCustomer.outcome == Outcome.NEW.value)) == 0:
                return False
        directory.refresh_window(self.s.db, client, max_age=DIRECTORY_MAX_AGE, deadline=deadline)
        with self.s.db.transaction() as session:
            rows = session.execute(select(ImportCustomer.shopify_customer_id, ImportCustomer.link_id).where(
                ImportCustomer.import_id == claimed.id, ImportCustomer.outcome == Outcome.NEW.value)
                .order_by(ImportCustomer.line).limit(CLASSIFY_CHUNK)).all()
            if not rows:
                return False
            links = {link.id: link for link in session.scalars(select(MemberLink).where(
                MemberLink.id.in_([link_id for _, link_id in rows])))}
            coded = set(session.scalars(select(DirectoryMember.customer_code).where(
                DirectoryMember.contract_id == contract_id,
                DirectoryMember.customer_code.in_([str(cid) for cid, _ in rows]))))
            fields = {link_id: smaregi_fields(link.desired, settings.blank_name_placeholder)
                      for link_id, link in links.items() if link.desired is not None}
            store_members = directory.candidates_by_emails(session, contract_id,
                                                           [f.get("mailAddress") for f in fields.values()])
            sole = {} if settings.keep_store_member_codes else _sole_store_members(
                session, claimed, store_members,
                [normalize_email(fields[link.id].get("mailAddress")) for link in links.values()
                 if link.id in fields and email_verified(link.desired)])
            now = utcnow()
            changes = []
            for cid, link_id in rows:
                link = links.get(link_id)
                email = normalize_email(fields[link_id].get("mailAddress")) if link_id in fields else None
                outcome = _classify_one(link, fields.get(link_id), str(cid) in coded,
                                        bool(store_members.get(email)), now)
                target = sole.get(email) if link is not None and email_verified(link.desired) else None
                if outcome == Outcome.SINGLE and target is not None and not link.smaregi_customer_id and \
                        link.next_attempt_at is None and not (link.leased_until and link.leased_until > now):
                    outcome = Outcome.TO_LINK  # the live rules' verdict, linked in bulk
                else:
                    target = None
                changes.append({"b_cid": cid, "b_outcome": outcome.value,
                                "b_sid": target.smaregi_customer_id if target else None,
                                "b_code": target.customer_code if target else None})
            table = ImportCustomer.__table__
            session.connection().execute(table.update().where(
                table.c.import_id == claimed.id, table.c.shopify_customer_id == bindparam("b_cid")).values(
                outcome=bindparam("b_outcome"), store_member_id=bindparam("b_sid"),
                store_code=bindparam("b_code")), changes)
        return True

    def _send(self, claimed: _Claimed, settings, client, deadline: float) -> bool:
        """One bulk request, when a full one is ready (or the rest, once every customer is matched)."""
        with self.s.db.transaction() as session:
            in_flight = session.scalar(select(func.count()).where(ImportBatch.import_id == claimed.id,
                                                                  ImportBatch.state == "sent"))
            if in_flight >= MAX_IN_FLIGHT:
                return False
            matching_left = session.scalar(select(func.count()).where(
                ImportCustomer.import_id == claimed.id, ImportCustomer.outcome == Outcome.NEW.value))
            for outcome, kind in BULK_KINDS.items():  # noqa: B007
                rows = session.execute(select(ImportCustomer.shopify_customer_id, ImportCustomer.link_id,
                                              ImportCustomer.store_member_id, ImportCustomer.store_code).where(
                    ImportCustomer.import_id == claimed.id, ImportCustomer.outcome == outcome.value)
                    .order_by(ImportCustomer.line).limit(BULK_MAX)).all()
                if rows and (len(rows) == BULK_MAX or not matching_left):
                    break
            else:
                return False
            links = {link.id: link for link in session.scalars(select(MemberLink).where(
                MemberLink.id.in_([row.link_id for row in rows])))}
            coded = dict(session.execute(select(DirectoryMember.customer_code, DirectoryMember.smaregi_customer_id)
                                         .where(DirectoryMember.contract_id == client.contract_id,
                                                DirectoryMember.customer_code.in_(
                                                    [str(row.shopify_customer_id) for row in rows]))).all())
            store = _still_linkable(session, claimed, client.contract_id, rows) if kind == "link" else {}
            token = secrets.token_urlsafe(32)
            batch = ImportBatch(import_id=claimed.id, kind=kind, token_hash=_token_hash(token), state="sent",
                                sent_at=utcnow())
            session.add(batch)
            session.flush()
            members, changes = [], []
            for cid, link_id, store_member_id, _ in rows:
                link = links.get(link_id)
                code = str(cid)
                change = {"b_cid": cid, "b_outcome": Outcome.BULK.value, "b_batch": batch.id, "b_dh": None,
                          "b_sh": None}
                changes.append(change)
                if link is None or link.desired is None:
                    change.update(b_outcome=Outcome.FAILED.value, b_batch=None)
                    continue
                if link.next_attempt_at is not None or link.smaregi_customer_id or (
                        kind == "update" and code not in coded) or (
                        kind == "link" and (code in coded or store_member_id not in store
                                            or not email_verified(link.desired))):
                    # a webhook came meanwhile, or the store member changed: the live rules take it
                    change.update(b_outcome=Outcome.SINGLE.value, b_batch=None)
                    continue
                fields = smaregi_fields(link.desired, settings.blank_name_placeholder)
                change.update(b_dh=link.desired_hash, b_sh=fingerprint(fields))
                if kind == "create":
                    members.append({"customerCode": code, **fields})
                elif kind == "update":
                    members.append({"customerId": coded[code], **_update_fields(fields, link.desired)})
                else:  # the store member takes our code, as live linking by e-mail does
                    members.append({"customerId": store_member_id, **_update_fields(fields, link.desired),
                                    "customerCode": code})
            _update_rows(session, claimed.id, changes)
            batch_id = batch.id
            if not members:
                session.delete(batch)
                return True
        url = callback_url(self.s.config.shopify_app_url, token)
        send = client.bulk_create_customers if kind == "create" else client.bulk_update_customers
        try:
            request_id = send(members, url, deadline=deadline, background=True)  # live syncs go first
        except (ContractPaused, SmaregiRateLimited, SmaregiUnreachable):
            self._unsend(batch_id, next(o for o, k in BULK_KINDS.items() if k == kind))
            raise
        except (SmaregiTimeout, SmaregiServerError):
            # Smaregi may have taken it: the re-read after CALLBACK_WAIT_S tells.
            log.warning("import.bulk_ambiguous", extra={"import_id": claimed.id, "batch_id": batch_id})
            return True
        except Exception as exc:
            # Refused as a whole: each member is tried on its own, and fails with its own reason.
            log.warning("import.bulk_refused", extra={"import_id": claimed.id, "batch_id": batch_id,
                                                      "error": type(exc).__name__})
            self._unsend(batch_id, Outcome.SINGLE)
            return True
        with self.s.db.transaction() as session:
            session.execute(update(ImportBatch).where(ImportBatch.id == batch_id).values(request_id=request_id))
        log.info("import.bulk_sent", extra={"import_id": claimed.id, "batch_id": batch_id, "kind": kind,
                                            "members": len(members)})
        return True

    def _unsend(self, batch_id: int, outcome: Outcome) -> None:
        with self.s.db.transaction() as session:
            session.execute(update(ImportCustomer).where(ImportCustomer.batch_id == batch_id)
                            .values(outcome=outcome.value, batch_id=None))
            session.execute(delete(ImportBatch).where(ImportBatch.id == batch_id))

    def _resolve(self, claimed: _Claimed, client, deadline: float) -> bool:
        """Batches Smaregi says are done, or whose callback is overdue: re-read, then record."""
        now = utcnow()
        with self.s.db.transaction() as session:
            batches = session.scalars(select(ImportBatch).where(
                ImportBatch.import_id == claimed.id, ImportBatch.state == "sent",
                or_(ImportBatch.callback_at.is_not(None),
                    ImportBatch.sent_at < now - timedelta(seconds=CALLBACK_WAIT_S)))).all()
            if not batches:
                return False
            since = min(b.sent_at for b in batches) - timedelta(seconds=CLOCK_SKEW_S)
            batch_ids = [b.id for b in batches]
            kinds = {b.id: (b.kind, b.sent_at) for b in batches}
            rows = session.execute(select(ImportCustomer.shopify_customer_id, ImportCustomer.link_id,
                                          ImportCustomer.batch_id, ImportCustomer.desired_hash,
                                          ImportCustomer.sent_hash, ImportCustomer.store_code)
                                   .where(ImportCustomer.batch_id.in_(list(kinds)),
                                          ImportCustomer.outcome == Outcome.BULK.value)).all()
        wanted = {str(row.shopify_customer_id) for row in rows}
        found: dict[str, dict[str, Any]] = {}
        page = 1
        while True:  # the re-read: every member Smaregi changed since the oldest of these was sent
            members = client.list_customers(page=page, limit=LIST_PAGE, updated_from=since,
                                            updated_to=utcnow() + timedelta(seconds=CLOCK_SKEW_S),
                                            deadline=deadline, background=True)
            ours = [m for m in members if m.get("customerCode") in wanted]
            with self.s.db.transaction() as session:  # fresh reads: e-mail and code matching see them at once
                directory.remember_many(session, client.contract_id, ours)
            found.update((m["customerCode"], m) for m in ours)
            if len(members) < LIST_PAGE:
                break
            page += 1
        changes, records = [], []
        for row in rows:
            kind, sent_at = kinds[row.batch_id]
            member = found.get(str(row.shopify_customer_id))
            changed_at = _smaregi_time(member.get("updDateTime")) if member else None
            applied = member is not None and (kind == "create" or (
                changed_at is not None and changed_at >= sent_at - timedelta(seconds=CLOCK_SKEW_S)))
            if not applied:  # not confirmed: the one-by-one sync finds or makes the member
                changes.append({"b_cid": row.shopify_customer_id, "b_outcome": Outcome.SINGLE.value,
                                "b_batch": row.batch_id, "b_dh": row.desired_hash, "b_sh": row.sent_hash})
                continue
            replaced = row.store_code if kind == "link" and row.store_code != member["customerCode"] else None
            records.append({"b_link": row.link_id, "b_sid": str(member["customerId"]),
                            "b_code": member["customerCode"], "b_dh": row.desired_hash, "b_sh": row.sent_hash,
                            "b_store": replaced, "kind": kind, "cid": row.shopify_customer_id})
            changes.append({"b_cid": row.shopify_customer_id, "b_batch": row.batch_id, "b_dh": row.desired_hash,
                            "b_sh": row.sent_hash,
                            "b_outcome": (Outcome.CREATED if kind == "create" else Outcome.LINKED).value})
        with self.s.db.transaction() as session:
            records = _hold_members_taken_meanwhile(session, claimed, records, changes)
            if records:
                session.connection().execute(_record_statement(), [
                    {**{k: v for k, v in r.items() if k.startswith("b_")}, "b_now": utcnow()} for r in records])
            _update_rows(session, claimed.id, changes)
            session.execute(update(ImportBatch).where(ImportBatch.id.in_(batch_ids)).values(state="resolved"))
        confirmed = len(records)
        log.info("import.bulk_resolved", extra={"import_id": claimed.id, "batches": len(batch_ids),
                                                "confirmed": confirmed, "unconfirmed": len(rows) - confirmed})
        return True

    def _singles(self, claimed: _Claimed) -> bool:
        now = utcnow()
        with self.s.db.transaction() as session:
            candidates = session.execute(
                select(ImportCustomer.shopify_customer_id, ImportCustomer.link_id)
                .join(MemberLink, MemberLink.id == ImportCustomer.link_id, isouter=True)
                .where(ImportCustomer.import_id == claimed.id, ImportCustomer.outcome == Outcome.SINGLE.value,
                       or_(MemberLink.id.is_(None), and_(
                           or_(MemberLink.leased_until.is_(None), MemberLink.leased_until < now),
                           or_(MemberLink.next_attempt_at.is_(None), MemberLink.next_attempt_at <= now,
                               MemberLink.state != LinkState.PENDING))))
                .order_by(ImportCustomer.line).limit(SINGLES_PER_STEP)).all()
        if not candidates:
            return False
        for customer_id, link_id in candidates:
            job = self._lease_link(claimed, link_id)
            action = self.process(job) if job is not None else None
            self._settle_single(claimed, customer_id, link_id, action)
        return True

    def _lease_link(self, claimed: _Claimed, link_id: int | None) -> Job | None:
        """The link as a sync job, leased to us like the queue's claim, if it still needs a sync."""
        now = utcnow()
        with self.s.db.transaction() as session:
            leased = session.execute(update(MemberLink).where(
                MemberLink.id == link_id, MemberLink.state == LinkState.PENDING, MemberLink.desired.is_not(None),
                or_(MemberLink.leased_until.is_(None), MemberLink.leased_until < now))
                .values(leased_until=now + timedelta(seconds=LINK_LEASE_S), lease_owner=self.owner)).rowcount
            if not leased:
                return None
            link = session.get(MemberLink, link_id, populate_existing=True)
            settings = effective_settings(session, session.get(Shop, link.shop_id), self.s.config)
            return Job(link.id, link.shop_id, link.shopify_customer_id, link.smaregi_customer_id, link.member_code,
                       dict(link.desired or {}), link.desired_hash or "", link.synced_hash, settings)

    def _settle_single(self, claimed: _Claimed, customer_id: int, link_id: int | None, action: str | None) -> None:
        with self.s.db.transaction() as session:
            link = session.get(MemberLink, link_id) if link_id is not None else None
            if link is None or (link.desired is None and link.state == LinkState.PENDING):
                outcome = Outcome.FAILED  # the customer's data was deleted (customers/redact) meanwhile
            elif link.state == LinkState.SYNCED:
                outcome = Outcome.CREATED if action == "created" else Outcome.LINKED
            elif link.state == LinkState.FAILED:
                outcome = Outcome.FAILED
            elif link.state in LIVE_STATES:
                return  # retrying (backoff), or paused: still ours to finish
            else:
                outcome = Outcome.HELD
            session.execute(update(ImportCustomer).where(
                ImportCustomer.import_id == claimed.id, ImportCustomer.shopify_customer_id == customer_id,
                ImportCustomer.outcome == Outcome.SINGLE.value).values(outcome=outcome.value))

    def _finish_if_done(self, claimed: _Claimed) -> bool:
        with self.s.db.transaction() as session:
            left = session.scalar(select(func.count()).where(ImportCustomer.import_id == claimed.id,
                                                             ImportCustomer.outcome.in_(UNFINISHED)))
            in_flight = session.scalar(select(func.count()).where(ImportBatch.import_id == claimed.id,
                                                                  ImportBatch.state == "sent"))
            if left or in_flight:
                return False
            done = session.execute(update(CustomerImport).where(
                CustomerImport.id == claimed.id, CustomerImport.lease_owner == self.owner,
                CustomerImport.state == ImportState.RUNNING.value).values(
                state=ImportState.DONE.value, finished_at=utcnow(), leased_until=None, lease_owner=None)).rowcount
        if done:
            log.info("import.done", extra={"import_id": claimed.id, "shop_id": claimed.shop_id})
        return bool(done)


# -- rows ---------------------------------------------------------------------------------------------------
def _stage(session: Session, claimed: _Claimed, syncable: bool, first_line: int,
           nodes: list[dict[str, Any]]) -> None:
    """Exported customers → their member links (the newest state wins, as for webhooks) and import
    rows. A new link is left not due (next_attempt_at NULL): the import owns its first sync."""
    now = utcnow()
    staged: dict[int, tuple[int, dict[str, str], str, datetime]] = {}
    for offset, node in enumerate(nodes):
        try:
            payload = bulk.webhook_shape(node)
            updated_at = parse_time(payload.get("updated_at")) or now
        except (KeyError, ValueError, MalformedPayload):
            log.warning("import.bad_line", extra={"import_id": claimed.id, "line": first_line + offset})
            continue
        state = customer_state(payload)
        staged[payload["id"]] = (first_line + offset, state, fingerprint(state), updated_at)
    if not staged:
        return
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    conn = session.connection()  # Core executemany: one statement compiled once for the whole chunk
    links = MemberLink.__table__
    created = set(conn.execute(
        insert(links).on_conflict_do_nothing(index_elements=["shop_id", "shopify_customer_id"])
        .returning(links.c.shopify_customer_id, sort_by_parameter_order=True),
        [{"shop_id": claimed.shop_id, "shopify_customer_id": cid, "desired": state, "desired_hash": desired_hash,
          "shopify_updated_at": updated_at, "state": LinkState.PENDING if syncable else LinkState.PAUSED, "attempts": 0,
          "created_at": now, "updated_at": now}
         for cid, (_, state, desired_hash, updated_at) in staged.items()]).scalars())
    for cid, (_, state, desired_hash, updated_at) in staged.items():
        if cid in created:
            continue
        # Newer than what we hold (a webhook we missed): the import takes the link over.
        session.execute(update(MemberLink).where(
            MemberLink.shop_id == claimed.shop_id, MemberLink.shopify_customer_id == cid,
            MemberLink.desired_hash != desired_hash,
            or_(MemberLink.shopify_updated_at.is_(None), MemberLink.shopify_updated_at < updated_at))
            .values(desired=state, desired_hash=desired_hash, shopify_updated_at=updated_at, state=LinkState.PENDING,
                    attempts=0, next_attempt_at=None, last_error=None, updated_at=now)
            .execution_options(synchronize_session=False))
    link_ids = dict(session.execute(select(MemberLink.shopify_customer_id, MemberLink.id).where(
        MemberLink.shop_id == claimed.shop_id, MemberLink.shopify_customer_id.in_(list(staged)))).all())
    conn.execute(insert(ImportCustomer.__table__).on_conflict_do_nothing(), [
        {"import_id": claimed.id, "shopify_customer_id": cid, "line": line, "link_id": link_ids.get(cid),
         "created_link": cid in created, "outcome": Outcome.NEW.value}
        for cid, (line, _, _, _) in staged.items()])


def _update_rows(session: Session, import_id: int, changes: list[dict[str, Any]]) -> None:
    """Set many import rows' outcome (and batch, hashes) in one round of statements."""
    if not changes:
        return
    rows = ImportCustomer.__table__
    session.connection().execute(rows.update().where(
        rows.c.import_id == import_id, rows.c.shopify_customer_id == bindparam("b_cid")).values(
        outcome=bindparam("b_outcome"), batch_id=bindparam("b_batch"), desired_hash=bindparam("b_dh"),
        sent_hash=bindparam("b_sh")), changes)


def _smaregi_time(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value)) if value else None
    except ValueError:
        return None


def _classify_one(link: MemberLink | None, fields: dict[str, str] | None, code_taken: bool,
                  has_store_member: bool, now: datetime) -> Outcome:
    if link is None or fields is None:
        return Outcome.FAILED
    if link.state == LinkState.SYNCED and link.smaregi_customer_id and link.synced_hash == fingerprint(fields):
        return Outcome.LINKED  # already a member, already up to date
    if link.state not in LIVE_STATES:
        return Outcome.HELD  # waiting for the merchant's decision
    live_owned = link.next_attempt_at is not None or (link.leased_until is not None and link.leased_until > now)
    if live_owned or link.smaregi_customer_id:
        return Outcome.SINGLE
    if code_taken:
        return Outcome.TO_UPDATE
    if has_store_member:
        return Outcome.SINGLE  # a store member may be theirs: the live rules decide (verified e-mail, held)
    return Outcome.TO_CREATE


def _sole_store_members(session: Session, claimed: _Claimed, store_members: dict[str, list[DirectoryMember]],
                        verified_emails: list[str | None]) -> dict[str, DirectoryMember]:
    """The store member each verified e-mail links to without judgement, as live matching would:
    exactly one with that e-mail, linked to no other customer, and wanted by no other customer
    of this import (any doubt goes one by one, where the live rules decide)."""
    wanted: dict[str, int] = {}
    for email in verified_emails:
        if email is not None:
            wanted[email] = wanted.get(email, 0) + 1
    sole = {email: members[0] for email, members in store_members.items()
            if len(members) == 1 and wanted.get(email) == 1}
    ids = [m.smaregi_customer_id for m in sole.values()]
    if not ids:
        return {}
    taken = set(session.scalars(select(MemberLink.smaregi_customer_id).where(
        MemberLink.shop_id == claimed.shop_id, MemberLink.smaregi_customer_id.in_(ids))))
    taken |= set(session.scalars(select(ImportCustomer.store_member_id).where(
        ImportCustomer.import_id == claimed.id, ImportCustomer.store_member_id.in_(ids))))
    return {email: m for email, m in sole.items() if m.smaregi_customer_id not in taken}


def _still_linkable(session: Session, claimed: _Claimed, contract_id: str, rows) -> set[str]:
    """Of the store members classified for linking, those the directory still shows with the
    customer's e-mail, the same code, not withdrawn, and linked to no customer of the shop."""
    by_id = {row.store_member_id: row for row in rows if row.store_member_id}
    members = session.scalars(select(DirectoryMember).where(DirectoryMember.contract_id == contract_id,
                                                            DirectoryMember.smaregi_customer_id.in_(list(by_id))))
    emails = dict(session.execute(select(MemberLink.id, MemberLink.desired).where(
        MemberLink.id.in_([row.link_id for row in by_id.values()]))).all())
    taken = set(session.scalars(select(MemberLink.smaregi_customer_id).where(
        MemberLink.shop_id == claimed.shop_id, MemberLink.smaregi_customer_id.in_(list(by_id)))))
    return {m.smaregi_customer_id for m in members
            if m.status not in directory.WITHDRAWN and m.smaregi_customer_id not in taken
            and m.customer_code == by_id[m.smaregi_customer_id].store_code
            and m.email_normalized == normalize_email((emails.get(by_id[m.smaregi_customer_id].link_id) or {})
                                                      .get("email"))}


def _hold_members_taken_meanwhile(session: Session, claimed: _Claimed, records: list[dict[str, Any]],
                                  changes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A store member linked by e-mail in bulk may have been linked to another customer by the live
    sync between our check and Smaregi applying the update. One member is never two customers':
    that customer waits for the merchant (a conflict naming the member) instead of being linked."""
    links = [r for r in records if r["kind"] == "link"]
    if not links:
        return records
    held_by = dict(session.execute(select(MemberLink.smaregi_customer_id, MemberLink.id).where(
        MemberLink.shop_id == claimed.shop_id, MemberLink.smaregi_customer_id.in_([r["b_sid"] for r in links]))).all())
    taken = [r for r in links if held_by.get(r["b_sid"], r["b_link"]) != r["b_link"]]
    for r in taken:
        session.execute(update(MemberLink).where(MemberLink.id == r["b_link"]).values(
            state=LinkState.CONFLICT, conflict_candidates=[{"smaregi_customer_id": r["b_sid"],
                                                            "customer_code": r["b_code"]}],
            last_error="The store member with this e-mail was linked to another customer meanwhile.",
            next_attempt_at=None, updated_at=utcnow()))
        log.warning("import.link_taken", extra={"import_id": claimed.id, "link_id": r["b_link"]})
    held = {r["cid"] for r in taken}
    for change in changes:
        if change["b_cid"] in held:
            change["b_outcome"] = Outcome.HELD.value
    return [r for r in records if r not in taken]


def _record_statement():
    """A bulk write we confirmed by reading it back. If the customer changed since we sent it, the
    link becomes due: the live sync then writes the newer state over ours (which Smaregi may have
    applied after a live write). A link a live worker holds right now is left to it."""
    links = MemberLink.__table__
    now = bindparam("b_now", type_=links.c.synced_at.type)
    current = links.c.desired_hash == bindparam("b_dh")
    return links.update().where(
        links.c.id == bindparam("b_link"), or_(links.c.leased_until.is_(None), links.c.leased_until < now)).values(
        smaregi_customer_id=bindparam("b_sid"), member_code=bindparam("b_code"), synced_hash=bindparam("b_sh"),
        store_member_code=func.coalesce(bindparam("b_store", type_=links.c.store_member_code.type),
                                        links.c.store_member_code),
        attempts=0, last_error=None, conflict_candidates=None, synced_at=now, updated_at=now,
        state=case((current, case((links.c.state == LinkState.PENDING, LinkState.SYNCED.value), else_=links.c.state)),
                   else_=LinkState.PENDING.value),
        next_attempt_at=case((current, links.c.next_attempt_at), else_=now))


def _close(session: Session, imp: CustomerImport, state: ImportState, reason: str | None) -> None:
    """End an import. Customers it had not finished go back to how live sync treats them: a link it
    made only for the import is removed (unless a webhook came for it), an older one is due again."""
    now = utcnow()
    imp.state, imp.reason, imp.finished_at = state.value, reason, now
    imp.leased_until = imp.lease_owner = None
    unfinished = select(ImportCustomer.link_id).where(ImportCustomer.import_id == imp.id,
                                                      ImportCustomer.outcome.in_(UNFINISHED))
    not_due = and_(MemberLink.state == LinkState.PENDING, MemberLink.next_attempt_at.is_(None),
                   or_(MemberLink.leased_until.is_(None), MemberLink.leased_until < now))
    made_here = select(ImportCustomer.link_id).where(
        ImportCustomer.import_id == imp.id, ImportCustomer.created_link.is_(True),
        ImportCustomer.outcome.in_((Outcome.NEW.value, Outcome.TO_CREATE.value, Outcome.TO_UPDATE.value,
                                    Outcome.TO_LINK.value, Outcome.SINGLE.value)))
    session.execute(delete(MemberLink).where(MemberLink.id.in_(made_here), MemberLink.smaregi_customer_id.is_(None),
                                             not_due).execution_options(synchronize_session=False))
    session.execute(update(MemberLink).where(MemberLink.id.in_(unfinished), not_due)
                    .values(next_attempt_at=now).execution_options(synchronize_session=False))
    _notify(session)


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _notify(session: Session) -> None:
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text(f"NOTIFY {NOTIFY_CHANNEL}"))
