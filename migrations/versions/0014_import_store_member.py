"""The store member an import links by verified e-mail in a bulk update, and the code it replaces.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02
"""
from alembic import op
import sqlalchemy as sa

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('import_customers') as batch:
        batch.add_column(sa.Column('store_member_id', sa.String(length=32), nullable=True))
        batch.add_column(sa.Column('store_code', sa.String(length=20), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('import_customers') as batch:
        batch.drop_column('store_code')
        batch.drop_column('store_member_id')
