"""grant reports, amendments and close-out

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-06

A grant's reports on the schedule of its agreement, its amendments, the settlement of
its unspent balance, and the dates its daily run keeps.

"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision: str = '0017'
down_revision: Union[str, Sequence[str], None] = '0016'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    json = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')
    with op.batch_alter_table('grants') as batch:
        batch.add_column(sa.Column('starts_on', sa.Date(), nullable=True))
        batch.add_column(sa.Column('ends_on', sa.Date(), nullable=True))
        batch.add_column(sa.Column('contact', json, nullable=True))
        batch.add_column(sa.Column('budget_now', json, nullable=True))
        batch.add_column(sa.Column('closing_since', sa.Date(), nullable=True))
        batch.add_column(sa.Column('return_flagged_on', sa.Date(), nullable=True))
        batch.add_column(sa.Column('lessons', sa.String(length=20000), nullable=True))
    with op.batch_alter_table('grant_instalment') as batch:
        batch.add_column(sa.Column('released_on', sa.Date(), nullable=True))
        batch.add_column(sa.Column('flagged_on', sa.Date(), nullable=True))
    op.create_table(
        'grant_report',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('grant_id', sa.Integer(), nullable=False),
        sa.Column('number', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=20), nullable=False),
        sa.Column('period_end', sa.Date(), nullable=False),
        sa.Column('due_on', sa.Date(), nullable=False),
        sa.Column('state', sa.String(length=20), nullable=False),
        sa.Column('content', json, nullable=True),
        sa.Column('flags', json, nullable=False),
        sa.Column('submitted_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('submitted_by', sa.String(length=200), nullable=True),
        sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('decided_by', sa.String(length=200), nullable=True),
        sa.Column('reason', sa.String(length=5000), nullable=True),
        sa.Column('revisions', sa.Integer(), nullable=False),
        sa.Column('escalated_for', sa.Date(), nullable=True),
        sa.ForeignKeyConstraint(['grant_id'], ['grants.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('grant_id', 'number', name='uq_grant_report'),
    )
    op.create_index('ix_grant_report_grant_id', 'grant_report', ['grant_id'])
    op.create_index('ix_grant_report_due_on', 'grant_report', ['due_on'])
    op.create_index('ix_grant_report_state', 'grant_report', ['state'])
    op.create_table(
        'grant_amendment',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('grant_id', sa.Integer(), nullable=False),
        sa.Column('number', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=20), nullable=False),
        sa.Column('state', sa.String(length=20), nullable=False),
        sa.Column('before', json, nullable=False),
        sa.Column('after', json, nullable=False),
        sa.Column('request_reason', sa.String(length=5000), nullable=False),
        sa.Column('requested_by', sa.String(length=200), nullable=False),
        sa.Column('requested_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('decided_by', sa.String(length=200), nullable=True),
        sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('decision_reason', sa.String(length=5000), nullable=True),
        sa.ForeignKeyConstraint(['grant_id'], ['grants.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('grant_id', 'number', name='uq_grant_amendment'),
    )
    op.create_index('ix_grant_amendment_grant_id', 'grant_amendment', ['grant_id'])
    op.create_table(
        'grant_settlement',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('grant_id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=20), nullable=False),
        sa.Column('amount', sa.Numeric(14, 2), nullable=False),
        sa.Column('settled_on', sa.Date(), nullable=False),
        sa.Column('finance_ref', sa.String(length=100), nullable=True),
        sa.Column('reason', sa.String(length=2000), nullable=True),
        sa.Column('recorded_by', sa.String(length=200), nullable=False),
        sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['grant_id'], ['grants.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('finance_ref'),
    )
    op.create_index('ix_grant_settlement_grant_id', 'grant_settlement', ['grant_id'])


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_index('ix_grant_settlement_grant_id', table_name='grant_settlement')
    op.drop_table('grant_settlement')
    op.drop_index('ix_grant_amendment_grant_id', table_name='grant_amendment')
    op.drop_table('grant_amendment')
    op.drop_index('ix_grant_report_state', table_name='grant_report')
    op.drop_index('ix_grant_report_due_on', table_name='grant_report')
    op.drop_index('ix_grant_report_grant_id', table_name='grant_report')
    op.drop_table('grant_report')
    with op.batch_alter_table('grant_instalment') as batch:
        batch.drop_column('flagged_on')
        batch.drop_column('released_on')
    with op.batch_alter_table('grants') as batch:
        for column in ('lessons', 'return_flagged_on', 'closing_since', 'budget_now', 'contact', 'ends_on', 'starts_on'):
            batch.drop_column(column)
