"""grant agreements

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-06

Each version of a grant's agreement sent to its recipient: its files, their SHA-256 and
the hash of the personal link's token.

"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = '0018'
down_revision: Union[str, Sequence[str], None] = '0017'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        'grant_agreement',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('grant_id', sa.Integer(), nullable=False),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.Column('language', sa.String(length=2), nullable=False),
        sa.Column('recipient', sa.String(length=320), nullable=False),
        sa.Column('html_path', sa.String(length=300), nullable=False),
        sa.Column('pdf_path', sa.String(length=300), nullable=True),
        sa.Column('sha256', sa.String(length=64), nullable=False),
        sa.Column('message_key', sa.String(length=200), nullable=False),
        sa.Column('token_hash', sa.String(length=64), nullable=False),
        sa.Column('made_by', sa.String(length=200), nullable=False),
        sa.Column('made_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['grant_id'], ['grants.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('grant_id', 'version', name='uq_grant_agreement'),
        sa.UniqueConstraint('message_key'),
        sa.UniqueConstraint('token_hash'),
    )
    op.create_index('ix_grant_agreement_grant_id', 'grant_agreement', ['grant_id'])


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_index('ix_grant_agreement_grant_id', table_name='grant_agreement')
    op.drop_table('grant_agreement')
