"""grants

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-06

After the decision: a grant for every approval, its instalments and its payments.

"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision: str = '0016'
down_revision: Union[str, Sequence[str], None] = '0015'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    json = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')
    op.create_table(
        'grants',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('reference', sa.String(length=60), nullable=False),
        sa.Column('application_id', sa.Integer(), nullable=False),
        sa.Column('round_id', sa.String(length=40), nullable=False),
        sa.Column('state', sa.String(length=20), nullable=False),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.Column('award', sa.Numeric(14, 2), nullable=False),
        sa.Column('currency', sa.String(length=3), nullable=False),
        sa.Column('party', sa.String(length=3), nullable=False),
        sa.Column('executing_agency', sa.String(length=300), nullable=False),
        sa.Column('conditions', json, nullable=False),
        sa.Column('planned_start', sa.Date(), nullable=False),
        sa.Column('planned_end', sa.Date(), nullable=False),
        sa.Column('budget', json, nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['application_id'], ['application.id']),
        sa.ForeignKeyConstraint(['round_id'], ['round.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('application_id'),
        sa.UniqueConstraint('reference'),
    )
    op.create_index('ix_grants_round_id', 'grants', ['round_id'])
    op.create_index('ix_grants_state', 'grants', ['state'])
    op.create_table(
        'grant_instalment',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('grant_id', sa.Integer(), nullable=False),
        sa.Column('number', sa.Integer(), nullable=False),
        sa.Column('share', sa.Numeric(6, 2), nullable=False),
        sa.Column('amount', sa.Numeric(14, 2), nullable=False),
        sa.Column('after', sa.String(length=30), nullable=False),
        sa.ForeignKeyConstraint(['grant_id'], ['grants.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('grant_id', 'number', name='uq_grant_instalment'),
    )
    op.create_index('ix_grant_instalment_grant_id', 'grant_instalment', ['grant_id'])
    op.create_table(
        'grant_signature',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('grant_id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=20), nullable=False),
        sa.Column('signer', sa.String(length=200), nullable=False),
        sa.Column('signed_on', sa.Date(), nullable=False),
        sa.Column('sha256', sa.String(length=64), nullable=False),
        sa.Column('file_name', sa.String(length=200), nullable=False),
        sa.Column('recorded_by', sa.String(length=200), nullable=False),
        sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['grant_id'], ['grants.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('grant_id', 'kind', name='uq_grant_signature'),
    )
    op.create_index('ix_grant_signature_grant_id', 'grant_signature', ['grant_id'])
    op.create_table(
        'grant_payment',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('grant_id', sa.Integer(), nullable=False),
        sa.Column('amount', sa.Numeric(14, 2), nullable=False),
        sa.Column('paid_on', sa.Date(), nullable=False),
        sa.Column('finance_ref', sa.String(length=100), nullable=False),
        sa.Column('recorded_by', sa.String(length=200), nullable=False),
        sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['grant_id'], ['grants.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('finance_ref'),
    )
    op.create_index('ix_grant_payment_grant_id', 'grant_payment', ['grant_id'])


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_index('ix_grant_payment_grant_id', table_name='grant_payment')
    op.drop_table('grant_payment')
    op.drop_index('ix_grant_signature_grant_id', table_name='grant_signature')
    op.drop_table('grant_signature')
    op.drop_index('ix_grant_instalment_grant_id', table_name='grant_instalment')
    op.drop_table('grant_instalment')
    op.drop_index('ix_grants_state', table_name='grants')
    op.drop_index('ix_grants_round_id', table_name='grants')
    op.drop_table('grants')
