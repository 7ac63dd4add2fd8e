"""The schema. Alembic revisions in migrations/ must agree with these models (a test checks it)."""
from __future__ import annotations

from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator):
    """Aware UTC datetimes on both engines (SQLite has no time zone, Postgres has timestamptz)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


JSONType = JSON().with_variant(JSONB(), "postgresql")


class StoredEnum(TypeDecorator):
    """A str-valued Enum stored as its plain string value (rows written before the enum stay valid)."""

    impl = String
    cache_ok = True

    def __init__(self, enum: type[StrEnum], length: int):
        super().__init__(length)
        self.enum = enum

    def process_bind_param(self, value, dialect):
        return None if value is None else self.enum(value).value

    def process_result_value(self, value, dialect):
        return None if value is None else self.enum(value)


class LinkState(StrEnum):
    """Where a member link (= its sync queue row) stands."""

    PENDING = "pending"  # due for the worker
    SYNCED = "synced"
    FAILED = "failed"  # gave up; the merchant can retry
    CONFLICT = "conflict"  # several store members share the e-mail: the merchant chooses
    PAUSED = "paused"  # sync is off for the shop (or the app); the newest state syncs when it is on
    HELD = "held"  # a store member has the e-mail but Shopify has not verified it: waits for that or the merchant


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSONType, list[Any]: JSONType}


class Shop(Base):
    """A Shopify shop that installed the app, or that sent us a webhook before App Home was opened."""

    __tablename__ = "shops"

    id: Mapped[int] = mapped_column(primary_key=True)
    domain: Mapped[str] = mapped_column(String(255), unique=True)  # "example.myshopify.com"
    access_token_enc: Mapped[str | None] = mapped_column(Text)
    access_token_expires_at: Mapped[datetime | None]
    refresh_token_enc: Mapped[str | None] = mapped_column(Text)
    refresh_token_expires_at: Mapped[datetime | None]
    scopes: Mapped[str | None] = mapped_column(Text)
    token_locked_at: Mapped[datetime | None]  # written to take the per-shop token lock
    installed_at: Mapped[datetime | None]
    uninstalled_at: Mapped[datetime | None]
    # Only ever set by a Smaregi sign-in that proved it (app/connect.py); never typed in.
    smaregi_contract_id: Mapped[str | None] = mapped_column(String(64))
    # Read from Shopify's `shop { currencyCode ianaTimezone }` (app/shopify/profile.py).
    timezone: Mapped[str] = mapped_column(String(64), default="Asia/Tokyo", server_default="Asia/Tokyo")
    currency: Mapped[str] = mapped_column(String(3), default="JPY", server_default="JPY")
    profile_read_at: Mapped[datetime | None]  # None: still the defaults above
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class ShopSettings(Base):
    """Per-shop overrides; NULL means "use the environment default"."""

    __tablename__ = "shop_settings"

    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"), primary_key=True)
    yen_per_point: Mapped[int | None]
    points_unit: Mapped[int | None]
    points_minimum: Mapped[int | None]
    points_daily_limit: Mapped[int | None]
    coupon_valid_days: Mapped[int | None]
    earn_yen_per_point: Mapped[int | None]
    earn_on: Mapped[str | None] = mapped_column(String(16))
    earn_hold_days: Mapped[int | None]
    coupon_return_unused: Mapped[bool | None]
    point_expiry_months: Mapped[int | None]  # each grant moves pointExpireDate this far ahead; None = off
    rank_labels: Mapped[dict[str, Any]] = mapped_column(default=dict)  # {"gold": {"ja": "…", "en": "…"}}
    blank_name_placeholder: Mapped[str] = mapped_column(String(85), default="-", server_default="-")
    keep_store_member_codes: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    sync_enabled: Mapped[bool] = mapped_column(Boolean, default=True, server_default=text("true"))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class SmaregiSignInState(Base):
    """A "Connect Smaregi" in progress. The browser holds the state; we keep only its hash, the
    shop it was issued to and the PKCE verifier. Single use, short-lived."""

    __tablename__ = "smaregi_sign_in_states"

    state_hash: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 hex of the state
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"), index=True)
    code_verifier_enc: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]


class SmaregiConnection(Base):
    """Every proof: this shop signed in to Smaregi and user info named this contract, at this time."""

    __tablename__ = "smaregi_connections"

    id: Mapped[int] = mapped_column(primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"), index=True)
    contract_id: Mapped[str] = mapped_column(String(64))
    proven_at: Mapped[datetime] = mapped_column(default=utcnow)


class SmaregiContract(Base):
    """State shared by every process for one Smaregi contract: the app token, a 429 pause, the directory."""

    __tablename__ = "smaregi_contracts"

    contract_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    access_token_enc: Mapped[str | None] = mapped_column(Text)
    access_token_expires_at: Mapped[datetime | None]
    token_locked_at: Mapped[datetime | None]
    paused_until: Mapped[datetime | None]
    directory_import_started_at: Mapped[datetime | None]
    directory_import_completed_at: Mapped[datetime | None]
    directory_import_page: Mapped[int] = mapped_column(default=0, server_default="0")
    directory_imported: Mapped[int] = mapped_column(default=0, server_default="0")
    directory_fresh_until: Mapped[datetime | None]  # high-water mark of the update-window refresh
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class RateSlot(Base):
    """Requests sent to one contract in one clock second, counted across every process."""

    __tablename__ = "smaregi_rate_slots"

    contract_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(5), primary_key=True)  # "read" | "write"
    second: Mapped[int] = mapped_column(BigInteger, primary_key=True)  # unix epoch second
    used: Mapped[int] = mapped_column(default=0)
    shopper_used: Mapped[int] = mapped_column(default=0, server_default="0")  # of `used`, sent for a shopper


class MemberLink(Base):
    """One Shopify customer ↔ one Smaregi member, and the sync queue row for it."""

    __tablename__ = "member_links"
    __table_args__ = (
        UniqueConstraint("shop_id", "shopify_customer_id"),
        Index("ix_member_links_due", "state", "next_attempt_at"),
        Index("ix_member_links_smaregi", "shop_id", "smaregi_customer_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"))
    shopify_customer_id: Mapped[int] = mapped_column(BigInteger)
    smaregi_customer_id: Mapped[str | None] = mapped_column(String(32))
    member_code: Mapped[str | None] = mapped_column(String(20))
    # The store member's own code before linking rewrote it: its earlier transactions carry that code.
    store_member_code: Mapped[str | None] = mapped_column(String(20))
    # What the customer looks like in Shopify now (personal data; cleared by customers/redact).
    desired: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    desired_hash: Mapped[str | None] = mapped_column(String(64))
    synced_hash: Mapped[str | None] = mapped_column(String(64))  # hash of what Smaregi holds from us
    shopify_updated_at: Mapped[datetime | None]
    state: Mapped[LinkState] = mapped_column(StoredEnum(LinkState, 16), default=LinkState.PENDING)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    conflict_candidates: Mapped[list[Any] | None] = mapped_column(JSONType)
    leased_until: Mapped[datetime | None]
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    event_received_at: Mapped[datetime | None]  # first unsynced event, for webhook→POS latency
    synced_at: Mapped[datetime | None]
    last_latency_ms: Mapped[int | None]  # webhook received → member written, for the dashboard
    # The Smaregi member as the register left it (MemberStatus): withdrawn or deleted there is shown
    # to the merchant and makes the shopper `not_registered`. Set from Smaregi's webhooks and the audit.
    member_status: Mapped[str] = mapped_column(String(16), default="active", server_default="active")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class WebhookDelivery(Base):
    """Every verified delivery, once. Duplicates are found by webhook id or by (topic, event id)."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("webhook_id"),
        Index("uq_webhook_deliveries_topic_event", "topic", "event_id", unique=True),
        Index("ix_webhook_deliveries_shop_domain", "shop_domain"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    shop_domain: Mapped[str] = mapped_column(String(255))
    topic: Mapped[str] = mapped_column(String(64))
    webhook_id: Mapped[str] = mapped_column(String(128))
    event_id: Mapped[str | None] = mapped_column(String(128))
    triggered_at: Mapped[datetime | None]
    received_at: Mapped[datetime] = mapped_column(default=utcnow)


class DirectoryMember(Base):
    """Local index of a contract's Smaregi members: Smaregi cannot search by e-mail, so we keep one."""

    __tablename__ = "member_directory"
    __table_args__ = (
        UniqueConstraint("contract_id", "smaregi_customer_id"),
        Index("ix_member_directory_email", "contract_id", "email_normalized"),
        Index("ix_member_directory_code", "contract_id", "customer_code"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    contract_id: Mapped[str] = mapped_column(String(64))
    smaregi_customer_id: Mapped[str] = mapped_column(String(32))
    customer_code: Mapped[str | None] = mapped_column(String(20))
    email_normalized: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[str | None] = mapped_column(String(2))
    rank: Mapped[str | None] = mapped_column(String(20))
    smaregi_updated_at: Mapped[datetime | None]
    refreshed_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class BalanceSnapshot(Base):
    """The last good balance read per customer, shared by every web process: reloads within a few
    seconds are answered from it (one shopper cannot exhaust the contract's read limit), and when
    Smaregi fails it is shown marked stale instead of an error."""

    __tablename__ = "balance_snapshots"

    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"), primary_key=True)
    shopify_customer_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    reading: Mapped[dict[str, Any]] = mapped_column(JSONType)
    fetched_at: Mapped[datetime]


class Conversion(Base):
    """The points→coupon ledger. The source of truth for what we did to a member's points."""

    __tablename__ = "conversions"
    __table_args__ = (
        UniqueConstraint("shop_id", "idempotency_key"),
        UniqueConstraint("code"),
        Index("ix_conversions_customer", "shop_id", "shopify_customer_id", "created_at"),
        Index("ix_conversions_status", "status", "next_attempt_at"),
        # At most one conversion in flight per customer: the database refuses a second.
        Index("uq_conversions_one_in_flight", "shop_id", "shopify_customer_id", unique=True,
              sqlite_where=text("status IN ('reserved', 'code_created', 'deducting', 'deducted', 'compensating')"),
              postgresql_where=text("status IN ('reserved', 'code_created', 'deducting', 'deducted', 'compensating')")),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"))
    shopify_customer_id: Mapped[int] = mapped_column(BigInteger)
    smaregi_customer_id: Mapped[str | None] = mapped_column(String(32))
    idempotency_key: Mapped[str] = mapped_column(String(128))
    points: Mapped[int] = mapped_column(BigInteger)
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    code: Mapped[str] = mapped_column(String(64))
    local_date: Mapped[date] = mapped_column(Date)  # the shop-time-zone day, for the daily limit
    # app.points.ledger.ConversionStatus
    status: Mapped[str] = mapped_column(String(16), default="reserved")
    discount_id: Mapped[str | None] = mapped_column(String(128))
    smaregi_transaction_ids: Mapped[list[Any] | None] = mapped_column(JSONType)
    balance_after: Mapped[int | None] = mapped_column(BigInteger)
    expires_at: Mapped[datetime | None]
    order_id: Mapped[int | None] = mapped_column(BigInteger)  # the order that used the code
    order_name: Mapped[str | None] = mapped_column(String(64))
    points_returned: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    metafield_recorded: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    deducting_since: Mapped[datetime | None]  # when we asked Smaregi; bounds the reconciliation window
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime | None]
    leased_until: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class ConversionRefusal(Base):
    """A conversion request the rules refused before anything was reserved, kept under its
    idempotency key: the same key again gets the same refusal, even once the balance has grown."""

    __tablename__ = "conversion_refusals"
    __table_args__ = (UniqueConstraint("shop_id", "idempotency_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"))
    shopify_customer_id: Mapped[int] = mapped_column(BigInteger)
    idempotency_key: Mapped[str] = mapped_column(String(128))
    points: Mapped[int] = mapped_column(BigInteger)
    error_code: Mapped[str] = mapped_column(String(64))
    error_message: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class PointMovement(Base):
    """Every change the app makes to a member's Smaregi points, written before it is sent
    (app/points/movements.py). Smaregi's point/add is relative and has no idempotency key, so this
    row is the record of what we did, and an ambiguous send is reconciled from the member's
    transactions instead of being sent again."""

    __tablename__ = "point_movements"
    __table_args__ = (
        Index("ix_point_movements_customer", "shop_id", "shopify_customer_id", "created_at"),
        Index("ix_point_movements_due", "state", "next_attempt_at"),
        Index("ix_point_movements_order", "shop_id", "order_id"),
        Index("ix_point_movements_conversion", "conversion_id"),
        # One Smaregi transaction is one movement's: two reconciliations cannot both adopt it.
        Index("uq_point_movements_transaction", "shop_id", "smaregi_transaction_id", unique=True,
              sqlite_where=text("smaregi_transaction_id IS NOT NULL"),
              postgresql_where=text("smaregi_transaction_id IS NOT NULL")),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"))
    shopify_customer_id: Mapped[int] = mapped_column(BigInteger)
    smaregi_customer_id: Mapped[str | None] = mapped_column(String(32))  # None: waiting for a linked member
    kind: Mapped[str] = mapped_column(String(24))  # MovementKind
    reason: Mapped[str] = mapped_column(String(32))  # MovementReason: what the history calls it
    points: Mapped[int] = mapped_column(BigInteger)  # signed: what the movement is for
    sent_points: Mapped[int | None] = mapped_column(BigInteger)  # signed: what point/add was asked
    owed_change: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")  # + short, - paid off
    state: Mapped[str] = mapped_column(String(16))  # MovementState
    smaregi_transaction_id: Mapped[str | None] = mapped_column(String(32))
    balance_after: Mapped[int | None] = mapped_column(BigInteger)
    conversion_id: Mapped[str | None] = mapped_column(String(36))
    order_id: Mapped[int | None] = mapped_column(BigInteger)
    sent_at: Mapped[datetime | None]
    applied_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime | None]
    leased_until: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Order(Base):
    """The newest state of a Shopify order we were told about, and what it has earned so far.
    Like member links, this row is the work queue: `next_attempt_at` is when the worker settles it."""

    __tablename__ = "orders"
    __table_args__ = (
        UniqueConstraint("shop_id", "shopify_order_id"),
        Index("ix_orders_due", "next_attempt_at"),
        Index("ix_orders_customer", "shop_id", "shopify_customer_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"))
    shopify_order_id: Mapped[int] = mapped_column(BigInteger)
    shopify_customer_id: Mapped[int | None] = mapped_column(BigInteger)
    name: Mapped[str | None] = mapped_column(String(64))
    shopify_updated_at: Mapped[datetime | None]
    # The order as the earning rule sees it: base, statuses, cancelled, discount codes.
    facts: Mapped[dict[str, Any]] = mapped_column(JSONType)
    paid_seen_at: Mapped[datetime | None]  # first receipt in a paid state: the paid trigger moment
    fulfilled_seen_at: Mapped[datetime | None]
    base_when_paid: Mapped[str | None] = mapped_column(String(32))  # decimal, for the refunded share
    # The rule it was first granted under ({"yen_per_point", "on", "hold_days"}): a later change of the
    # shop's rules applies to new orders, never takes back what an old one earned.
    earn_rule: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    next_attempt_at: Mapped[datetime | None]
    leased_until: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class ScheduledJob(Base):
    """A periodic job that must run once across all workers: whoever claims the row runs it."""

    __tablename__ = "scheduled_jobs"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    next_run_at: Mapped[datetime]
    leased_until: Mapped[datetime | None]
    lease_owner: Mapped[str | None] = mapped_column(String(64))  # the worker running it (hands it back after an error)
    last_run_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)


class DataRequest(Base):
    """A customers/data_request: what we hold about the customer, kept for the merchant to fetch."""

    __tablename__ = "data_requests"

    id: Mapped[int] = mapped_column(primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"), index=True)
    shopify_customer_id: Mapped[int] = mapped_column(BigInteger)
    request_id: Mapped[str | None] = mapped_column(String(64))
    export: Mapped[dict[str, Any]] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class SmaregiEvent(Base):
    """A Smaregi webhook delivery, once per event id, and the worker's queue for acting on it
    (Smaregi waits at most 3 s and never retries, so the request only records)."""

    __tablename__ = "smaregi_events"
    __table_args__ = (
        UniqueConstraint("event_id"),
        Index("ix_smaregi_events_due", "processed_at", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[str] = mapped_column(String(128))
    contract_id: Mapped[str] = mapped_column(String(64))
    event: Mapped[str] = mapped_column(String(32))  # pos:customers | pos:transactions
    action: Mapped[str] = mapped_column(String(32))
    ids: Mapped[list[Any]] = mapped_column(JSONType)  # customerIds or transactionHeadIds, as strings
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime | None]
    leased_until: Mapped[datetime | None]
    processed_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)


class AuditRun(Base):
    """One comparison of a shop's ledger and links with Smaregi (daily, or the merchant's button)."""

    __tablename__ = "audit_runs"
    __table_args__ = (Index("ix_audit_runs_shop", "shop_id", "requested_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"))
    state: Mapped[str] = mapped_column(String(16), default="queued")  # AuditState
    requested_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    movements_checked: Mapped[int] = mapped_column(default=0)
    members_checked: Mapped[int] = mapped_column(default=0)
    differences: Mapped[int] = mapped_column(default=0)
    error: Mapped[str | None] = mapped_column(Text)


class AuditFinding(Base):
    """A difference between what the app says it did and what Smaregi holds, for the merchant.
    Never fixed silently: it stays open until the merchant fixes or dismisses it, or a later run
    no longer sees it."""

    __tablename__ = "audit_findings"
    __table_args__ = (UniqueConstraint("shop_id", "kind", "subject"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))  # FindingKind
    subject: Mapped[str] = mapped_column(String(64))  # the movement or link it is about
    shopify_customer_id: Mapped[int | None] = mapped_column(BigInteger)
    details: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    first_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    resolved_at: Mapped[datetime | None]
    resolution: Mapped[str | None] = mapped_column(String(32))  # fixed | dismissed | gone
class CustomerImport(Base):
    """One import of a shop's existing Shopify customers (see app/sync/customer_import.py)."""

    __tablename__ = "customer_imports"
    __table_args__ = (
        Index("ix_customer_imports_shop", "shop_id", "id"),
        # One import per shop at a time: the database refuses a second active one.
        Index("uq_customer_imports_one_active", "shop_id", unique=True,
              sqlite_where=text("state IN ('queued', 'running')"),
              postgresql_where=text("state IN ('queued', 'running')")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"))
    state: Mapped[str] = mapped_column(String(16), default="queued")  # ImportState
    phase: Mapped[str] = mapped_column(String(16), default="export")  # ImportPhase
    bulk_operation_id: Mapped[str | None] = mapped_column(String(128))
    result_url: Mapped[str | None] = mapped_column(Text)
    lines_read: Mapped[int] = mapped_column(default=0)
    reason: Mapped[str | None] = mapped_column(Text)
    leased_until: Mapped[datetime | None]
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    matching_started_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class ImportBatch(Base):
    """One Smaregi bulk request (≤ 100 members). Written before it is sent, so a crash mid-send is
    resolved by re-reading the members, never by sending again blindly."""

    __tablename__ = "import_batches"
    __table_args__ = (
        UniqueConstraint("token_hash"),
        Index("ix_import_batches_import_state", "import_id", "state"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    import_id: Mapped[int] = mapped_column(ForeignKey("customer_imports.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(8))  # create | update | link
    token_hash: Mapped[str] = mapped_column(String(64))  # sha256 of the callback URL's token
    state: Mapped[str] = mapped_column(String(16), default="sent")  # sent | resolved
    request_id: Mapped[str | None] = mapped_column(String(64))
    sent_at: Mapped[datetime] = mapped_column(default=utcnow)
    callback_at: Mapped[datetime | None]


class ImportCustomer(Base):
    """A customer read by an import, and what became of them. Ids and hashes only: the personal
    data lives in the member link, where customers/redact finds it."""

    __tablename__ = "import_customers"
    __table_args__ = (
        Index("ix_import_customers_outcome", "import_id", "outcome", "line"),
        Index("ix_import_customers_batch", "batch_id"),
    )

    import_id: Mapped[int] = mapped_column(ForeignKey("customer_imports.id", ondelete="CASCADE"), primary_key=True)
    shopify_customer_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    line: Mapped[int]
    link_id: Mapped[int | None]
    created_link: Mapped[bool] = mapped_column(Boolean, default=False)
    # new | single | bulk | linked | created | held | failed (ImportOutcome)
    outcome: Mapped[str] = mapped_column(String(16), default="new")
    batch_id: Mapped[int | None]
    desired_hash: Mapped[str | None] = mapped_column(String(64))  # the link's state when sent in a batch
    sent_hash: Mapped[str | None] = mapped_column(String(64))  # the Smaregi fields sent
    # to_link: the store member with the customer's verified e-mail, and its code before ours
    store_member_id: Mapped[str | None] = mapped_column(String(32))
    store_code: Mapped[str | None] = mapped_column(String(20))
