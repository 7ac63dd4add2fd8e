"""Smaregi webhooks in (events queue), the member's state at the register on each link, the ledger audit.

Revision ID: 0009
Revises: 0004
Create Date: 2026-12-01
"""
from alembic import op
import sqlalchemy as sa
import app.models  # noqa: F401 (autogenerate renders our column types through it)
from sqlalchemy.dialects import postgresql

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')


def upgrade() -> None:
    op.create_table('smaregi_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('event_id', sa.String(length=128), nullable=False),
    sa.Column('contract_id', sa.String(length=64), nullable=False),
    sa.Column('event', sa.String(length=32), nullable=False),
    sa.Column('action', sa.String(length=32), nullable=False),
    sa.Column('ids', JSON, nullable=False),
    sa.Column('received_at', app.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', app.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('leased_until', app.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('processed_at', app.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_smaregi_events')),
    sa.UniqueConstraint('event_id', name=op.f('uq_smaregi_events_event_id'))
    )
    with op.batch_alter_table('smaregi_events', schema=None) as batch_op:
        batch_op.create_index('ix_smaregi_events_due', ['processed_at', 'next_attempt_at'], unique=False)

    op.create_table('audit_runs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('shop_id', sa.Integer(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('requested_at', app.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('started_at', app.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('finished_at', app.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('movements_checked', sa.Integer(), nullable=False),
    sa.Column('members_checked', sa.Integer(), nullable=False),
    sa.Column('differences', sa.Integer(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['shop_id'], ['shops.id'], name=op.f('fk_audit_runs_shop_id_shops'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_runs'))
    )
    with op.batch_alter_table('audit_runs', schema=None) as batch_op:
        batch_op.create_index('ix_audit_runs_shop', ['shop_id', 'requested_at'], unique=False)

    op.create_table('audit_findings',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('shop_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('subject', sa.String(length=64), nullable=False),
    sa.Column('shopify_customer_id', sa.BigInteger(), nullable=True),
    sa.Column('details', JSON, nullable=False),
    sa.Column('first_seen_at', app.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_seen_at', app.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('resolved_at', app.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('resolution', sa.String(length=32), nullable=True),
    sa.ForeignKeyConstraint(['shop_id'], ['shops.id'], name=op.f('fk_audit_findings_shop_id_shops'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_findings')),
    sa.UniqueConstraint('shop_id', 'kind', 'subject', name=op.f('uq_audit_findings_shop_id_kind_subject'))
    )

    with op.batch_alter_table('member_links', schema=None) as batch_op:
        batch_op.add_column(sa.Column('member_status', sa.String(length=16), server_default='active', nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('member_links', schema=None) as batch_op:
        batch_op.drop_column('member_status')

    op.drop_table('audit_findings')
    with op.batch_alter_table('audit_runs', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_runs_shop')
    op.drop_table('audit_runs')
    with op.batch_alter_table('smaregi_events', schema=None) as batch_op:
        batch_op.drop_index('ix_smaregi_events_due')
    op.drop_table('smaregi_events')
