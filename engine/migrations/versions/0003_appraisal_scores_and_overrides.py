"""appraisal scores and overrides

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22

Appraisal scores given by people, and overrides of screening verdicts.

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision: str = '0003'
down_revision: Union[str, Sequence[str], None] = '0002'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table('appraisal_score',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('application_id', sa.Integer(), nullable=False),
    sa.Column('criterion', sa.String(length=64), nullable=False),
    sa.Column('score', sa.Integer(), nullable=False),
    sa.Column('comment', sa.String(length=4000), nullable=True),
    sa.Column('scored_by', sa.String(length=200), nullable=False),
    sa.Column('scored_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['application_id'], ['application.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('application_id', 'criterion', name='uq_appraisal_score')
    )
    with op.batch_alter_table('appraisal_score', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_appraisal_score_application_id'), ['application_id'], unique=False)

    with op.batch_alter_table('screening_record', schema=None) as batch_op:
        batch_op.add_column(sa.Column('override', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True))



def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table('screening_record', schema=None) as batch_op:
        batch_op.drop_column('override')

    with op.batch_alter_table('appraisal_score', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_appraisal_score_application_id'))

    op.drop_table('appraisal_score')
