"""One Smaregi transaction is claimed by at most one point movement.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02
"""
from alembic import op
import sqlalchemy as sa

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None

CLAIMED = "smaregi_transaction_id IS NOT NULL"


def upgrade() -> None:
    # A transaction claimed twice before this index: all but one claim become a person's to check.
    op.execute(sa.text(
        "UPDATE point_movements SET state = 'needs_review', smaregi_transaction_id = NULL, "
        "error = 'Its Smaregi transaction was also claimed by another movement.' "
        f"WHERE {CLAIMED} AND id NOT IN (SELECT MIN(id) FROM point_movements WHERE {CLAIMED} "
        "GROUP BY shop_id, smaregi_transaction_id)"))
    with op.batch_alter_table('point_movements', schema=None) as batch_op:
        batch_op.create_index('uq_point_movements_transaction', ['shop_id', 'smaregi_transaction_id'], unique=True,
                              sqlite_where=sa.text(CLAIMED), postgresql_where=sa.text(CLAIMED))


def downgrade() -> None:
    with op.batch_alter_table('point_movements', schema=None) as batch_op:
        batch_op.drop_index('uq_point_movements_transaction', sqlite_where=sa.text(CLAIMED),
                            postgresql_where=sa.text(CLAIMED))
