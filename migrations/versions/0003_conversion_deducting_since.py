"""When a conversion asked Smaregi to deduct: the window in which a lost answer is looked for.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""
from alembic import op
import sqlalchemy as sa
import app.models  # noqa: F401 (autogenerate renders our column types through it)


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('conversions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('deducting_since', app.models.UTCDateTime(timezone=True), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('conversions', schema=None) as batch_op:
        batch_op.drop_column('deducting_since')

