"""Feedback on a run's result: good or bad, once per person."""

from __future__ import annotations

from enum import StrEnum

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from store.models import FeedbackRow, RunRow, utcnow
from store.work import Repository

RATINGS = ("good", "bad")


class FeedbackOutcome(StrEnum):
    RECORDED = "recorded"
    CHANGED = "changed"  # the person switched between good and bad, as Slack's buttons allow
    ALREADY_GIVEN = "already_given"
    NOT_FOUND = "not_found"


class FeedbackRepository(Repository):
    async def record(self, run_id: str, *, user_id: str, rating: str) -> FeedbackOutcome:
        """One rating per person and run: the first click inserts it, a click on the other
        button changes it (Slack's buttons show the latest choice), the same click again (or
        a replay, or two replicas at once) changes nothing."""
        if rating not in RATINGS:
            return FeedbackOutcome.NOT_FOUND
        async with self._db.work(urgent=True) as work:
            session = work.session
            run = await session.get(RunRow, run_id)
            if run is None:
                return FeedbackOutcome.NOT_FOUND
            dialect = session.get_bind().dialect.name
            insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
            values = {
                "run_id": run_id,
                "user_id": user_id,
                "rating": rating,
                "created_at": utcnow(),
            }
            result = await session.execute(
                insert(FeedbackRow).values(**values).on_conflict_do_nothing()
            )
            outcome = FeedbackOutcome.RECORDED
            if result.rowcount != 1:
                changed = await session.execute(
                    update(FeedbackRow)
                    .where(
                        FeedbackRow.run_id == run_id,
                        FeedbackRow.user_id == user_id,
                        FeedbackRow.rating != rating,
                    )
                    .values(rating=rating, created_at=utcnow())
                )
                if changed.rowcount != 1:
                    return FeedbackOutcome.ALREADY_GIVEN
                outcome = FeedbackOutcome.CHANGED
            work.audit(
                workspace_id=run.workspace_id,
                actor_id=user_id,
                action="run_feedback",
                subject=rating,
                run_id=run_id,
            )
            return outcome

    async def tally(self, run_id: str) -> dict[str, int]:
        """How many people said good and bad about the run."""
        async with self._db.reads() as session:
            rows = await session.execute(
                select(FeedbackRow.rating, func.count())
                .where(FeedbackRow.run_id == run_id)
                .group_by(FeedbackRow.rating)
            )
            counts = {rating: 0 for rating in RATINGS}
            counts.update({rating: count for rating, count in rows})
            return counts
