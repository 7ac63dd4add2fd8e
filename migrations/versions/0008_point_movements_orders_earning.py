"""The point-movement ledger, orders for online earning, coupon use/return, earning rules, and
64-bit point and amount columns.

Revision ID: 0008
Revises: 0004
Create Date: 2026-12-01
"""
from alembic import op
import sqlalchemy as sa
import app.models  # noqa: F401 (autogenerate renders our column types through it)
from sqlalchemy.dialects import postgresql

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('orders',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('shop_id', sa.Integer(), nullable=False),
    sa.Column('shopify_order_id', sa.BigInteger(), nullable=False),
    sa.Column('shopify_customer_id', sa.BigInteger(), nullable=True),
    sa.Column('name', sa.String(length=64), nullable=True),
    sa.Column('shopify_updated_at', app.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('facts', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('paid_seen_at', app.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('fulfilled_seen_at', app.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('base_when_paid', sa.String(length=32), nullable=True),
    sa.Column('next_attempt_at', app.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('leased_until', app.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', app.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', app.models.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['shop_id'], ['shops.id'], name=op.f('fk_orders_shop_id_shops'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_orders')),
    sa.UniqueConstraint('shop_id', 'shopify_order_id', name=op.f('uq_orders_shop_id_shopify_order_id'))
    )
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.create_index('ix_orders_customer', ['shop_id', 'shopify_customer_id'], unique=False)
        batch_op.create_index('ix_orders_due', ['next_attempt_at'], unique=False)

    op.create_table('point_movements',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('shop_id', sa.Integer(), nullable=False),
    sa.Column('shopify_customer_id', sa.BigInteger(), nullable=False),
    sa.Column('smaregi_customer_id', sa.String(length=32), nullable=True),
    sa.Column('kind', sa.String(length=24), nullable=False),
    sa.Column('reason', sa.String(length=32), nullable=False),
    sa.Column('points', sa.BigInteger(), nullable=False),
    sa.Column('sent_points', sa.BigInteger(), nullable=True),
    sa.Column('owed_change', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('smaregi_transaction_id', sa.String(length=32), nullable=True),
    sa.Column('balance_after', sa.BigInteger(), nullable=True),
    sa.Column('conversion_id', sa.String(length=36), nullable=True),
    sa.Column('order_id', sa.BigInteger(), nullable=True),
    sa.Column('sent_at', app.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('applied_at', app.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', app.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('leased_until', app.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('created_at', app.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', app.models.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['shop_id'], ['shops.id'], name=op.f('fk_point_movements_shop_id_shops'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_point_movements'))
    )
    with op.batch_alter_table('point_movements', schema=None) as batch_op:
        batch_op.create_index('ix_point_movements_customer', ['shop_id', 'shopify_customer_id', 'created_at'], unique=False)
        batch_op.create_index('ix_point_movements_due', ['state', 'next_attempt_at'], unique=False)
        batch_op.create_index('ix_point_movements_order', ['shop_id', 'order_id'], unique=False)
        batch_op.create_index('ix_point_movements_conversion', ['conversion_id'], unique=False)

    with op.batch_alter_table('conversions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('order_id', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('order_name', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('points_returned', sa.BigInteger(), server_default='0', nullable=False))
        batch_op.alter_column('points',
               existing_type=sa.INTEGER(),
               type_=sa.BigInteger(),
               existing_nullable=False)
        batch_op.alter_column('amount',
               existing_type=sa.INTEGER(),
               type_=sa.BigInteger(),
               existing_nullable=False)
        batch_op.alter_column('balance_after',
               existing_type=sa.INTEGER(),
               type_=sa.BigInteger(),
               existing_nullable=True)

    with op.batch_alter_table('shop_settings', schema=None) as batch_op:
        batch_op.add_column(sa.Column('earn_yen_per_point', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('earn_on', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('earn_hold_days', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('coupon_return_unused', sa.Boolean(), nullable=True))
        batch_op.add_column(sa.Column('point_expiry_months', sa.Integer(), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('shop_settings', schema=None) as batch_op:
        batch_op.drop_column('point_expiry_months')
        batch_op.drop_column('coupon_return_unused')
        batch_op.drop_column('earn_hold_days')
        batch_op.drop_column('earn_on')
        batch_op.drop_column('earn_yen_per_point')

    with op.batch_alter_table('conversions', schema=None) as batch_op:
        batch_op.alter_column('balance_after',
               existing_type=sa.BigInteger(),
               type_=sa.INTEGER(),
               existing_nullable=True)
        batch_op.alter_column('amount',
               existing_type=sa.BigInteger(),
               type_=sa.INTEGER(),
               existing_nullable=False)
        batch_op.alter_column('points',
               existing_type=sa.BigInteger(),
               type_=sa.INTEGER(),
               existing_nullable=False)
        batch_op.drop_column('points_returned')
        batch_op.drop_column('order_name')
        batch_op.drop_column('order_id')

    with op.batch_alter_table('point_movements', schema=None) as batch_op:
        batch_op.drop_index('ix_point_movements_conversion')
        batch_op.drop_index('ix_point_movements_order')
        batch_op.drop_index('ix_point_movements_due')
        batch_op.drop_index('ix_point_movements_customer')

    op.drop_table('point_movements')
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_index('ix_orders_due')
        batch_op.drop_index('ix_orders_customer')

    op.drop_table('orders')
