"""root apart from thread

Revision ID: 0006
Revises: 0005

A run started by an @mention has its root message as a reply in the mention's thread, so
the message that shows its status (`root_ts`) is not the thread's parent (`thread_ts`).
Empty for every other run: there the root is the thread's parent.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("runs", sa.Column("root_ts", sa.String(length=32), nullable=True))


def downgrade() -> None:
    # A plain ALTER TABLE: a batch copy of `runs` would cascade away the runs' events.
    op.drop_column("runs", "root_ts")
