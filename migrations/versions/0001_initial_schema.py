"""Initial schema: shops, settings, Smaregi contracts and rate slots, member links (the sync queue),
webhook deliveries, the member directory, the conversion ledger and scheduled jobs.

Revision ID: 0001
Revises: 
Create Date: 2026-11-23
"""
from alembic import op
import sqlalchemy as sa
import app.models
from sqlalchemy.dialects import postgresql

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('member_directory',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('contract_id', sa.String(length=64), nullable=False),
    sa.Column('smaregi_customer_id', sa.String(length=32), nullable=False),
    sa.Column('customer_code', sa.String(length=20), nullable=True),
    sa.Column('email_normalized', sa.String(length=255), nullable=True),
    sa.Column('status', sa.String(length=2), nullable=True),
    sa.Column('smaregi_updated_at', app.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('refreshed_at', app.models.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_member_directory')),
    sa.UniqueConstraint('contract_id', 'smaregi_customer_id', name=op.f('uq_member_directory_contract_id_smaregi_customer_id'))
    )
    with op.batch_alter_table('member_directory', schema=None) as batch_op:
        batch_op.create_index('ix_member_directory_code', ['contract_id', 'customer_code'], unique=False)
        batch_op.create_index('ix_member_directory_email', ['contract_id', 'email_normalized'], unique=False)

    op.create_table('scheduled_jobs',
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('next_run_at', app.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('leased_until', app.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_run_at', app.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_scheduled_jobs'))
    )
    op.create_table('shops',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('domain', sa.String(length=255), nullable=False),
    sa.Column('access_token_enc', sa.Text(), nullable=True),
    sa.Column('access_token_expires_at', app.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('refresh_token_enc', sa.Text(), nullable=True),
    sa.Column('refresh_token_expires_at', app.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('scopes', sa.Text(), nullable=True),
    sa.Column('token_locked_at', app.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('installed_at', app.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('uninstalled_at', app.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('smaregi_contract_id', sa.String(length=64), nullable=True),
    sa.Column('timezone', sa.String(length=64), server_default='Asia/Tokyo', nullable=False),
    sa.Column('currency', sa.String(length=3), server_default='JPY', nullable=False),
    sa.Column('created_at', app.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', app.models.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_shops')),
    sa.UniqueConstraint('domain', name=op.f('uq_shops_domain'))
    )
    op.create_table('smaregi_contracts',
    sa.Column('contract_id', sa.String(length=64), nullable=False),
    sa.Column('access_token_enc', sa.Text(), nullable=True),
    sa.Column('access_token_expires_at', app.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('token_locked_at', app.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('paused_until', app.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('directory_import_started_at', app.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('directory_import_completed_at', app.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('directory_import_page', sa.Integer(), server_default='0', nullable=False),
    sa.Column('directory_imported', sa.Integer(), server_default='0', nullable=False),
    sa.Column('directory_fresh_until', app.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', app.models.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('contract_id', name=op.f('pk_smaregi_contracts'))
    )
    op.create_table('smaregi_rate_slots',
    sa.Column('contract_id', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=5), nullable=False),
    sa.Column('second', sa.BigInteger(), nullable=False),
    sa.Column('used', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('contract_id', 'kind', 'second', name=op.f('pk_smaregi_rate_slots'))
    )
    op.create_table('webhook_deliveries',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('shop_domain', sa.String(length=255), nullable=False),
    sa.Column('topic', sa.String(length=64), nullable=False),
    sa.Column('webhook_id', sa.String(length=128), nullable=False),
    sa.Column('event_id', sa.String(length=128), nullable=True),
    sa.Column('triggered_at', app.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('received_at', app.models.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_deliveries')),
    sa.UniqueConstraint('webhook_id', name=op.f('uq_webhook_deliveries_webhook_id'))
    )
    with op.batch_alter_table('webhook_deliveries', schema=None) as batch_op:
        batch_op.create_index('ix_webhook_deliveries_shop_domain', ['shop_domain'], unique=False)
        batch_op.create_index('uq_webhook_deliveries_topic_event', ['topic', 'event_id'], unique=True)

    op.create_table('conversions',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('shop_id', sa.Integer(), nullable=False),
    sa.Column('shopify_customer_id', sa.BigInteger(), nullable=False),
    sa.Column('smaregi_customer_id', sa.String(length=32), nullable=True),
    sa.Column('idempotency_key', sa.String(length=128), nullable=False),
    sa.Column('points', sa.Integer(), nullable=False),
    sa.Column('amount', sa.Integer(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('code', sa.String(length=64), nullable=False),
    sa.Column('local_date', sa.Date(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('discount_id', sa.String(length=128), nullable=True),
    sa.Column('smaregi_transaction_ids', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('balance_after', sa.Integer(), nullable=True),
    sa.Column('expires_at', app.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('error_code', sa.String(length=64), nullable=True),
    sa.Column('error_message', sa.Text(), nullable=True),
    sa.Column('metafield_recorded', sa.Boolean(), server_default=sa.text('(false)'), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', app.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('leased_until', app.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', app.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', app.models.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['shop_id'], ['shops.id'], name=op.f('fk_conversions_shop_id_shops'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_conversions')),
    sa.UniqueConstraint('code', name=op.f('uq_conversions_code')),
    sa.UniqueConstraint('shop_id', 'idempotency_key', name=op.f('uq_conversions_shop_id_idempotency_key'))
    )
    with op.batch_alter_table('conversions', schema=None) as batch_op:
        batch_op.create_index('ix_conversions_customer', ['shop_id', 'shopify_customer_id', 'created_at'], unique=False)
        batch_op.create_index('ix_conversions_status', ['status', 'next_attempt_at'], unique=False)
        batch_op.create_index('uq_conversions_one_in_flight', ['shop_id', 'shopify_customer_id'], unique=True, sqlite_where=sa.text("status IN ('reserved', 'code_created', 'deducting', 'deducted', 'compensating')"), postgresql_where=sa.text("status IN ('reserved', 'code_created', 'deducting', 'deducted', 'compensating')"))

    op.create_table('member_links',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('shop_id', sa.Integer(), nullable=False),
    sa.Column('shopify_customer_id', sa.BigInteger(), nullable=False),
    sa.Column('smaregi_customer_id', sa.String(length=32), nullable=True),
    sa.Column('member_code', sa.String(length=20), nullable=True),
    sa.Column('desired', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('desired_hash', sa.String(length=64), nullable=True),
    sa.Column('synced_hash', sa.String(length=64), nullable=True),
    sa.Column('shopify_updated_at', app.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', app.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('conflict_candidates', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('leased_until', app.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('lease_owner', sa.String(length=64), nullable=True),
    sa.Column('event_received_at', app.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('synced_at', app.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', app.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', app.models.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['shop_id'], ['shops.id'], name=op.f('fk_member_links_shop_id_shops'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_member_links')),
    sa.UniqueConstraint('shop_id', 'shopify_customer_id', name=op.f('uq_member_links_shop_id_shopify_customer_id'))
    )
    with op.batch_alter_table('member_links', schema=None) as batch_op:
        batch_op.create_index('ix_member_links_due', ['state', 'next_attempt_at'], unique=False)
        batch_op.create_index('ix_member_links_smaregi', ['shop_id', 'smaregi_customer_id'], unique=False)

    op.create_table('shop_settings',
    sa.Column('shop_id', sa.Integer(), nullable=False),
    sa.Column('yen_per_point', sa.Integer(), nullable=True),
    sa.Column('points_unit', sa.Integer(), nullable=True),
    sa.Column('points_minimum', sa.Integer(), nullable=True),
    sa.Column('points_daily_limit', sa.Integer(), nullable=True),
    sa.Column('coupon_valid_days', sa.Integer(), nullable=True),
    sa.Column('rank_labels', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('blank_name_placeholder', sa.String(length=85), server_default='-', nullable=False),
    sa.Column('keep_store_member_codes', sa.Boolean(), server_default=sa.text('(false)'), nullable=False),
    sa.Column('sync_enabled', sa.Boolean(), server_default=sa.text('(true)'), nullable=False),
    sa.Column('updated_at', app.models.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['shop_id'], ['shops.id'], name=op.f('fk_shop_settings_shop_id_shops'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('shop_id', name=op.f('pk_shop_settings'))
    )


def downgrade() -> None:
    op.drop_table('shop_settings')
    with op.batch_alter_table('member_links', schema=None) as batch_op:
        batch_op.drop_index('ix_member_links_smaregi')
        batch_op.drop_index('ix_member_links_due')

    op.drop_table('member_links')
    with op.batch_alter_table('conversions', schema=None) as batch_op:
        batch_op.drop_index('uq_conversions_one_in_flight', sqlite_where=sa.text("status IN ('reserved', 'code_created', 'deducting', 'deducted', 'compensating')"), postgresql_where=sa.text("status IN ('reserved', 'code_created', 'deducting', 'deducted', 'compensating')"))
        batch_op.drop_index('ix_conversions_status')
        batch_op.drop_index('ix_conversions_customer')

    op.drop_table('conversions')
    with op.batch_alter_table('webhook_deliveries', schema=None) as batch_op:
        batch_op.drop_index('uq_webhook_deliveries_topic_event')
        batch_op.drop_index('ix_webhook_deliveries_shop_domain')

    op.drop_table('webhook_deliveries')
    op.drop_table('smaregi_rate_slots')
    op.drop_table('smaregi_contracts')
    op.drop_table('shops')
    op.drop_table('scheduled_jobs')
    with op.batch_alter_table('member_directory', schema=None) as batch_op:
        batch_op.drop_index('ix_member_directory_email')
        batch_op.drop_index('ix_member_directory_code')

    op.drop_table('member_directory')
