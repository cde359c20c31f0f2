"""thread replies

Revision ID: 0008
Revises: 0007

A reply in a run's thread steers the run: the run is found by its thread (an index, since
every thread reply in every channel the app is in is looked up), and each Slack message is
acted on once, however often Slack delivers it (`inbound_messages`: its event id and its
message's own id).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_runs_thread", "runs", ["channel_id", "thread_ts"])
    op.create_table(
        "inbound_messages",
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("key"),
    )


def downgrade() -> None:
    op.drop_table("inbound_messages")
    op.drop_index("ix_runs_thread", table_name="runs")
