"""Connecting Smaregi by proof (sign-in states, the record of proofs) and the shop's profile read
from Shopify (currency and time zone).

A contract id typed into the settings before this revision proved nothing, so it is cleared: those
shops fall back to SMAREGI_CONTRACT_ID (if set) until the merchant signs in to Smaregi once.

Revision ID: 0006
Revises: 0004
Create Date: 2026-12-01
"""
from alembic import op
import sqlalchemy as sa
import app.models  # noqa: F401 (autogenerate renders our column types through it)

revision = '0006'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('smaregi_sign_in_states',
    sa.Column('state_hash', sa.String(length=64), nullable=False),
    sa.Column('shop_id', sa.Integer(), nullable=False),
    sa.Column('code_verifier_enc', sa.Text(), nullable=False),
    sa.Column('created_at', app.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', app.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('used_at', app.models.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['shop_id'], ['shops.id'], name=op.f('fk_smaregi_sign_in_states_shop_id_shops'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('state_hash', name=op.f('pk_smaregi_sign_in_states'))
    )
    with op.batch_alter_table('smaregi_sign_in_states', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_smaregi_sign_in_states_shop_id'), ['shop_id'], unique=False)

    op.create_table('smaregi_connections',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('shop_id', sa.Integer(), nullable=False),
    sa.Column('contract_id', sa.String(length=64), nullable=False),
    sa.Column('proven_at', app.models.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['shop_id'], ['shops.id'], name=op.f('fk_smaregi_connections_shop_id_shops'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_smaregi_connections'))
    )
    with op.batch_alter_table('smaregi_connections', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_smaregi_connections_shop_id'), ['shop_id'], unique=False)

    with op.batch_alter_table('shops', schema=None) as batch_op:
        batch_op.add_column(sa.Column('profile_read_at', app.models.UTCDateTime(timezone=True), nullable=True))

    op.execute("UPDATE shops SET smaregi_contract_id = NULL")


def downgrade() -> None:
    with op.batch_alter_table('shops', schema=None) as batch_op:
        batch_op.drop_column('profile_read_at')

    with op.batch_alter_table('smaregi_connections', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_smaregi_connections_shop_id'))
    op.drop_table('smaregi_connections')

    with op.batch_alter_table('smaregi_sign_in_states', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_smaregi_sign_in_states_shop_id'))
    op.drop_table('smaregi_sign_in_states')
