"""Rate-limit slots count how many a shopper took: background work leaves the shoppers' share while they are about.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-02
"""
from alembic import op
import sqlalchemy as sa

revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('smaregi_rate_slots', sa.Column('shopper_used', sa.Integer(), nullable=False, server_default='0'))


def downgrade() -> None:
    with op.batch_alter_table('smaregi_rate_slots') as batch:
        batch.drop_column('shopper_used')
