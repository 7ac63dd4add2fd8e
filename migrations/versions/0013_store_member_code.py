"""A linked store member's own code before linking replaced it (its earlier history carries it).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02
"""
from alembic import op
import sqlalchemy as sa

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('member_links') as batch:
        batch.add_column(sa.Column('store_member_code', sa.String(length=20), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('member_links') as batch:
        batch.drop_column('store_member_code')
