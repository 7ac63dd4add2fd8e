"""The sync rules for one customer: find or create their Smaregi member, then make it match.

Matching, in order:
1. our stored link (the Smaregi customer id we saved);
2. a member whose customerCode is the customer's numeric Shopify id (also repairs a crash between
   "created in Smaregi" and "saved the link", since the code is deterministic);
3. a store member with the same normalised e-mail in the member directory, only when Shopify says
   the customer's e-mail is verified: exactly one is linked, more than one is a conflict for the
   merchant (we never guess). An unverified e-mail proves nothing (anyone can type a store
   member's address), so the link is held: the store member is not touched, and the link is made
   when a later update shows the e-mail verified, or when the merchant chooses;
4. otherwise, create.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from ..db import Database
from ..models import CustomerImport, ImportCustomer, MemberLink
from ..settings import EffectiveSettings
from ..smaregi.client import SmaregiClient
from ..smaregi.errors import SmaregiBadRequest, SmaregiNotFound
from . import directory
from .mapping import email_verified, fingerprint, normalize_email, smaregi_fields

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    link_id: int
    shop_id: int
    shopify_customer_id: int
    smaregi_customer_id: str | None
    member_code: str | None
    desired: dict[str, str]
    desired_hash: str
    synced_hash: str | None
    settings: EffectiveSettings


@dataclass(frozen=True)
class Synced:
    smaregi_customer_id: str
    member_code: str
    synced_hash: str
    action: str  # unchanged | updated | linked_by_code | linked_by_email | created
    store_code: str | None = None  # the store member's code that linking replaced (its history carries it)


class Conflict(Exception):
    def __init__(self, candidates: list[dict[str, Any]]):
        super().__init__(f"{len(candidates)} store members share this e-mail")
        self.candidates = candidates


class Held(Exception):
    """Store members have this e-mail, but Shopify has not verified that the customer owns it."""

    def __init__(self, candidates: list[dict[str, Any]]):
        super().__init__(f"{len(candidates)} store members have this unverified e-mail")
        self.candidates = candidates


def sync_member(db: Database, client: SmaregiClient, job: Job, *, deadline: float | None = None) -> Synced:
    fields = smaregi_fields(job.desired, job.settings.blank_name_placeholder)
    target = fingerprint(fields)
    code = str(job.shopify_customer_id)

    if job.smaregi_customer_id:
        # No member code yet: the merchant picked this store member in a conflict; it takes our code.
        extra = {} if job.member_code or job.settings.keep_store_member_codes else {"customerCode": code}
        if job.synced_hash == target and not extra:
            return Synced(job.smaregi_customer_id, job.member_code or code, target, "unchanged")
        try:
            member = client.update_customer(job.smaregi_customer_id, {**_update_fields(fields, job.desired), **extra},
                                            deadline=deadline)
        except SmaregiNotFound:
            # Deleted at the register: find or create the member again.
            with db.transaction() as session:
                directory.forget(session, client.contract_id, job.smaregi_customer_id)
            log.warning("sync.member_gone", extra={"link_id": job.link_id})
        else:
            _remember(db, client, member)
            return Synced(job.smaregi_customer_id, member.get("customerCode") or code, target, "updated")

    member = client.find_customer_by_code(code, deadline=deadline)
    if member is not None:
        member = _bring_up_to_date(client, member, fields, job.desired, {}, deadline)
        _remember(db, client, member)
        return Synced(str(member["customerId"]), code, target, "linked_by_code")

    store_member = _store_member_by_email(db, client, job, deadline)
    if store_member is not None:
        extra = {} if job.settings.keep_store_member_codes else {"customerCode": code}
        earlier = str(store_member.get("customerCode") or "")
        member = _bring_up_to_date(client, store_member, fields, job.desired, extra, deadline)
        _remember(db, client, member)
        replaced = earlier if earlier and earlier != str(member.get("customerCode")) else None
        return Synced(str(member["customerId"]), str(member.get("customerCode")), target, "linked_by_email", replaced)

    try:
        member = client.create_customer({"customerCode": code, **fields}, deadline=deadline)
    except SmaregiBadRequest as exc:
        if exc.field != "customerCode":
            raise
        # Someone (another worker, a crashed attempt) created it between our lookup and now.
        member = client.find_customer_by_code(code, deadline=deadline)
        if member is None:
            raise
    _remember(db, client, member)
    return Synced(str(member["customerId"]), code, target, "created")


def _store_member_by_email(db: Database, client: SmaregiClient, job: Job,
                           deadline: float | None) -> dict[str, Any] | None:
    email = normalize_email(job.desired.get("email"))
    if email is None:
        return None
    # No window refresh here: the directory is kept current by Smaregi's webhooks, our own writes
    # and the periodic refresh (scheduler), and the one candidate is read from Smaregi below.
    with db.transaction() as session:
        directory.require_ready(session, client.contract_id)
    for _ in range(3):  # the index may be stale: verify the one candidate against Smaregi
        with db.transaction() as session:
            rows = directory.candidates_by_email(session, client.contract_id, email)
            ids = [r.smaregi_customer_id for r in rows]
            taken = set(session.scalars(select(MemberLink.smaregi_customer_id).where(
                MemberLink.shop_id == job.shop_id, MemberLink.shopify_customer_id != job.shopify_customer_id,
                MemberLink.smaregi_customer_id.in_(ids))).all()) | reserved_by_import(session, job, ids)
            rows = [r for r in rows if r.smaregi_customer_id not in taken]
            candidates = [{"smaregi_customer_id": r.smaregi_customer_id, "customer_code": r.customer_code}
                          for r in rows]
        if not candidates:
            return None
        if not email_verified(job.desired):
            raise Held(candidates)
        if len(candidates) > 1:
            raise Conflict(candidates)
        try:
            member = client.get_customer(candidates[0]["smaregi_customer_id"], deadline=deadline)
        except SmaregiNotFound:
            with db.transaction() as session:
                directory.forget(session, client.contract_id, candidates[0]["smaregi_customer_id"])
            continue
        if normalize_email(member.get("mailAddress")) == email and member.get("status") not in directory.WITHDRAWN:
            return member
        _remember(db, client, member)  # it changed in the POS; look again
    return None


def reserved_by_import(session, job: Job, ids: list[str]) -> set[str]:
    """Store members a running import of the shop is linking to another customer in bulk: theirs
    already, though the link is written only once Smaregi confirms."""
    from .customer_import import Outcome

    return set(session.scalars(select(ImportCustomer.store_member_id).join(
        CustomerImport, CustomerImport.id == ImportCustomer.import_id).where(
        CustomerImport.shop_id == job.shop_id, ImportCustomer.shopify_customer_id != job.shopify_customer_id,
        ImportCustomer.store_member_id.in_(ids),
        ImportCustomer.outcome.in_((Outcome.TO_LINK.value, Outcome.BULK.value)))).all())


def _update_fields(fields: dict[str, str], desired: dict[str, str]) -> dict[str, str]:
    """On an existing member, a blank Shopify name must not overwrite the real name with "-"."""
    out = dict(fields)
    if not desired.get("last_name"):
        out.pop("lastName", None)
    if not desired.get("first_name"):
        out.pop("firstName", None)
    return out


def _bring_up_to_date(client: SmaregiClient, member: dict[str, Any], fields: dict[str, str],
                      desired: dict[str, str], extra: dict[str, str], deadline: float | None) -> dict[str, Any]:
    wanted = {**_update_fields(fields, desired), **extra}
    changes = {k: v for k, v in wanted.items() if member.get(k) != v}
    if not changes:
        return member  # nothing Smaregi holds would change: no call
    return client.update_customer(str(member["customerId"]), changes, deadline=deadline)


def _remember(db: Database, client: SmaregiClient, member: dict[str, Any]) -> None:
    with db.transaction() as session:
        directory.remember(session, client.contract_id, member)
