"""installation facts and shared files

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29

For an engine on several machines: a table of facts every machine must agree on (a
check of the secret key), and the committee's bundles named relative to the shared
files folder (SIP_FILES_DIR) rather than by a path only one machine can read.

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '0008'
down_revision: Union[str, Sequence[str], None] = '0007'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

bundles = sa.table("committee_bundle", sa.column("id", sa.Integer), sa.column("path", sa.String))


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        'installation',
        sa.Column('name', sa.String(length=60), nullable=False),
        sa.Column('value', sa.String(length=200), nullable=False),
        sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('name'),
    )
    # Bundles were kept as <SIP_DATA_DIR>/bundles/<round>/<file>: keep bundles/<round>/<file>.
    connection = op.get_bind()
    for bundle_id, path in connection.execute(sa.select(bundles.c.id, bundles.c.path)).all():
        parts = path.replace("\\", "/").split("/")
        if "bundles" in parts:
            relative = "/".join(parts[len(parts) - 1 - parts[::-1].index("bundles"):])
            connection.execute(bundles.update().where(bundles.c.id == bundle_id).values(path=relative))


def downgrade() -> None:
    """Downgrade schema (the bundles' paths stay relative to the files folder)."""
    op.drop_table('installation')
