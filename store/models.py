"""SQLAlchemy 2 table models. The schema itself is owned by the Alembic migrations."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in and out; SQLite would otherwise hand back naive ones."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime(), dict: JSON}


class RunRow(Base):
    """One run of a team. A waiting run is only this row: its team state is in `team_state`."""

    __tablename__ = "runs"
    __table_args__ = (Index("ix_runs_thread", "channel_id", "thread_ts"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    workspace_id: Mapped[str] = mapped_column(String(32))
    channel_id: Mapped[str] = mapped_column(String(32))
    thread_ts: Mapped[str | None] = mapped_column(String(32))
    requester_id: Mapped[str] = mapped_column(String(32))
    task: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(24), index=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(128), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    turns: Mapped[int] = mapped_column(Integer, default=0)
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0)
    team_state: Mapped[str | None] = mapped_column(Text)
    resume_input: Mapped[str | None] = mapped_column(Text)
    outcome: Mapped[str | None] = mapped_column(Text)
    cancelled_by: Mapped[str | None] = mapped_column(String(32))
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_expires_at: Mapped[datetime | None]
    recoveries: Mapped[int] = mapped_column(Integer, default=0)
    last_seq: Mapped[int] = mapped_column(Integer, default=0)
    active_s: Mapped[float] = mapped_column(Float, default=0.0, server_default=text("0"))
    team_name: Mapped[str | None] = mapped_column(String(32))  # None: the default team
    root_ts: Mapped[str | None] = mapped_column(String(32))  # None: the thread's parent


class RunEventRow(Base):
    """The ordered, persisted history of a run: what every front end renders."""

    __tablename__ = "run_events"
    __table_args__ = (UniqueConstraint("run_id", "seq", name="uq_run_events_run_seq"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


PENDING_DELIVERY = "wanted_seq > delivered_seq"


class OutboxRow(Base):
    """How far the delivering front end (the Slack publisher) has shown one run's events.

    `wanted_seq` follows the run's last event (the unit of work keeps it in step), so the
    runs with something to deliver are found through a partial index, not by a scan."""

    __tablename__ = "outbox"
    __table_args__ = (
        Index(
            "ix_outbox_pending",
            "run_id",
            sqlite_where=text(PENDING_DELIVERY),
            postgresql_where=text(PENDING_DELIVERY),
        ),
    )

    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    wanted_seq: Mapped[int] = mapped_column(Integer, default=0)
    delivered_seq: Mapped[int] = mapped_column(Integer, default=0)
    parts_done: Mapped[int] = mapped_column(Integer, default=0)
    part_ref: Mapped[str | None] = mapped_column(String(32))
    # The message showing the next event's reply while it is written (see store.outbox).
    live_ref: Mapped[str | None] = mapped_column(String(32))
    live_source: Mapped[str | None] = mapped_column(String(128))
    live_streaming: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    claim_owner: Mapped[str | None] = mapped_column(String(64))
    claim_expires_at: Mapped[datetime | None]


class OutboxMessageRow(Base):
    """A message the front end showed for an event, by its own reference (Slack's ts).

    `topic` names the prompt a later event answers ("request:<id>", "offer:<id>"); `open`
    says it still shows live buttons."""

    __tablename__ = "outbox_messages"
    __table_args__ = (Index("ix_outbox_messages_topic", "run_id", "topic"),)

    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    ref: Mapped[str] = mapped_column(String(32))
    topic: Mapped[str | None] = mapped_column(String(48))
    open: Mapped[bool] = mapped_column(Boolean, default=False)


class CredentialRow(Base):
    """An encrypted credential; user_id '*' marks a workspace-wide one."""

    __tablename__ = "credentials"
    __table_args__ = (
        UniqueConstraint("workspace_id", "user_id", "provider", name="uq_credentials_owner"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    workspace_id: Mapped[str] = mapped_column(String(32))
    user_id: Mapped[str] = mapped_column(String(32))
    provider: Mapped[str] = mapped_column(String(64))
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    last_used_at: Mapped[datetime | None]


class CredentialRequestRow(Base):
    """A run's wait for one user's credential; fulfilling it wakes the run on any replica."""

    __tablename__ = "credential_requests"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    workspace_id: Mapped[str] = mapped_column(String(32))
    user_id: Mapped[str] = mapped_column(String(32))
    provider: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    resolved_at: Mapped[datetime | None]


class OfferedActionRow(Base):
    """A single-use action offered on a run; `offer_id` groups the buttons shown together."""

    __tablename__ = "offered_actions"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    offer_id: Mapped[str] = mapped_column(String(32), index=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    type: Mapped[str] = mapped_column(String(32))
    label: Mapped[str] = mapped_column(String(75))
    params: Mapped[dict] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16))
    decided_by: Mapped[str | None] = mapped_column(String(32))
    decided_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class FeedbackRow(Base):
    """One person's good / bad on one run's summary (one per person and run)."""

    __tablename__ = "run_feedback"

    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    rating: Mapped[str] = mapped_column(String(8))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class InboundMessageRow(Base):
    """A Slack message already acted on, by each of its ids (the event's, the message's):
    Slack redelivers events, and the same message can come by more than one event."""

    __tablename__ = "inbound_messages"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ApiTokenRow(Base):
    """An API token: only its SHA-256 is kept; it acts for `user_id` of `workspace_id`."""

    __tablename__ = "api_tokens"
    __table_args__ = (UniqueConstraint("token_hash", name="uq_api_tokens_hash"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64))
    workspace_id: Mapped[str] = mapped_column(String(32))
    user_id: Mapped[str] = mapped_column(String(32))
    label: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class AuditRow(Base):
    """Who stored, used or deleted a credential, who decided an action, who cancelled a run."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    workspace_id: Mapped[str] = mapped_column(String(32))
    actor_id: Mapped[str] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(32))
    subject: Mapped[str] = mapped_column(String(128))
    run_id: Mapped[str | None] = mapped_column(String(32))
    detail: Mapped[dict] = mapped_column(JSON, default=dict)
