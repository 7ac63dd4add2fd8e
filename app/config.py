"""Every setting Pointbridge reads from the environment, read and validated here and nowhere else.

`load_config()` raises `ConfigError` with one line naming the variable at fault; the entry points
(gunicorn hook, CLI) print that line and exit non-zero.
"""
from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from cryptography.fernet import Fernet
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SQLITE_PATH = ROOT / "instance" / "pointbridge.db"

# Dev-mode values only. Production refuses to start when any of these is missing, and refuses
# these exact values too, so a copied .env from a laptop cannot reach a real shop.
DEV_SHOPIFY_API_KEY = "dev-pointbridge-api-key"
DEV_SHOPIFY_API_SECRET = "dev-pointbridge-api-secret-not-for-production"
DEV_SMAREGI_CLIENT_ID = "dev-smaregi-client"
DEV_SMAREGI_CLIENT_SECRET = "dev-smaregi-secret"
DEV_SMAREGI_CONTRACT_ID = "sb_devshop"
DEV_TOKEN_ENCRYPTION_KEY = "ZGV2LW9ubHktcG9pbnRicmlkZ2UtZmVybmV0LWtleSE="  # base64 of 32 dev bytes

SMAREGI_BASES = {
    "sandbox": ("https://id.smaregi.dev", "https://api.smaregi.dev"),
    "production": ("https://id.smaregi.jp", "https://api.smaregi.jp"),
}


class ConfigError(Exception):
    """A setting is missing or malformed. str(error) is the one line to show."""

    def __init__(self, variable: str, problem: str):
        super().__init__(f"{variable}: {problem}")
        self.variable = variable


EARN_TRIGGERS = ("paid", "fulfilled")


@dataclass(frozen=True)
class PointRuleDefaults:
    yen_per_point: int = 1
    unit: int = 100
    minimum: int = 100
    daily_limit: int = 10000
    coupon_valid_days: int = 30
    earn_yen_per_point: int = 100  # 0: online purchases earn nothing
    earn_on: str = "paid"  # "paid" | "fulfilled"
    earn_hold_days: int = 0
    coupon_return_unused: bool = True


@dataclass(frozen=True)
class Config:
    environment: str
    shopify_api_key: str
    shopify_api_secret: str
    shopify_old_api_secret: str | None
    shopify_app_url: str
    shopify_api_version: str
    shopify_admin_api_base: str
    database_url: str
    smaregi_client_id: str
    smaregi_client_secret: str
    smaregi_contract_id: str | None
    smaregi_env: str
    smaregi_id_base: str
    smaregi_api_base: str
    smaregi_sync_enabled: bool
    smaregi_reads_per_s: int
    smaregi_writes_per_s: int
    token_encryption_keys: tuple[str, ...]
    points: PointRuleDefaults = field(default_factory=PointRuleDefaults)
    port: int = 8000
    log_level: str = "INFO"
    smaregi_webhook_secret: str | None = None  # unset: POST /smaregi/webhooks answers 404
    web_concurrency: int = 2
    web_threads: int = 32

    @property
    def is_development(self) -> bool:
        return self.environment == "development"

    @property
    def is_postgres(self) -> bool:
        return self.database_url.startswith("postgresql")


