"""The shop concepts every caller shares: finding or creating a shop's row, and which Smaregi
contract a shop uses. Nothing else decides either."""
from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.orm import Session

from .config import Config
from .db import insert_ignoring_conflict
from .models import Shop, utcnow


class ContractSource(StrEnum):
    SIGN_IN = "sign_in"  # the merchant proved it by signing in to Smaregi
    ENVIRONMENT = "environment"  # SMAREGI_CONTRACT_ID: a single-merchant deployment


@dataclass(frozen=True)
class ShopContract:
    contract_id: str
    source: ContractSource


def resolve_contract(proven_contract_id: str | None, config: Config) -> ShopContract | None:
    """A shop's contract: the one it proved, else the deployment's SMAREGI_CONTRACT_ID, else none.
    `proven_contract_id` is `shops.smaregi_contract_id`, which only a sign-in writes."""
    if proven_contract_id:
        return ShopContract(proven_contract_id, ContractSource.SIGN_IN)
    if config.smaregi_contract_id:
        return ShopContract(config.smaregi_contract_id, ContractSource.ENVIRONMENT)
    return None


def shop_contract(shop: Shop, config: Config) -> ShopContract | None:
    return resolve_contract(shop.smaregi_contract_id, config)


def contracts_in_use(session: Session, config: Config) -> list[str]:
    """Every contract some installed shop resolves to (SMAREGI_CONTRACT_ID counts whenever set:
    it is the deployment's own)."""
    proven = session.scalars(select(Shop.smaregi_contract_id).where(Shop.smaregi_contract_id.is_not(None),
                                                                    Shop.uninstalled_at.is_(None))
                             .distinct()).all()
    return sorted(set(proven) | ({config.smaregi_contract_id} if config.smaregi_contract_id else set()))


def ensure_shop(session: Session, domain: str) -> int:
    """The shop's id, creating its row if this is the first we hear of it (a webhook can come
    before App Home was ever opened). Safe when two requests create it at once."""
    shop_id = session.scalar(select(Shop.id).where(Shop.domain == domain))
    if shop_id is None:
        now = utcnow()
        insert_ignoring_conflict(session, Shop, {"domain": domain, "created_at": now, "updated_at": now},
                                 ["domain"])
        shop_id = session.scalar(select(Shop.id).where(Shop.domain == domain))
    return shop_id
