"""audit trail: TRUNCATE refused, and a hash chain over its events

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06

On PostgreSQL a statement-level trigger refuses TRUNCATE of audit_event, beside the
row triggers that refuse UPDATE and DELETE (0001). Every event gets `prev_hash` (the
hash of the event before it, in id order) and `hash` (SHA-256 over its content and
`prev_hash`); the events already stored are chained here, in id order, page by page.

The hash is computed by a copy of `domain.audit_chain.event_hash` as it was when this
migration was written ("sip-audit/1"), so that the migration does not depend on the
application's code.

"""
import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from enum import Enum
from typing import Any, Sequence, Union

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql


# revision identifiers, used by Alembic.
revision: str = '0009'
down_revision: Union[str, Sequence[str], None] = '0008'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

APPEND_ONLY = "audit_event is append-only: events are never changed or deleted"
GENESIS = "0" * 64
PAGE = 2000

events = sa.table(
    "audit_event",
    sa.column("id", sa.Integer),
    sa.column("at", sa.DateTime(timezone=True)),
    sa.column("actor", sa.String),
    sa.column("role", sa.String),
    sa.column("action", sa.String),
    sa.column("subject_type", sa.String),
    sa.column("subject_id", sa.String),
    sa.column("from_status", sa.String),
    sa.column("to_status", sa.String),
    sa.column("reason", sa.String),
    sa.column("details", sa.JSON().with_variant(postgresql.JSONB(), "postgresql")),
    sa.column("prev_hash", sa.String),
    sa.column("hash", sa.String),
)


def _canonical(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    if isinstance(value, Enum):
        return value.value
    return value


def _event_hash(prev_hash: str, event: Mapping[str, Any]) -> str:
    at: datetime = event["at"]
    at = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    content = [
        "sip-audit/1",
        prev_hash,
        at.isoformat(timespec="microseconds"),
        event["actor"],
        event["role"],
        event["action"],
        event["subject_type"],
        event["subject_id"],
        event["from_status"],
        event["to_status"],
        event["reason"],
        _canonical(event["details"]),
    ]
    text = json.dumps(content, ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _sqlite_guards(create: bool) -> None:
    for verb in ("UPDATE", "DELETE"):
        if create:
            op.execute(
                f"CREATE TRIGGER audit_event_no_{verb.lower()} BEFORE {verb} ON audit_event "
                f"BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY}'); END"
            )
        else:
            op.execute(f"DROP TRIGGER IF EXISTS audit_event_no_{verb.lower()}")


def _fill_chain() -> None:
    """Chain the stored events in id order, a page at a time."""
    connection = op.get_bind()
    head, last = GENESIS, 0
    update = (
        events.update()
        .where(events.c.id == sa.bindparam("b_id"))
        .values(prev_hash=sa.bindparam("b_prev"), hash=sa.bindparam("b_hash"))
    )
    while True:
        page = connection.execute(
            sa.select(events).where(events.c.id > last).order_by(events.c.id).limit(PAGE)
        ).mappings().all()
        if not page:
            return
        changes = []
        for row in page:
            digest = _event_hash(head, row)
            changes.append({"b_id": row["id"], "b_prev": head, "b_hash": digest})
            head, last = digest, row["id"]
        connection.execute(update, changes)


def upgrade() -> None:
    """Upgrade schema."""
    postgres = op.get_bind().dialect.name == "postgresql"
    op.add_column('audit_event', sa.Column('prev_hash', sa.String(length=64), nullable=True))
    op.add_column('audit_event', sa.Column('hash', sa.String(length=64), nullable=True))
    if postgres:
        op.execute("ALTER TABLE audit_event DISABLE TRIGGER audit_event_append_only")
        _fill_chain()
        op.execute("ALTER TABLE audit_event ENABLE TRIGGER audit_event_append_only")
        op.alter_column('audit_event', 'prev_hash', nullable=False)
        op.alter_column('audit_event', 'hash', nullable=False)
        op.execute(
            "CREATE TRIGGER audit_event_no_truncate BEFORE TRUNCATE ON audit_event "
            "FOR EACH STATEMENT EXECUTE FUNCTION audit_event_append_only()"
        )
    else:
        _sqlite_guards(create=False)
        _fill_chain()
        with op.batch_alter_table('audit_event', schema=None, recreate="always") as batch_op:
            batch_op.alter_column('prev_hash', existing_type=sa.String(length=64), nullable=False)
            batch_op.alter_column('hash', existing_type=sa.String(length=64), nullable=False)
        _sqlite_guards(create=True)  # the table was made anew: its triggers with it


def downgrade() -> None:
    """Downgrade schema (the chain is dropped; TRUNCATE allowed again)."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_event_no_truncate ON audit_event")
        op.drop_column('audit_event', 'hash')
        op.drop_column('audit_event', 'prev_hash')
    else:
        _sqlite_guards(create=False)
        with op.batch_alter_table('audit_event', schema=None) as batch_op:
            batch_op.drop_column('hash')
            batch_op.drop_column('prev_hash')
        _sqlite_guards(create=True)
