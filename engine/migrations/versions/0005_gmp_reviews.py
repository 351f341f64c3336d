"""gmp reviews

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25

The GMP review stage: invitations and their dates, reviewers' link and session tokens
(hashes only), reviews (draft, then submitted), and the assignment's life (invited,
declined, conflicted, removed, submitted).

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision: str = '0005'
down_revision: Union[str, Sequence[str], None] = '0004'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table('review_stage',
    sa.Column('round_id', sa.String(length=40), nullable=False),
    sa.Column('due_on', sa.Date(), nullable=False),
    sa.Column('invited_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('closed_by', sa.String(length=200), nullable=True),
    sa.ForeignKeyConstraint(['round_id'], ['round.id'], ),
    sa.PrimaryKeyConstraint('round_id')
    )
    op.create_table('reviewer_token',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('reviewer_id', sa.Integer(), nullable=False),
    sa.Column('purpose', sa.String(length=10), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('nonce', sa.String(length=64), nullable=True),
    sa.Column('message_key', sa.String(length=300), nullable=True),
    sa.Column('issued_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['reviewer_id'], ['reviewer.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('message_key'),
    sa.UniqueConstraint('token_hash')
    )
    with op.batch_alter_table('reviewer_token', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_reviewer_token_reviewer_id'), ['reviewer_id'], unique=False)

    op.create_table('review',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('assignment_id', sa.Integer(), nullable=False),
    sa.Column('scores', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('recommendation', sa.String(length=30), nullable=True),
    sa.Column('comments_for_committee', sa.String(length=20000), nullable=True),
    sa.Column('comments_for_applicant', sa.String(length=20000), nullable=True),
    sa.Column('state', sa.String(length=20), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('submitted_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['assignment_id'], ['review_assignment.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('assignment_id')
    )
    with op.batch_alter_table('review_assignment', schema=None) as batch_op:
        batch_op.add_column(sa.Column('invited_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('changed_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('note', sa.String(length=2000), nullable=True))



def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table('review_assignment', schema=None) as batch_op:
        batch_op.drop_column('note')
        batch_op.drop_column('changed_at')
        batch_op.drop_column('invited_at')

    op.drop_table('review')
    with op.batch_alter_table('reviewer_token', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_reviewer_token_reviewer_id'))

    op.drop_table('reviewer_token')
    op.drop_table('review_stage')
