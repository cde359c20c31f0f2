"""live reply slot

Revision ID: 0007
Revises: 0006

While an agent's reply is streamed into a run's thread, the message that shows it (Slack's
`ts`) already exists before its event does. The outbox keeps it (`live_ref`, the agent in
`live_source`, `live_streaming` while Slack still treats it as a stream) so the finished
reply replaces it instead of being posted again, even after a crash, and a live message
whose reply never came is removed rather than left half-written.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("outbox", sa.Column("live_ref", sa.String(length=32), nullable=True))
    op.add_column("outbox", sa.Column("live_source", sa.String(length=128), nullable=True))
    op.add_column(
        "outbox",
        sa.Column("live_streaming", sa.Boolean(), nullable=False, server_default=sa.false()),
    )


def downgrade() -> None:
    # A live message left then stays in its thread as it was: downgrading forgets it.
    # Plain ALTERs: a batch copy of `outbox` would lose its partial index.
    op.drop_column("outbox", "live_streaming")
    op.drop_column("outbox", "live_source")
    op.drop_column("outbox", "live_ref")
