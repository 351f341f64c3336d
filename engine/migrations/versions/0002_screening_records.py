"""screening records

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22

Screening records: one per application, with each check, its evidence and reason.

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision: str = '0002'
down_revision: Union[str, Sequence[str], None] = '0001'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table('screening_record',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('application_id', sa.Integer(), nullable=False),
    sa.Column('round_id', sa.String(length=40), nullable=False),
    sa.Column('fingerprint', sa.String(length=64), nullable=False),
    sa.Column('verdict', sa.String(length=20), nullable=False),
    sa.Column('checks', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('appraisal', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('weighted_score', sa.Numeric(precision=5, scale=1), nullable=True),
    sa.Column('screened_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['application_id'], ['application.id'], ),
    sa.ForeignKeyConstraint(['round_id'], ['round.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('application_id')
    )
    with op.batch_alter_table('screening_record', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_screening_record_round_id'), ['round_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_screening_record_verdict'), ['verdict'], unique=False)

    _name_the_rules_of_check_criteria()


#: The rule each check criterion of the shipped default set uses (check criteria
#: name their rule from this revision on).
DEFAULT_RULES = {"national_consultation": "consultation_confirmed"}


def _name_the_rules_of_check_criteria() -> None:
    """Stored round definitions: give the default set's check criteria their rule."""
    import json

    bind = op.get_bind()
    rounds = sa.table("round", sa.column("id", sa.String), sa.column("definition", sa.JSON))
    for round_id, definition in bind.execute(sa.select(rounds.c.id, rounds.c.definition)).all():
        if isinstance(definition, str):
            definition = json.loads(definition)
        changed = False
        for criterion in definition.get("criteria", []):
            if criterion.get("kind") == "check" and not criterion.get("rule") and criterion["id"] in DEFAULT_RULES:
                criterion["rule"] = DEFAULT_RULES[criterion["id"]]
                changed = True
        if changed:
            bind.execute(rounds.update().where(rounds.c.id == round_id).values(definition=definition))



def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table('screening_record', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_screening_record_verdict'))
        batch_op.drop_index(batch_op.f('ix_screening_record_round_id'))

    op.drop_table('screening_record')
