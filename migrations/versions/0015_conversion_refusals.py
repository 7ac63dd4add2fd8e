"""Conversion requests refused by the rules, kept under their idempotency key (a replay is refused again).

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-02
"""
from alembic import op
import sqlalchemy as sa

import app.models

revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'conversion_refusals',
        sa.Column('id', sa.Integer(), primary_key=True),
        sa.Column('shop_id', sa.Integer(), sa.ForeignKey('shops.id', ondelete='CASCADE'), nullable=False),
        sa.Column('shopify_customer_id', sa.BigInteger(), nullable=False),
        sa.Column('idempotency_key', sa.String(length=128), nullable=False),
        sa.Column('points', sa.BigInteger(), nullable=False),
        sa.Column('error_code', sa.String(length=64), nullable=False),
        sa.Column('error_message', sa.Text(), nullable=False),
        sa.Column('created_at', app.models.UTCDateTime(timezone=True), nullable=False),
        sa.UniqueConstraint('shop_id', 'idempotency_key'),
    )


def downgrade() -> None:
    op.drop_table('conversion_refusals')
