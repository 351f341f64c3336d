"""grant reports, amendments and close-out

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-06

A grant's reports on the schedule of its agreement, its amendments, the settlement of
its unspent balance, and the dates its daily run keeps.

A grant already active (made under 0016) gets its agreement's dates from the day it was
activated, and its instalments after the signature are marked released that day; the
next `grants-day` run lays out its reports.

"""
from datetime import date, datetime
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
    # Plain ALTER TABLE (SQLite has added and dropped columns since 3.35): a batch would copy
    # the tables, which the foreign keys of the grants' other tables forbid once they hold rows.
    op.add_column('grants', sa.Column('starts_on', sa.Date(), nullable=True))
    op.add_column('grants', sa.Column('ends_on', sa.Date(), nullable=True))
    op.add_column('grants', sa.Column('contact', json, nullable=True))
    op.add_column('grants', sa.Column('budget_now', json, nullable=True))
    op.add_column('grants', sa.Column('closing_since', sa.Date(), nullable=True))
    op.add_column('grants', sa.Column('return_flagged_on', sa.Date(), nullable=True))
    op.add_column('grants', sa.Column('lessons', sa.String(length=20000), nullable=True))
    op.add_column('grant_instalment', sa.Column('released_on', sa.Date(), nullable=True))
    op.add_column('grant_instalment', sa.Column('flagged_on', sa.Date(), nullable=True))
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
    _in_force_already()


def _add_months(day: date, months: int) -> date:
    month = day.month - 1 + months
    year, month = day.year + month // 12, month % 12 + 1
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    last = [31, 29 if leap else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1]
    return date(year, month, min(day.day, last))


def _in_force_already() -> None:
    """The grants activated under 0016: their agreement's dates, and their first instalments released."""
    bind = op.get_bind()
    grants = sa.table(
        'grants', sa.column('id', sa.Integer), sa.column('reference', sa.String), sa.column('state', sa.String),
        sa.column('planned_start', sa.Date), sa.column('planned_end', sa.Date), sa.column('starts_on', sa.Date),
        sa.column('ends_on', sa.Date),
    )
    events = sa.table(
        'audit_event', sa.column('subject_type', sa.String), sa.column('subject_id', sa.String),
        sa.column('action', sa.String), sa.column('at', sa.DateTime(timezone=True)),
    )
    instalments = sa.table(
        'grant_instalment', sa.column('grant_id', sa.Integer), sa.column('after', sa.String),
        sa.column('released_on', sa.Date),
    )
    rows = bind.execute(
        sa.select(grants.c.id, grants.c.reference, grants.c.planned_start, grants.c.planned_end)
        .where(grants.c.state.in_(['active', 'suspended', 'closing']), grants.c.starts_on.is_(None))
    ).all()
    for grant_id, reference, planned_start, planned_end in rows:
        activated = bind.execute(
            sa.select(sa.func.max(events.c.at)).where(
                events.c.subject_type == 'grant', events.c.subject_id == reference, events.c.action == 'grant.activate'
            )
        ).scalar()
        if isinstance(activated, str):  # SQLite hands an aggregate back as text
            activated = datetime.fromisoformat(activated)
        start = activated.date() if activated else planned_start
        months = (planned_end.year - planned_start.year) * 12 + planned_end.month - planned_start.month
        bind.execute(
            grants.update().where(grants.c.id == grant_id).values(starts_on=start, ends_on=_add_months(start, months))
        )
        bind.execute(
            instalments.update()
            .where(instalments.c.grant_id == grant_id, instalments.c.after == 'signature')
            .values(released_on=start)
        )


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
    op.drop_column('grant_instalment', 'flagged_on')
    op.drop_column('grant_instalment', 'released_on')
    for column in ('lessons', 'return_flagged_on', 'closing_since', 'budget_now', 'contact', 'ends_on', 'starts_on'):
        op.drop_column('grants', column)
