"""The shop's currency and IANA time zone, read from Shopify once it is installed.

Codes are made in the shop's currency and days (daily limit, coupon expiry, history dates) are
counted in the shop's zone (EffectiveSettings.currency / .timezone). Until the first read
succeeds the shop keeps the defaults (JPY, Asia/Tokyo); a failed read is tried again on the next
App Home load.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import update

from ..db import Database
from ..models import Shop, utcnow
from ..points.member import forget_settings
from .admin import AdminClient, ShopifyRejected, ShopifyUnavailable
from .tokens import ShopNotAuthorized

log = logging.getLogger(__name__)

QUERY = "query ShopProfile { shop { currencyCode ianaTimezone } }"
CURRENCY = re.compile(r"[A-Z]{3}")


@dataclass(frozen=True)
class ShopProfile:
    currency: str  # ISO 4217, e.g. "JPY"
    timezone: str  # IANA, e.g. "Asia/Tokyo"


def fetch_shop_profile(admin: AdminClient, shop_domain: str) -> ShopProfile:
    shop = (admin.graphql(shop_domain, QUERY).get("shop") or {})
    currency, zone = shop.get("currencyCode"), shop.get("ianaTimezone")
    if not isinstance(currency, str) or not CURRENCY.fullmatch(currency):
        raise ShopifyRejected("shop_currency_unreadable")
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, TypeError, ValueError):
        raise ShopifyRejected("shop_timezone_unreadable") from None
    return ShopProfile(currency, zone)


def read_shop_profile(db: Database, admin: AdminClient, shop_domain: str) -> ShopProfile | None:
    """Read and store the profile; None (and the shop unchanged) when Shopify did not answer."""
    try:
        profile = fetch_shop_profile(admin, shop_domain)
    except (ShopifyUnavailable, ShopifyRejected, ShopNotAuthorized) as exc:
        log.warning("shopify.shop_profile_failed", extra={"shop": shop_domain,
                                                          "reason": getattr(exc, "reason", type(exc).__name__)})
        return None
    with db.transaction() as session:
        session.execute(update(Shop).where(Shop.domain == shop_domain).values(
            currency=profile.currency, timezone=profile.timezone, profile_read_at=utcnow()))
    forget_settings(shop_domain)
    log.info("shopify.shop_profile", extra={"shop": shop_domain, "currency": profile.currency,
                                            "timezone": profile.timezone})
    return profile
