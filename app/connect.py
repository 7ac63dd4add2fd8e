"""Connecting a shop to its Smaregi contract by proof (DESIGN "Connecting Smaregi").

The merchant presses "Connect Smaregi" in the admin (`start`, on a verified admin session), signs
in at Smaregi, and Smaregi sends the browser back to our callback. The state is unguessable (256
bits), stored only as a hash, bound to the shop it was issued to, valid for ten minutes and used
once; PKCE ties the code to this start as well. The callback binds nothing: a sign-in link started
by one shop could be sent to another merchant, who would sign in as themselves (login CSRF). So
the callback hands the code on to the state's shop's own admin (`returned_to`), and only an admin
session of that shop, in the browser that signed in, finishes (`finish`). The contract comes from
Smaregi's user info; a contract id typed anywhere is never bound. Several shops may hold one contract (one merchant, several
stores), but only each by its own sign-in; every proof is recorded (`smaregi_connections`).
"""
from __future__ import annotations

import hashlib
import logging
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import case, delete, select, update

from .errors import AppError
from .models import BalanceSnapshot, LinkState, MemberLink, Shop, SmaregiConnection, SmaregiSignInState, utcnow
from .points.member import forget_settings
from .services import Services
from .shops import ContractSource, shop_contract
from .smaregi.errors import SmaregiError
from .smaregi.signin import SignInRefused
from .sync import scheduler

log = logging.getLogger(__name__)

CALLBACK_PATH = "/smaregi/connect/callback"
STATE_TTL = timedelta(minutes=10)


class ConnectRefused(AppError):
    """The sign-in proved nothing; nothing was bound. `reason` is a log code and picks the words
    the merchant sees; `shop_domain` is known only once a valid state was presented."""

    code, status = "connect_refused", 400

    def __init__(self, reason: str, shop_domain: str | None = None):
        super().__init__(reason)
        self.reason = reason
        self.shop_domain = shop_domain
        if reason == "smaregi_unavailable":
            self.status = 502


@dataclass(frozen=True)
class Connected:
    shop_domain: str
    contract_id: str
    changed: bool  # False: the shop already used this contract


def callback_url(services: Services) -> str:
    return services.config.shopify_app_url + CALLBACK_PATH


def _digest(state: str) -> str:
    return hashlib.sha256(state.encode()).hexdigest()


def start(services: Services, shop_id: int) -> str:
    """A fresh sign-in for this shop: the Smaregi authorize URL to send the merchant to."""
    state, verifier = secrets.token_urlsafe(32), secrets.token_urlsafe(64)
    now = utcnow()
    with services.db.transaction() as session:
        session.execute(delete(SmaregiSignInState).where(SmaregiSignInState.expires_at < now - STATE_TTL))
        session.add(SmaregiSignInState(state_hash=_digest(state), shop_id=shop_id, created_at=now,
                                       expires_at=now + STATE_TTL,
                                       code_verifier_enc=services.cipher.encrypt(verifier)))
    log.info("smaregi.connect_started", extra={"shop_id": shop_id})
    return services.smaregi_sign_in.authorize_url(state=state, verifier=verifier,
                                                   redirect_uri=callback_url(services))


def _refusal(known: SmaregiSignInState | None, shop_id: int | None) -> str:
    if known is None:
        return "unknown_state"
    if shop_id is not None and known.shop_id != shop_id:
        return "other_shop"
    return "used_state" if known.used_at else "expired_state"


def returned_to(services: Services, state: str | None) -> str:
    """Smaregi's redirect back: the shop whose admin must finish this sign-in. Claims nothing."""
    if not state:
        raise ConnectRefused("no_state")
    with services.db.transaction() as session:
        known = session.get(SmaregiSignInState, _digest(state))
        if known is None or known.used_at is not None or known.expires_at <= utcnow():
            reason = _refusal(known, None)
            log.warning("smaregi.connect_refused", extra={"reason": reason})
            raise ConnectRefused(reason)
        return session.scalar(select(Shop.domain).where(Shop.id == known.shop_id))


