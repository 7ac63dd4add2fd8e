"""App lifecycle and privacy-law webhooks: uninstall, data request, customer redact, shop redact.

They run inside the delivery's transaction (database only; nothing calls Shopify or the POS).
Smaregi members stay: they are the merchant's POS records, not ours to delete.
"""
from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from .config import Config
from .models import (
    AuditFinding,
    BalanceSnapshot,
    Conversion,
    ConversionRefusal,
    DataRequest,
    DirectoryMember,
    LinkState,
    MemberLink,
    Order,
    PointMovement,
    Shop,
    SmaregiContract,
    WebhookDelivery,
    utcnow,
)
from .shops import contracts_in_use, shop_contract

log = logging.getLogger(__name__)


def uninstalled(session: Session, shop: Shop) -> str:
    """Shopify has revoked our tokens; we delete them and the shop's work stops (links pause)."""
    shop.access_token_enc = shop.refresh_token_enc = None
    shop.access_token_expires_at = shop.refresh_token_expires_at = None
    shop.uninstalled_at = utcnow()
    paused = session.execute(MemberLink.__table__.update().where(
        MemberLink.shop_id == shop.id, MemberLink.state == LinkState.PENDING).values(state=LinkState.PAUSED)).rowcount
    log.info("shop.uninstalled", extra={"shop_id": shop.id, "links_paused": paused})
    return "uninstalled"


def data_request(session: Session, shop: Shop, payload: dict[str, Any]) -> str:
    """Everything we store about the customer, kept for the merchant to fetch from the admin."""
    customer_id = _customer_id(payload)
    link = session.scalar(select(MemberLink).where(MemberLink.shop_id == shop.id,
                                                   MemberLink.shopify_customer_id == customer_id))
    conversions = session.scalars(select(Conversion).where(Conversion.shop_id == shop.id,
                                                           Conversion.shopify_customer_id == customer_id)
                                  .order_by(Conversion.created_at)).all()
    export = {
        "shopify_customer_id": customer_id,
        "member_link": None if link is None else {
            "smaregi_customer_id": link.smaregi_customer_id, "member_code": link.member_code,
            "customer_data_sent_to_smaregi": link.desired, "state": link.state,
            "synced_at": link.synced_at.isoformat() if link.synced_at else None},
        "conversions": [{"id": c.id, "created_at": c.created_at.isoformat(), "points": c.points, "amount": c.amount,
                         "currency": c.currency, "code": c.code, "status": c.status} for c in conversions],
        "orders": [{"order_id": o.shopify_order_id, "name": o.name, "facts": o.facts} for o in session.scalars(
            select(Order).where(Order.shop_id == shop.id, Order.shopify_customer_id == customer_id))],
        "point_movements": [{"kind": m.kind, "points": m.points, "state": m.state, "order_id": m.order_id,
                             "created_at": m.created_at.isoformat()} for m in session.scalars(
            select(PointMovement).where(PointMovement.shop_id == shop.id,
                                        PointMovement.shopify_customer_id == customer_id)
            .order_by(PointMovement.created_at))],
    }
    request_id = (payload.get("data_request") or {}).get("id")
    session.add(DataRequest(shop_id=shop.id, shopify_customer_id=customer_id,
                            request_id=str(request_id) if request_id is not None else None, export=export))
    log.info("privacy.data_request", extra={"shop_id": shop.id, "customer_id": customer_id})
    return "data_request_recorded"


def redact_customer(session: Session, config: Config, shop: Shop, payload: dict[str, Any]) -> str:
    """Delete the customer's personal data: their link (names, e-mail, phone, address we held),
    cached balance and earlier exports. The conversion ledger keeps amounts and codes (accounting)
    but nothing that names the person."""
    customer_id = _customer_id(payload)
    link = session.scalar(select(MemberLink).where(MemberLink.shop_id == shop.id,
                                                   MemberLink.shopify_customer_id == customer_id))
    contract = shop_contract(shop, config)
    if link is not None and link.smaregi_customer_id and contract is not None:
        session.execute(delete(DirectoryMember).where(DirectoryMember.contract_id == contract.contract_id,
                                                      DirectoryMember.smaregi_customer_id == link.smaregi_customer_id))
    for model in (MemberLink, BalanceSnapshot, DataRequest, AuditFinding, ConversionRefusal):
        session.execute(delete(model).where(model.shop_id == shop.id, model.shopify_customer_id == customer_id))
    log.info("privacy.customer_redacted", extra={"shop_id": shop.id, "customer_id": customer_id})
    return "customer_redacted"


def redact_shop(session: Session, config: Config, shop_domain: str) -> str:
    """Forty-eight hours after uninstall: every row of the shop goes, webhook records included.
    The contract's directory goes too unless another shop (or SMAREGI_CONTRACT_ID) still uses it."""
    shop = session.scalar(select(Shop).where(Shop.domain == shop_domain))
    if shop is not None:
        contract = shop_contract(shop, config)
        session.delete(shop)  # settings, links, conversions, snapshots, exports, proofs: ON DELETE CASCADE
        session.flush()
        if contract is not None and contract.contract_id not in contracts_in_use(session, config):
            session.execute(delete(DirectoryMember).where(DirectoryMember.contract_id == contract.contract_id))
            session.execute(delete(SmaregiContract).where(SmaregiContract.contract_id == contract.contract_id))
    session.execute(delete(WebhookDelivery).where(WebhookDelivery.shop_domain == shop_domain))
    log.info("privacy.shop_redacted", extra={"shop": shop_domain})
    return "shop_redacted"


def _customer_id(payload: dict[str, Any]) -> int:
    return int((payload.get("customer") or {})["id"])
