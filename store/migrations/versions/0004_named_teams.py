"""named teams

Revision ID: 0004
Revises: 0003

`runs.team_name` names the team of TEAMS_DIR a run was started with (`/autogen --team
NAME`); empty for runs of the default team (TEAM_CONFIG), which every run before this
revision is.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("runs", sa.Column("team_name", sa.String(length=32), nullable=True))


def downgrade() -> None:
    # Plain ALTER TABLE (SQLite 3.35+ drops a column in place): a batch "move and copy"
    # of `runs` would drop the old table, and with it, by cascade, every run's events.
    op.drop_column("runs", "team_name")
