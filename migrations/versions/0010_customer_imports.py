"""Imports of existing Shopify customers: the import, its Smaregi bulk requests, its customers.

Revision ID: 0010
Revises: 0004
Create Date: 2026-12-01
"""
from alembic import op
import sqlalchemy as sa
import app.models  # noqa: F401 (autogenerate renders our column types through it)

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

ACTIVE = "state IN ('queued', 'running')"


def upgrade() -> None:
    op.create_table('customer_imports',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('shop_id', sa.Integer(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('phase', sa.String(length=16), nullable=False),
    sa.Column('bulk_operation_id', sa.String(length=128), nullable=True),
    sa.Column('result_url', sa.Text(), nullable=True),
    sa.Column('lines_read', sa.Integer(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('leased_until', app.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('lease_owner', sa.String(length=64), nullable=True),
    sa.Column('matching_started_at', app.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', app.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('finished_at', app.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('updated_at', app.models.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['shop_id'], ['shops.id'], name=op.f('fk_customer_imports_shop_id_shops'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_customer_imports'))
    )
    with op.batch_alter_table('customer_imports', schema=None) as batch_op:
        batch_op.create_index('ix_customer_imports_shop', ['shop_id', 'id'], unique=False)
        batch_op.create_index('uq_customer_imports_one_active', ['shop_id'], unique=True,
                              sqlite_where=sa.text(ACTIVE), postgresql_where=sa.text(ACTIVE))

    op.create_table('import_batches',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('import_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('request_id', sa.String(length=64), nullable=True),
    sa.Column('sent_at', app.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('callback_at', app.models.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['import_id'], ['customer_imports.id'], name=op.f('fk_import_batches_import_id_customer_imports'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_import_batches')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_import_batches_token_hash'))
    )
    with op.batch_alter_table('import_batches', schema=None) as batch_op:
        batch_op.create_index('ix_import_batches_import_state', ['import_id', 'state'], unique=False)

    op.create_table('import_customers',
    sa.Column('import_id', sa.Integer(), nullable=False),
    sa.Column('shopify_customer_id', sa.BigInteger(), nullable=False),
    sa.Column('line', sa.Integer(), nullable=False),
    sa.Column('link_id', sa.Integer(), nullable=True),
    sa.Column('created_link', sa.Boolean(), nullable=False),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('batch_id', sa.Integer(), nullable=True),
    sa.Column('desired_hash', sa.String(length=64), nullable=True),
    sa.Column('sent_hash', sa.String(length=64), nullable=True),
    sa.ForeignKeyConstraint(['import_id'], ['customer_imports.id'], name=op.f('fk_import_customers_import_id_customer_imports'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('import_id', 'shopify_customer_id', name=op.f('pk_import_customers'))
    )
    with op.batch_alter_table('import_customers', schema=None) as batch_op:
        batch_op.create_index('ix_import_customers_batch', ['batch_id'], unique=False)
        batch_op.create_index('ix_import_customers_outcome', ['import_id', 'outcome', 'line'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('import_customers', schema=None) as batch_op:
        batch_op.drop_index('ix_import_customers_outcome')
        batch_op.drop_index('ix_import_customers_batch')
    op.drop_table('import_customers')
    with op.batch_alter_table('import_batches', schema=None) as batch_op:
        batch_op.drop_index('ix_import_batches_import_state')
    op.drop_table('import_batches')
    with op.batch_alter_table('customer_imports', schema=None) as batch_op:
        batch_op.drop_index('uq_customer_imports_one_active')
        batch_op.drop_index('ix_customer_imports_shop')
    op.drop_table('customer_imports')
