"""revoked credentials

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06

A reviewer's link or session, and a committee member's bundle link, can be ended
before their time (a reviewer signs out or is deactivated, a member leaves the
committee, the secretariat withdraws a person's access): `revoked_at` says when,
apart from a link's use and a credential's natural expiry.

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '0011'
down_revision: Union[str, Sequence[str], None] = '0010'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table('reviewer_token', schema=None) as batch_op:
        batch_op.add_column(sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table('committee_bundle', schema=None) as batch_op:
        batch_op.add_column(sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True))


tokens = sa.table(
    'reviewer_token',
    sa.column('id', sa.Integer),
    sa.column('expires_at', sa.DateTime(timezone=True)),
    sa.column('revoked_at', sa.DateTime(timezone=True)),
)
bundles = sa.table(
    'committee_bundle',
    sa.column('id', sa.Integer),
    sa.column('token_hash', sa.String),
    sa.column('revoked_at', sa.DateTime(timezone=True)),
)


def downgrade() -> None:
    """Downgrade schema. A revoked credential must not work again without the column: a
    revoked reviewer token expires when it was revoked, and a revoked bundle link's hash
    is replaced by one that no token has."""
    connection = op.get_bind()
    connection.execute(
        tokens.update()
        .where(tokens.c.revoked_at.is_not(None), tokens.c.revoked_at < tokens.c.expires_at)
        .values(expires_at=tokens.c.revoked_at)
    )
    for (bundle_id,) in connection.execute(sa.select(bundles.c.id).where(bundles.c.revoked_at.is_not(None))).all():
        connection.execute(
            bundles.update().where(bundles.c.id == bundle_id).values(token_hash=f'revoked-{bundle_id}')
        )
    with op.batch_alter_table('committee_bundle', schema=None) as batch_op:
        batch_op.drop_column('revoked_at')
    with op.batch_alter_table('reviewer_token', schema=None) as batch_op:
        batch_op.drop_column('revoked_at')
