"""outbox apart from the event log

Revision ID: 0003
Revises: 0002

What the Slack publisher has posted was kept on the event log itself (`run_events.slack_ts`,
`posted_at`, `parts_posted`) and on the run (`publisher_owner`, `publisher_expires_at`).
It moves to tables of its own: `outbox` (per run: how far delivery got, the claim) and
`outbox_messages` (per posted event: the message's reference and, for prompts, whether its
buttons are still live). Existing bookkeeping is carried over, so nothing is posted again.
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PENDING = "wanted_seq > delivered_seq"
FINISHED_KIND = "finished"
ANSWERS = {"credential_request": "credential_received", "actions_offered": "action_result"}
TOPIC_FIELD = {
    "credential_request": ("request", "request_id"),
    "actions_offered": ("offer", "offer_id"),
}


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite" and bind.dialect.dbapi.sqlite_version_info < (3, 35):
        raise RuntimeError(
            "this migration needs SQLite 3.35 or newer (ALTER TABLE ... DROP COLUMN); "
            f"this Python has SQLite {bind.dialect.dbapi.sqlite_version}"
        )
    op.create_table(
        "outbox",
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("wanted_seq", sa.Integer(), nullable=False),
        sa.Column("delivered_seq", sa.Integer(), nullable=False),
        sa.Column("parts_done", sa.Integer(), nullable=False),
        sa.Column("part_ref", sa.String(length=32), nullable=True),
        sa.Column("claim_owner", sa.String(length=64), nullable=True),
        sa.Column("claim_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("run_id"),
    )
    op.create_index(
        "ix_outbox_pending",
        "outbox",
        ["run_id"],
        unique=False,
        sqlite_where=sa.text(PENDING),
        postgresql_where=sa.text(PENDING),
    )
    op.create_table(
        "outbox_messages",
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("ref", sa.String(length=32), nullable=False),
        sa.Column("topic", sa.String(length=48), nullable=True),
        sa.Column("open", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("run_id", "seq"),
    )
    op.create_index(
        "ix_outbox_messages_topic", "outbox_messages", ["run_id", "topic"], unique=False
    )
    _carry_over(bind)
    # ALTER TABLE ... DROP COLUMN in place (SQLite 3.35+), never a copy of the table: with
    # foreign keys on, dropping the old copy of `runs` would cascade-delete every event.
    op.drop_index("ix_run_events_unposted", table_name="run_events")
    with op.batch_alter_table("run_events", recreate="never") as batch_op:
        batch_op.drop_column("posted_at")
        batch_op.drop_column("parts_posted")
        batch_op.drop_column("slack_ts")
    with op.batch_alter_table("runs", recreate="never") as batch_op:
        batch_op.drop_column("publisher_expires_at")
        batch_op.drop_column("publisher_owner")


def _carry_over(connection: sa.Connection) -> None:
    """One outbox row per run, one message row per posted event, from the old columns."""
    runs = connection.execute(
        sa.text("SELECT id, last_seq, publisher_owner, publisher_expires_at FROM runs")
    ).all()
    payload_type = sa.JSON()
    for run_id, last_seq, owner, expires_at in runs:
        events = connection.execute(
            sa.text(
                "SELECT seq, kind, payload, slack_ts, posted_at, parts_posted FROM run_events "
                "WHERE run_id = :run ORDER BY seq"
            ),
            {"run": run_id},
        ).all()
        decoded = [
            (seq, kind, _payload(payload, payload_type, connection), ts, posted, parts)
            for seq, kind, payload, ts, posted, parts in events
        ]
        delivered, parts_done, part_ref = 0, 0, None
        for seq, _kind, _event, ts, posted, parts in decoded:
            if posted is None:
                parts_done, part_ref = (parts or 0), (ts if parts else None)
                break
            delivered = seq
        connection.execute(
            sa.text(
                "INSERT INTO outbox (run_id, wanted_seq, delivered_seq, parts_done, part_ref, "
                "claim_owner, claim_expires_at) VALUES (:run, :wanted, :delivered, :parts, "
                ":part_ref, :owner, :expires)"
            ),
            {
                "run": run_id,
                "wanted": last_seq or 0,
                "delivered": delivered,
                "parts": parts_done,
                "part_ref": part_ref,
                "owner": owner,
                "expires": expires_at,
            },
        )
        for row in _messages(run_id, decoded, delivered):
            connection.execute(
                sa.text(
                    "INSERT INTO outbox_messages (run_id, seq, ref, topic, open) "
                    "VALUES (:run, :seq, :ref, :topic, :open)"
                ),
                row,
            )


def _payload(value: Any, payload_type: sa.JSON, connection: sa.Connection) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    processor = payload_type.result_processor(connection.dialect, None)
    decoded = processor(value) if processor else value
    return decoded if isinstance(decoded, dict) else {}


def _messages(run_id: str, events: list[tuple], delivered: int) -> list[dict[str, Any]]:
    """Posted events by their Slack ts; a prompt stays open until it is answered or the
    run's end (which closed every prompt) was posted."""
    answered: set[tuple[str, str]] = set()
    for _seq, kind, payload, *_ in events:
        for prompt, answer in ANSWERS.items():
            if kind == answer:
                answered.add((prompt, str(payload.get(TOPIC_FIELD[prompt][1]))))
    ended = any(kind == FINISHED_KIND and seq <= delivered for seq, kind, *_ in events)
    rows = []
    for seq, kind, payload, ts, posted, _parts in events:
        if posted is None or not ts:
            continue
        topic, is_open = None, False
        if kind in TOPIC_FIELD:
            name, field = TOPIC_FIELD[kind]
            topic = f"{name}:{payload.get(field)}"
            is_open = not ended and (kind, str(payload.get(field))) not in answered
        rows.append({"run": run_id, "seq": seq, "ref": ts, "topic": topic, "open": is_open})
    return rows


def downgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("publisher_owner", sa.String(length=64), nullable=True))
        batch_op.add_column(
            sa.Column("publisher_expires_at", sa.DateTime(timezone=True), nullable=True)
        )
    with op.batch_alter_table("run_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("slack_ts", sa.String(length=32), nullable=True))
        batch_op.add_column(
            sa.Column("parts_posted", sa.Integer(), nullable=False, server_default=sa.text("0"))
        )
        batch_op.add_column(sa.Column("posted_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index("ix_run_events_unposted", ["posted_at", "run_id"], unique=False)
    op.execute(
        "UPDATE run_events SET posted_at = CURRENT_TIMESTAMP, slack_ts = (SELECT ref FROM "
        "outbox_messages m WHERE m.run_id = run_events.run_id AND m.seq = run_events.seq) "
        "WHERE seq <= (SELECT delivered_seq FROM outbox o WHERE o.run_id = run_events.run_id)"
    )
    # A long message half posted: its parts already in Slack, so they are not posted again.
    op.execute(
        "UPDATE run_events SET parts_posted = (SELECT parts_done FROM outbox o WHERE "
        "o.run_id = run_events.run_id), slack_ts = (SELECT part_ref FROM outbox o WHERE "
        "o.run_id = run_events.run_id) WHERE seq = (SELECT delivered_seq + 1 FROM outbox o "
        "WHERE o.run_id = run_events.run_id AND o.parts_done > 0)"
    )
    op.drop_index("ix_outbox_messages_topic", table_name="outbox_messages")
    op.drop_table("outbox_messages")
    op.drop_index("ix_outbox_pending", table_name="outbox")
    op.drop_table("outbox")
