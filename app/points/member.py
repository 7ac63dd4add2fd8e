"""Who the shopper is at the register: the Smaregi member behind a verified Shopify customer."""
from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..config import Config
from ..db import Database
from ..models import DirectoryMember, LinkState, MemberLink, Shop
from ..settings import EffectiveSettings, effective_settings
from ..shops import ensure_shop
from ..smaregi.client import SmaregiClient
from ..sync.member_status import UNREGISTERED
from .errors import NotRegistered, PosUnavailable


@dataclass(frozen=True)
class Shopper:
    """A customer as a VERIFIED request says (proxy signature or customer-account token), nothing else."""

    shop_domain: str
    customer_id: int


@dataclass(frozen=True)
class Member:
    smaregi_customer_id: str
    code: str
    rank: str | None
    in_directory: bool = False  # rank and code come from the member directory (kept current by webhooks)
    earlier_code: str | None = None  # a store member's code before linking replaced it (older history)


def shop_and_settings(db: Database, config: Config, shop_domain: str) -> tuple[int, EffectiveSettings]:
    with db.transaction() as session:
        return shop_and_settings_in(session, config, shop_domain)


SETTINGS_TTL_S = 10.0  # shopper paths read settings on every request; merchant edits apply within this
_settings_cache: dict[str, tuple[float, int, EffectiveSettings]] = {}


def shop_and_settings_in(session: Session, config: Config, shop_domain: str) -> tuple[int, EffectiveSettings]:
    cached = _settings_cache.get(shop_domain)
    if cached and cached[0] > time.monotonic():
        shop_id, settings = cached[1], cached[2]
    else:
        shop = session.get(Shop, ensure_shop(session, shop_domain))
        shop_id, settings = shop.id, effective_settings(session, shop, config)
        _settings_cache[shop_domain] = (time.monotonic() + SETTINGS_TTL_S, shop_id, settings)
    if settings.contract_id is None:
        raise PosUnavailable("This store has not connected its point system yet.")
    return shop_id, settings


def forget_settings(shop_domain: str | None = None) -> None:
    """After the merchant saved settings (or in tests): read them again on the next request."""
    if shop_domain is None:
        _settings_cache.clear()
    else:
        _settings_cache.pop(shop_domain, None)


def linked_member(session: Session, contract_id: str, shop_id: int, customer_id: int) -> Member | None:
    """The member our sync linked to this customer, if any (no call to Smaregi). The code is the
    member's current one as the directory knows it (what the register scans), else the one we set.
    A member withdrawn or deleted at the register is nobody's to show: NotRegistered."""
    row = session.execute(
        select(MemberLink.smaregi_customer_id, MemberLink.member_code, MemberLink.member_status,
               MemberLink.store_member_code,
               DirectoryMember.rank, DirectoryMember.customer_code, DirectoryMember.id.label("listed"))
        .outerjoin(DirectoryMember, (DirectoryMember.contract_id == contract_id)
                   & (DirectoryMember.smaregi_customer_id == MemberLink.smaregi_customer_id))
        .where(MemberLink.shop_id == shop_id, MemberLink.shopify_customer_id == customer_id,
               MemberLink.smaregi_customer_id.is_not(None),
               MemberLink.state.not_in((LinkState.CONFLICT, LinkState.HELD)))).first()
    if row is None:
        return None
    if row.member_status in UNREGISTERED:
        raise NotRegistered()
    code = row.customer_code or row.member_code or str(customer_id)
    return Member(row.smaregi_customer_id, code, row.rank, in_directory=row.listed is not None,
                  earlier_code=row.store_member_code if row.store_member_code != code else None)


def find_member(client: SmaregiClient, customer_id: int, linked: Member | None, deadline: float) -> Member:
    """`linked`: what linked_member() found (the caller reads it with its other data). Without a
    link, the member whose code is the Shopify id (one read)."""
    if linked is not None:
        return linked
    found = client.find_customer_by_code(str(customer_id), deadline=deadline)
    if found is None or found.get("status") in ("3", "4"):
        raise NotRegistered()
    return Member(str(found["customerId"]), str(found["customerCode"]), found.get("rank"))
