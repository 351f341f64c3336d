"""grant report reviews

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-06

A Global Mercury Partnership expert asked to review a grant's technical report, and
their opinion.

"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = '0019'
down_revision: Union[str, Sequence[str], None] = '0018'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        'grant_report_review',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('report_id', sa.Integer(), nullable=False),
        sa.Column('reviewer_id', sa.Integer(), nullable=False),
        sa.Column('revision', sa.Integer(), nullable=False),
        sa.Column('state', sa.String(length=20), nullable=False),
        sa.Column('due_on', sa.Date(), nullable=False),
        sa.Column('invited_by', sa.String(length=200), nullable=False),
        sa.Column('invited_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('recommendation', sa.String(length=20), nullable=True),
        sa.Column('opinion', sa.String(length=5000), nullable=True),
        sa.Column('submitted_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['report_id'], ['grant_report.id']),
        sa.ForeignKeyConstraint(['reviewer_id'], ['reviewer.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('report_id', 'reviewer_id', 'revision', name='uq_grant_report_review'),
    )
    op.create_index('ix_grant_report_review_report_id', 'grant_report_review', ['report_id'])
    op.create_index('ix_grant_report_review_reviewer_id', 'grant_report_review', ['reviewer_id'])


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_index('ix_grant_report_review_reviewer_id', table_name='grant_report_review')
    op.drop_index('ix_grant_report_review_report_id', table_name='grant_report_review')
    op.drop_table('grant_report_review')
