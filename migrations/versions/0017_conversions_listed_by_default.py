"""A conversion the coupon list has never shown counts as recorded there: only one that was listed
(and then failed, after its claim was released) has its list rewritten on the way to `failed`.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-02
"""
from alembic import op

revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("UPDATE conversions SET metafield_recorded = true "
               "WHERE status NOT IN ('completed', 'used', 'returned', 'expired') AND metafield_recorded = false")


def downgrade() -> None:
    pass  # the flag only spares list writes; false again would cost one write per row, nothing else
