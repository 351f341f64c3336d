"""staff sessions and second factor

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06

The console's sessions (kept as hashes of their tokens) and an account's optional
second factor (TOTP).

"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = '0015'
down_revision: Union[str, Sequence[str], None] = '0014'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table('staff_account') as batch:
        batch.add_column(sa.Column('totp_secret', sa.String(length=300), nullable=True))
        batch.add_column(sa.Column('totp_last_step', sa.Integer(), nullable=True))
    op.create_table(
        'staff_session',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('staff_id', sa.Integer(), nullable=False),
        sa.Column('token_hash', sa.String(length=64), nullable=False),
        sa.Column('issued_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('last_seen_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('verified', sa.Boolean(), nullable=False),
        sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['staff_id'], ['staff_account.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('token_hash'),
    )
    op.create_index('ix_staff_session_staff_id', 'staff_session', ['staff_id'])


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_index('ix_staff_session_staff_id', table_name='staff_session')
    op.drop_table('staff_session')
    with op.batch_alter_table('staff_account') as batch:
        batch.drop_column('totp_last_step')
        batch.drop_column('totp_secret')
