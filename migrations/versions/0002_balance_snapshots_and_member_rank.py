"""Balance snapshots (shared short cache and stale fallback for the storefront) and the member rank
in the directory (the balance shows it without another Smaregi call).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""
from alembic import op
import sqlalchemy as sa
import app.models
from sqlalchemy.dialects import postgresql

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

def upgrade() -> None:
    op.create_table('balance_snapshots',
    sa.Column('shop_id', sa.Integer(), nullable=False),
    sa.Column('shopify_customer_id', sa.BigInteger(), nullable=False),
    sa.Column('reading', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('fetched_at', app.models.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['shop_id'], ['shops.id'], name=op.f('fk_balance_snapshots_shop_id_shops'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('shop_id', 'shopify_customer_id', name=op.f('pk_balance_snapshots'))
    )
    with op.batch_alter_table('member_directory', schema=None) as batch_op:
        batch_op.add_column(sa.Column('rank', sa.String(length=20), nullable=True))

def downgrade() -> None:
    with op.batch_alter_table('member_directory', schema=None) as batch_op:
        batch_op.drop_column('rank')

    op.drop_table('balance_snapshots')
