"""Effective per-shop settings: the shop's overrides on top of the environment defaults."""
from __future__ import annotations

from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from .config import Config
from .models import Shop, ShopSettings
from .shops import resolve_contract, shop_contract


@dataclass(frozen=True)
class EffectiveSettings:
    shop_id: int
    contract_id: str | None
    sync_enabled: bool  # the shop's switch AND SMAREGI_SYNC_ENABLED
    blank_name_placeholder: str
    keep_store_member_codes: bool
    yen_per_point: int
    points_unit: int
    points_minimum: int
    points_daily_limit: int
    coupon_valid_days: int
    rank_labels: dict
    timezone: ZoneInfo
    currency: str
    earn_yen_per_point: int = 0  # 0: online earning off
    earn_on: str = "paid"
    earn_hold_days: int = 0
    coupon_return_unused: bool = True
    point_expiry_months: int | None = None  # each grant moves the member's pointExpireDate this far ahead

    @property
    def syncable(self) -> bool:
        return self.sync_enabled and self.contract_id is not None


_UNSET = object()


def is_syncable(config: Config, shop_contract_id: str | None, shop_sync_enabled: bool | None,
                uninstalled_at) -> bool:
    """A shop's members sync when a contract applies, both switches are on and it is installed."""
    return bool(resolve_contract(shop_contract_id, config) is not None and _switches_on(
        config, shop_sync_enabled, uninstalled_at))


def _switches_on(config: Config, shop_sync_enabled: bool | None, uninstalled_at) -> bool:
    return bool(config.smaregi_sync_enabled and shop_sync_enabled is not False and uninstalled_at is None)


def effective_settings(session: Session, shop: Shop, config: Config, own=_UNSET) -> EffectiveSettings:
    """`own`: the shop's ShopSettings row (or None) when the caller already loaded it."""
    if own is _UNSET:
        own = session.get(ShopSettings, shop.id)
    own = own or ShopSettings(shop_id=shop.id)
    defaults = config.points

    def pick(value, default):
        return default if value is None else value

    contract = shop_contract(shop, config)
    return EffectiveSettings(
        shop_id=shop.id,
        contract_id=contract.contract_id if contract else None,
        sync_enabled=_switches_on(config, own.sync_enabled, shop.uninstalled_at),
        blank_name_placeholder=pick(own.blank_name_placeholder, "-") or "-",
        keep_store_member_codes=bool(own.keep_store_member_codes),
        yen_per_point=pick(own.yen_per_point, defaults.yen_per_point),
        points_unit=pick(own.points_unit, defaults.unit),
        points_minimum=pick(own.points_minimum, defaults.minimum),
        points_daily_limit=pick(own.points_daily_limit, defaults.daily_limit),
        coupon_valid_days=pick(own.coupon_valid_days, defaults.coupon_valid_days),
        rank_labels=dict(own.rank_labels or {}),
        timezone=ZoneInfo(shop.timezone or "Asia/Tokyo"),
        currency=shop.currency or "JPY",
        earn_yen_per_point=pick(own.earn_yen_per_point, defaults.earn_yen_per_point),
        earn_on=pick(own.earn_on, defaults.earn_on),
        earn_hold_days=pick(own.earn_hold_days, defaults.earn_hold_days),
        coupon_return_unused=pick(own.coupon_return_unused, defaults.coupon_return_unused),
        point_expiry_months=own.point_expiry_months or None,
    )
