"""Expiring offline tokens: token exchange on install (managed installation) and refresh before expiry.

Shopify keeps one offline token per app and shop; each exchange or refresh revokes the previous
token. So exchange and refresh run under a per-shop lock (an UPDATE of the shop row: a row lock on
Postgres, the write lock on SQLite), re-check after taking it, and store access and refresh token
together in the same transaction.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from shopify_app import ShopifyApp
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ..crypto import TokenCipher
from ..db import Database
from ..models import Shop, utcnow
from ..shops import ensure_shop
from .transport import admin_http_client

log = logging.getLogger(__name__)

REFRESH_MARGIN_S = 300  # refresh five minutes early so no call runs on a token about to die
MEMORY_S = 60  # a token read from the database is reused in this process for up to a minute
TOKEN_HTTP_TIMEOUT_S = 10.0


class TokenExchangeFailed(Exception):
    """Shopify refused the exchange; `response` is what App Bridge expects back (e.g. 401 + retry)."""

    def __init__(self, code: str, response):
        super().__init__(code)
        self.code = code
        self.response = response


class ShopNotAuthorized(Exception):
    """No usable offline token (never opened App Home, uninstalled, or refresh token expired)."""


@dataclass(frozen=True)
class AccessToken:
    shop_domain: str
    token: str
    expires_at: datetime | None


def _iso(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def _z(value: datetime | None) -> str | None:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if value else None


class ShopTokens:
    def __init__(self, db: Database, cipher: TokenCipher, app: ShopifyApp, admin_base: str):
        self.db = db
        self.cipher = cipher
        self.app = app
        self.admin_base = admin_base
        # Every Admin call needs the token; most would re-read and decrypt the same row. A minute's
        # memory bounds how long another process's uninstall or refresh goes unnoticed here.
        self._memory: dict[str, tuple[float, AccessToken]] = {}
        # Called with the domain once the shop has a token but its profile (currency, time zone)
        # was never read: right after install, or on a later load if that read failed.
        self.after_install: Callable[[str], object] | None = None

    # -- install ---------------------------------------------------------------------------
    def ensure_installed(self, domain: str, id_token, invalid_token_response) -> bool:
        """Exchange the verified id token for an expiring offline token unless the shop has a
        usable one. Returns True when an exchange happened. Nothing is stored on failure."""
        exchanged = self._exchange_unless_usable(domain, id_token, invalid_token_response)
        if self.after_install is not None:
            with self.db.transaction() as session:
                unread = session.scalar(select(Shop.profile_read_at).where(Shop.domain == domain)) is None
            if unread:
                self.after_install(domain)  # outside the lock: it calls Shopify with the new token
        return exchanged

    def _exchange_unless_usable(self, domain: str, id_token, invalid_token_response) -> bool:
        self._ensure_row(domain)
        with self.db.transaction() as session:
            shop = self._lock(session, domain)
            if self._usable(shop):
                return False
            result = self.app.exchange_using_token_exchange(
                "offline", id_token=id_token, invalid_token_response=invalid_token_response,
                expiring=True, http_client=admin_http_client(self.admin_base, TOKEN_HTTP_TIMEOUT_S))
            if not result.ok or result.access_token is None:
                log.warning("shopify.token_exchange_failed", extra={"shop": domain, "code": result.log.code})
                raise TokenExchangeFailed(result.log.code, result.response)
            self._store(shop, result.access_token)
            self.forget(domain)
            if shop.installed_at is None or shop.uninstalled_at is not None:
                shop.installed_at = utcnow()
            shop.uninstalled_at = None
            log.info("shopify.installed", extra={"shop": domain, "shop_id": shop.id})
            return True

    # -- use -----------------------------------------------------------------------------------
    def access_token(self, domain: str) -> AccessToken:
        """A token valid for at least REFRESH_MARGIN_S, refreshing it first when needed."""
        remembered = self._memory.get(domain)
        if remembered and remembered[0] > time.monotonic() and (
                remembered[1].expires_at is None
                or remembered[1].expires_at > utcnow() + timedelta(seconds=REFRESH_MARGIN_S)):
            return remembered[1]
        token = self._access_token(domain)
        self._memory[domain] = (time.monotonic() + MEMORY_S, token)
        return token

    def forget(self, domain: str) -> None:
        self._memory.pop(domain, None)

    def _access_token(self, domain: str) -> AccessToken:
        with self.db.transaction() as session:
            shop = session.scalar(select(Shop).where(Shop.domain == domain))
            if shop is not None and self._fresh(shop):
                return self._decrypted(shop)
        with self.db.transaction() as session:
            shop = self._lock(session, domain)
            if shop is None or shop.uninstalled_at is not None or not shop.access_token_enc:
                raise ShopNotAuthorized(domain)
            if self._fresh(shop):
                return self._decrypted(shop)  # another process refreshed while we waited
            if not shop.refresh_token_enc:
                # A non-expiring (legacy) token has no expiry; it is "fresh" above unless it expired.
                raise ShopNotAuthorized(domain)
            self._refresh(shop)
            return self._decrypted(shop)

    def revoke(self, session: Session, shop: Shop) -> None:
        """Forget the tokens (app/uninstalled: Shopify has already revoked them)."""
        self.forget(shop.domain)
        shop.access_token_enc = shop.refresh_token_enc = None
        shop.access_token_expires_at = shop.refresh_token_expires_at = None
        shop.uninstalled_at = utcnow()

    # -- internals -------------------------------------------------------------------------------
    def _refresh(self, shop: Shop) -> None:
        # shopifyapp refreshes only within 60 s of expiry; we want REFRESH_MARGIN_S, so we hand it
        # the expiry we act on rather than the real one.
        due = shop.access_token_expires_at - timedelta(seconds=REFRESH_MARGIN_S) \
            if shop.access_token_expires_at else None
        current = {
            "shop": shop.domain.removesuffix(".myshopify.com"),
            "access_mode": "offline",
            "refresh_token": self.cipher.decrypt(shop.refresh_token_enc),
            "expires": _z(due),
            "refresh_token_expires": _z(shop.refresh_token_expires_at),
        }
        result = self.app.refresh_token_exchanged_access_token(
            current, http_client=admin_http_client(self.admin_base, TOKEN_HTTP_TIMEOUT_S))
        if not result.ok or result.access_token is None:
            log.warning("shopify.token_refresh_failed", extra={"shop": shop.domain, "code": result.log.code})
            raise ShopNotAuthorized(shop.domain)
        self._store(shop, result.access_token)
        log.info("shopify.token_refreshed", extra={"shop_id": shop.id})

    def _store(self, shop: Shop, token) -> None:
        shop.access_token_enc = self.cipher.encrypt(token.token)
        shop.access_token_expires_at = _iso(token.expires)
        shop.refresh_token_enc = self.cipher.encrypt(token.refresh_token) if token.refresh_token else None
        shop.refresh_token_expires_at = _iso(token.refresh_token_expires)
        shop.scopes = token.scope

    def _ensure_row(self, domain: str) -> None:
        with self.db.transaction() as session:
            ensure_shop(session, domain)

    def _lock(self, session: Session, domain: str) -> Shop | None:
        session.execute(update(Shop).where(Shop.domain == domain).values(token_locked_at=utcnow()))
        return session.scalar(select(Shop).where(Shop.domain == domain).execution_options(populate_existing=True))

    @staticmethod
    def _fresh(shop: Shop) -> bool:
        if shop.uninstalled_at is not None or not shop.access_token_enc:
            return False
        if shop.access_token_expires_at is None:
            return True
        return shop.access_token_expires_at > utcnow() + timedelta(seconds=REFRESH_MARGIN_S)

    @staticmethod
    def _usable(shop: Shop) -> bool:
        if shop.uninstalled_at is not None or not shop.access_token_enc:
            return False
        now = utcnow()
        if shop.access_token_expires_at is None or shop.access_token_expires_at > now:
            return True
        return bool(shop.refresh_token_enc) and (shop.refresh_token_expires_at or now) > now

    def _decrypted(self, shop: Shop) -> AccessToken:
        return AccessToken(shop.domain, self.cipher.decrypt(shop.access_token_enc), shop.access_token_expires_at)