def finish(services: Services, shop_id: int, state: str | None, code: str | None, error: str | None) -> Connected:
    """In the admin of `shop_id` (a verified session), with what Smaregi's redirect carried. Claims
    the state first (so it cannot be replayed, even by a request racing this one) and only for the
    shop it was issued to, then has Smaregi confirm the code and name the contract."""
    if not state:
        raise ConnectRefused("no_state")
    now = utcnow()
    with services.db.transaction() as session:
        claimed = session.execute(
            update(SmaregiSignInState)
            .where(SmaregiSignInState.state_hash == _digest(state), SmaregiSignInState.shop_id == shop_id,
                   SmaregiSignInState.used_at.is_(None), SmaregiSignInState.expires_at > now)
            .values(used_at=now)
            .returning(SmaregiSignInState.code_verifier_enc)).first()
        if claimed is None:
            reason = _refusal(session.get(SmaregiSignInState, _digest(state)), shop_id)
            log.warning("smaregi.connect_refused", extra={"reason": reason, "shop_id": shop_id})
            raise ConnectRefused(reason)
        verifier_enc = claimed[0]
        domain = session.scalar(select(Shop.domain).where(Shop.id == shop_id))
    if error or not code:
        log.info("smaregi.connect_refused", extra={"shop_id": shop_id, "reason": "denied"})
        raise ConnectRefused("denied", domain)
    try:
        identity = services.smaregi_sign_in.identify(code=code, verifier=services.cipher.decrypt(verifier_enc),
                                                     redirect_uri=callback_url(services))
    except SignInRefused as exc:
        log.warning("smaregi.connect_refused", extra={"shop_id": shop_id, "reason": exc.reason})
        raise ConnectRefused("sign_in_failed", domain) from None
    except SmaregiError as exc:
        log.warning("smaregi.connect_failed", extra={"shop_id": shop_id, "error": type(exc).__name__})
        raise ConnectRefused("smaregi_unavailable", domain) from None
    return _bind(services, shop_id, domain, identity.contract_id)


def _bind(services: Services, shop_id: int, domain: str, contract_id: str) -> Connected:
    with services.db.transaction() as session:
        shop = session.get(Shop, shop_id)
        before = shop_contract(shop, services.config)
        changed = before is None or before.contract_id != contract_id
        shop.smaregi_contract_id = contract_id
        session.add(SmaregiConnection(shop_id=shop_id, contract_id=contract_id, proven_at=utcnow()))
        others = session.scalar(select(Shop.id).where(Shop.smaregi_contract_id == contract_id,
                                                      Shop.id != shop_id).limit(1))
        if changed and before is not None:
            _relink(session, shop_id)
    forget_settings(domain)
    if changed:
        scheduler.schedule_now(services, "member_directory")  # the new contract's members, for e-mail links
    log.info("smaregi.connected", extra={"shop_id": shop_id, "contract_id": contract_id, "changed": changed,
                                         "contract_shared": others is not None})
    return Connected(domain, contract_id, changed)


def _relink(session, shop_id: int) -> None:
    """Member ids of the old contract mean nothing (or someone else) in the new one: every link
    is matched again there (by code, then e-mail), and cached balances of the old contract go."""
    links = MemberLink.__table__.c
    session.execute(update(MemberLink).where(MemberLink.shop_id == shop_id).values(
        smaregi_customer_id=None, member_code=None, synced_hash=None, conflict_candidates=None, last_error=None,
        attempts=0, next_attempt_at=utcnow(), leased_until=None, lease_owner=None,
        state=case((links.state == LinkState.PAUSED, LinkState.PAUSED.value), else_=LinkState.PENDING.value)))
    session.execute(delete(BalanceSnapshot).where(BalanceSnapshot.shop_id == shop_id))


def connection(services: Services, shop_id: int) -> dict:
    """What the admin shows: the contract in use, where it comes from, and the last proof."""
    with services.db.transaction() as session:
        contract = shop_contract(session.get(Shop, shop_id), services.config)
        proven_at = None
        if contract is not None and contract.source is ContractSource.SIGN_IN:
            proven_at = session.scalar(select(SmaregiConnection.proven_at).where(
                SmaregiConnection.shop_id == shop_id, SmaregiConnection.contract_id == contract.contract_id)
                .order_by(SmaregiConnection.proven_at.desc()).limit(1))
    return {"contract_id": contract.contract_id if contract else None,
            "source": contract.source.value if contract else None,
            "connected_at": proven_at.isoformat() if proven_at else None}
