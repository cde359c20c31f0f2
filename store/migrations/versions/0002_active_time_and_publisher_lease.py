"""active run time and publisher lease

Revision ID: 0002
Revises: 0001

`active_s` counts the seconds a run has spent running (not waiting), so RUN_TIMEOUT_S
bounds work, not the time a person took to answer. `publisher_owner` and
`publisher_expires_at` let one replica at a time post a run's events to Slack;
`run_events.parts_posted` records how many parts of a long message are already in Slack,
so a retry after a failure in the middle posts only the rest.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("active_s", sa.Float(), nullable=False, server_default=sa.text("0"))
        )
        batch_op.add_column(sa.Column("publisher_owner", sa.String(length=64), nullable=True))
        batch_op.add_column(
            sa.Column("publisher_expires_at", sa.DateTime(timezone=True), nullable=True)
        )
    with op.batch_alter_table("run_events", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("parts_posted", sa.Integer(), nullable=False, server_default=sa.text("0"))
        )


def downgrade() -> None:
    with op.batch_alter_table("run_events", schema=None) as batch_op:
        batch_op.drop_column("parts_posted")
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_column("publisher_expires_at")
        batch_op.drop_column("publisher_owner")
        batch_op.drop_column("active_s")