def normalize_database_url(url: str) -> str:
    """Heroku's `postgres://` and plain `postgresql://` both mean Postgres through psycopg 3."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


class _Reader:
    def __init__(self, env: Mapping[str, str], development: bool):
        self.env = env
        self.development = development

    def text(self, name: str, dev_default: str | None = None, default: str | None = None) -> str | None:
        value = self.env.get(name, "").strip()
        if value:
            return value
        if default is not None:
            return default
        return dev_default if self.development else None

    def required(self, name: str, dev_default: str | None = None, forbidden: str | None = None) -> str:
        value = self.text(name, dev_default)
        if not value:
            raise ConfigError(name, "is required (set it in the environment)")
        if not self.development and forbidden is not None and value == forbidden:
            raise ConfigError(name, "is the local development value; set the real one in production")
        return value

    def integer(self, name: str, default: int, minimum: int = 1) -> int:
        raw = self.env.get(name, "").strip()
        if not raw:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(name, f"must be a whole number, got {raw!r}") from None
        if value < minimum:
            raise ConfigError(name, f"must be at least {minimum}, got {value}")
        return value

    def boolean(self, name: str, default: bool) -> bool:
        raw = self.env.get(name, "").strip().lower()
        if not raw:
            return default
        if raw in {"1", "true", "yes", "on"}:
            return True
        if raw in {"0", "false", "no", "off"}:
            return False
        raise ConfigError(name, f"must be true or false, got {raw!r}")


def _origin(name: str, value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in {"http", "https"} or not parts.netloc or parts.path not in {"", "/"} \
            or parts.query or parts.fragment:
        raise ConfigError(name, f"must be scheme://host[:port] with no path, got {value!r}")
    return f"{parts.scheme}://{parts.netloc}"


def _encryption_keys(name: str, value: str) -> tuple[str, ...]:
    # Several comma-separated keys allow rotation: the first encrypts, all of them decrypt.
    keys = tuple(k.strip() for k in value.split(",") if k.strip())
    for key in keys:
        try:
            Fernet(key.encode())
        except (ValueError, TypeError):
            raise ConfigError(name, "must be Fernet keys (32 url-safe base64 bytes), comma-separated") from None
    if not keys:
        raise ConfigError(name, "is required (set it in the environment)")
    return keys


def load_config(env: Mapping[str, str] | None = None) -> Config:
    env = os.environ if env is None else env
    environment = env.get("POINTBRIDGE_ENV", "production").strip() or "production"
    development = environment == "development"
    if not development:
        environment = "production"
    read = _Reader(env, development)

    port = read.integer("PORT", 8000)
    api_version = read.text("SHOPIFY_API_VERSION", default="2026-10")
    if not re.fullmatch(r"\d{4}-(01|04|07|10)|unstable", api_version):
        raise ConfigError("SHOPIFY_API_VERSION", f"must look like 2026-10, got {api_version!r}")

    app_url = read.text("SHOPIFY_APP_URL", default=f"http://127.0.0.1:{port}").rstrip("/")
    if urlsplit(app_url).scheme not in {"http", "https"}:
        raise ConfigError("SHOPIFY_APP_URL", f"must be an http(s) URL, got {app_url!r}")

    admin_base = read.text("SHOPIFY_ADMIN_API_BASE", default="https://{shop}").rstrip("/")
    if "{shop}" not in admin_base or urlsplit(admin_base.replace("{shop}", "x")).scheme not in {"http", "https"}:
        raise ConfigError("SHOPIFY_ADMIN_API_BASE", f"must be an http(s) URL containing {{shop}}, got {admin_base!r}")

    database_url = read.text("DATABASE_URL", default=f"sqlite:///{DEFAULT_SQLITE_PATH}")
    database_url = normalize_database_url(database_url)
    if not (database_url.startswith("postgresql+psycopg://") or database_url.startswith("sqlite:")):
        raise ConfigError("DATABASE_URL", "must be a postgres://, postgresql:// or sqlite:/// URL")
    try:
        make_url(database_url)
    except (ValueError, ArgumentError):
        raise ConfigError("DATABASE_URL", "is not a valid database URL (scheme://user:password@host:port/name)") from None

    smaregi_env = read.text("SMAREGI_ENV", default="sandbox").lower()
    if smaregi_env not in SMAREGI_BASES:
        raise ConfigError("SMAREGI_ENV", f"must be sandbox or production, got {smaregi_env!r}")
    id_default, api_default = SMAREGI_BASES[smaregi_env]
    id_base = _origin("SMAREGI_ID_BASE", read.text("SMAREGI_ID_BASE", default=id_default))
    api_base = _origin("SMAREGI_API_BASE", read.text("SMAREGI_API_BASE", default=api_default))

    contract = read.text("SMAREGI_CONTRACT_ID", dev_default=DEV_SMAREGI_CONTRACT_ID)
    if contract and not re.fullmatch(r"[A-Za-z0-9_]{1,64}", contract):
        raise ConfigError("SMAREGI_CONTRACT_ID", f"must be a Smaregi contract id like sb_abc123, got {contract!r}")

    earn_on = (read.text("POINTS_EARN_ON", default="paid") or "paid").lower()
    if earn_on not in EARN_TRIGGERS:
        raise ConfigError("POINTS_EARN_ON", f"must be paid or fulfilled, got {earn_on!r}")
    webhook_secret = read.text("SMAREGI_WEBHOOK_SECRET")
    if webhook_secret and not re.fullmatch(r"[!-~]+", webhook_secret):
        # Smaregi sends it as an HTTP header value: visible ASCII, no spaces.
        raise ConfigError("SMAREGI_WEBHOOK_SECRET", "must be visible ASCII characters without spaces")
    log_level = (read.text("LOG_LEVEL", default="INFO") or "INFO").upper()
    if log_level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
        raise ConfigError("LOG_LEVEL", f"must be DEBUG, INFO, WARNING or ERROR, got {log_level.lower()!r}")

    return Config(
        environment=environment,
        shopify_api_key=read.required("SHOPIFY_API_KEY", DEV_SHOPIFY_API_KEY, forbidden=DEV_SHOPIFY_API_KEY),
        shopify_api_secret=read.required("SHOPIFY_API_SECRET", DEV_SHOPIFY_API_SECRET,
                                         forbidden=DEV_SHOPIFY_API_SECRET),
        shopify_old_api_secret=read.text("SHOPIFY_OLD_API_SECRET"),
        shopify_app_url=app_url,
        shopify_api_version=api_version,
        shopify_admin_api_base=admin_base,
        database_url=database_url,
        smaregi_client_id=read.required("SMAREGI_CLIENT_ID", DEV_SMAREGI_CLIENT_ID),
        smaregi_client_secret=read.required("SMAREGI_CLIENT_SECRET", DEV_SMAREGI_CLIENT_SECRET),
        smaregi_contract_id=contract,
        smaregi_env=smaregi_env,
        smaregi_id_base=id_base,
        smaregi_api_base=api_base,
        smaregi_sync_enabled=read.boolean("SMAREGI_SYNC_ENABLED", True),
        smaregi_reads_per_s=read.integer("SMAREGI_READS_PER_S", 10),
        smaregi_writes_per_s=read.integer("SMAREGI_WRITES_PER_S", 4),
        token_encryption_keys=_encryption_keys(
            "TOKEN_ENCRYPTION_KEY",
            read.required("TOKEN_ENCRYPTION_KEY", DEV_TOKEN_ENCRYPTION_KEY, forbidden=DEV_TOKEN_ENCRYPTION_KEY),
        ),
        points=PointRuleDefaults(
            yen_per_point=read.integer("POINTS_YEN_PER_POINT", 1),
            unit=read.integer("POINTS_UNIT", 100),
            minimum=read.integer("POINTS_MINIMUM", 100),
            daily_limit=read.integer("POINTS_DAILY_LIMIT", 10000),
            coupon_valid_days=read.integer("COUPON_VALID_DAYS", 30),
            earn_yen_per_point=read.integer("POINTS_EARN_YEN_PER_POINT", 100, minimum=0),
            earn_on=earn_on,
            earn_hold_days=read.integer("POINTS_EARN_HOLD_DAYS", 0, minimum=0),
            coupon_return_unused=read.boolean("COUPON_RETURN_UNUSED", True),
        ),
        port=port,
        web_concurrency=read.integer("WEB_CONCURRENCY", 2),
        web_threads=read.integer("WEB_THREADS", 32),
        log_level=log_level,
        smaregi_webhook_secret=webhook_secret,
    )


# `dev.py run` only: where the local processes listen, each movable when something else holds it.
DEV_PORT_VARIABLES = {"web": "POINTBRIDGE_WEB_PORT", "smaregi": "POINTBRIDGE_SMAREGI_PORT",
                      "shopify": "POINTBRIDGE_SHOPIFY_PORT", "storefront": "POINTBRIDGE_STOREFRONT_PORT"}
DEV_PORT_DEFAULTS = {"web": 8000, "smaregi": 8101, "shopify": 8102, "storefront": 8103}


def load_dev_ports(env: Mapping[str, str] | None = None) -> dict[str, int]:
    """The dev runner's ports; the web one also answers to PORT (as gunicorn's does in production)."""
    env = os.environ if env is None else env
    read = _Reader(env, development=True)
    ports = {}
    for name, variable in DEV_PORT_VARIABLES.items():
        default = DEV_PORT_DEFAULTS[name]
        if name == "web" and not env.get(variable, "").strip():
            variable, default = "PORT", read.integer(variable, default)
        ports[name] = read.integer(variable, default)
        if ports[name] > 65535:
            raise ConfigError(variable, f"must be a port number (1-65535), got {ports[name]}")
    return ports
