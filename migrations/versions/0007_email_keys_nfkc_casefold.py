"""Member-directory e-mail keys re-normalised with NFKC + case folding (full-width and other-case
addresses match); member links may be `held` (stored as a string like every link state); a
periodic job records which worker holds it.

Revision ID: 0007
Revises: 0004
Create Date: 2026-12-01
"""
from alembic import op
import sqlalchemy as sa

from app.sync.mapping import normalize_email

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

BATCH = 1000


def upgrade() -> None:
    with op.batch_alter_table('scheduled_jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('lease_owner', sa.String(length=64), nullable=True))

    # The old key was NFC + lower(); applying the one normaliser to it gives the key the full
    # address would get (NFKC and case folding absorb both). Rows whose key would not change are
    # left alone, so a large directory costs one read and few writes.
    conn = op.get_bind()
    directory = sa.table('member_directory', sa.column('id', sa.Integer), sa.column('email_normalized', sa.String))
    last_id = 0
    while True:
        rows = conn.execute(sa.select(directory.c.id, directory.c.email_normalized)
                            .where(directory.c.id > last_id, directory.c.email_normalized.is_not(None))
                            .order_by(directory.c.id).limit(BATCH)).all()
        if not rows:
            break
        for row_id, key in rows:
            new_key = normalize_email(key)
            if new_key != key:
                conn.execute(directory.update().where(directory.c.id == row_id).values(email_normalized=new_key))
        last_id = rows[-1][0]


def downgrade() -> None:
    # Nothing to undo: the older code lower-cases what it looks up, and ASCII keys are unchanged.
    # Held links become pending so the older worker (which knows no `held`) decides them again.
    op.execute("UPDATE member_links SET state = 'pending', next_attempt_at = CURRENT_TIMESTAMP WHERE state = 'held'")
    with op.batch_alter_table('scheduled_jobs', schema=None) as batch_op:
        batch_op.drop_column('lease_owner')
