"""application drafts

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06

The applicant's portal keeps an application being written as a draft, reached by a
link sent by e-mail (only the hash of its token is kept).

"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql


# revision identifiers, used by Alembic.
revision: str = '0013'
down_revision: Union[str, Sequence[str], None] = '0012'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        'application_draft',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('round_id', sa.String(length=40), nullable=False),
        sa.Column('nonce', sa.String(length=64), nullable=False),
        sa.Column('token_hash', sa.String(length=64), nullable=False),
        sa.Column('email', sa.String(length=320), nullable=False),
        sa.Column('language', sa.String(length=2), nullable=False),
        sa.Column('content', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('link_sent_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('submitted_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('application_id', sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(['application_id'], ['application.id'], ),
        sa.ForeignKeyConstraint(['round_id'], ['round.id'], ),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('nonce'),
        sa.UniqueConstraint('token_hash'),
    )
    op.create_index(op.f('ix_application_draft_round_id'), 'application_draft', ['round_id'], unique=False)
    op.create_index(op.f('ix_application_draft_email'), 'application_draft', ['email'], unique=False)


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_index(op.f('ix_application_draft_email'), table_name='application_draft')
    op.drop_index(op.f('ix_application_draft_round_id'), table_name='application_draft')
    op.drop_table('application_draft')
