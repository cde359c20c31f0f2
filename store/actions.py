"""Offered actions: single-use, bound to their run and parameters, decided by few."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

import store.events as ev
from store.changes import Guard, RunChange
from store.events import NewEvent
from store.models import OfferedActionRow, RunRow, utcnow
from store.records import ActionStatus, OfferedAction, RunEvent, RunStatus, record_of
from store.work import Repository, RunWork, new_id


def _action(row: OfferedActionRow) -> OfferedAction:
    return record_of(OfferedAction, row, status=ActionStatus(row.status), params=dict(row.params))


class DecisionOutcome(StrEnum):
    APPROVED = "approved"
    NOT_FOUND = "not_found"
    NOT_AUTHORISED = "not_authorised"
    ALREADY_DECIDED = "already_decided"
    RUN_NOT_WAITING = "run_not_waiting"


@dataclass(frozen=True)
class Decision:
    outcome: DecisionOutcome
    action: OfferedAction | None = None


async def _check(
    session: AsyncSession, action_id: str, user_id: str, approvers: frozenset[str]
) -> tuple[Decision | None, OfferedActionRow | None, RunRow | None]:
    """The refusal `user_id` gets for deciding the action now, if any; the rows read."""
    row = await session.get(OfferedActionRow, action_id)
    run = await session.get(RunRow, row.run_id) if row is not None else None
    if row is None or run is None:
        return Decision(DecisionOutcome.NOT_FOUND), row, run
    if not may_decide(user_id, requester_id=run.requester_id, approvers=approvers):
        return Decision(DecisionOutcome.NOT_AUTHORISED, _action(row)), row, run
    if row.status != ActionStatus.OFFERED:
        return Decision(_answered(row), _action(row)), row, run
    if run.status != RunStatus.WAITING_APPROVAL:
        return Decision(DecisionOutcome.RUN_NOT_WAITING, _action(row)), row, run
    return None, row, run


def _answered(row: OfferedActionRow) -> DecisionOutcome:
    """Why an action is no longer open: someone decided its offer, or (nobody did) its run
    ended and closed it."""
    return DecisionOutcome.ALREADY_DECIDED if row.decided_by else DecisionOutcome.RUN_NOT_WAITING


def may_decide(user_id: str, *, requester_id: str, approvers: frozenset[str]) -> bool:
    """Fail closed: the requester, or someone named in APPROVERS; nobody else."""
    return bool(user_id) and (user_id == requester_id or user_id in approvers)


@dataclass(frozen=True)
class ActionSpec:
    type: str
    label: str
    params: dict[str, Any]


class ActionRepository(Repository):
    async def offer(
        self,
        run_id: str,
        specs: list[ActionSpec],
        *,
        reason: str,
        guard: Guard,
        change: RunChange,
        extra: dict[str, Any] | None = None,
    ) -> tuple[RunEvent, list[OfferedAction]] | None:
        """Store a set of buttons, the `actions_offered` event naming them (with `extra`
        fields, such as the tool call a person is asked about), and the run's change
        (usually to waiting_approval), all in one transaction; None (nothing written) when
        the guard did not hold."""
        offer_id = new_id()
        rows = [
            OfferedActionRow(
                id=new_id(),
                offer_id=offer_id,
                run_id=run_id,
                type=spec.type,
                label=spec.label[:75],
                params=spec.params,
                status=ActionStatus.OFFERED,
            )
            for spec in specs
        ]
        actions = [_action(row) for row in rows]
        payload = {
            "reason": reason,
            "offer_id": offer_id,
            "actions": [
                {"id": a.id, "type": a.type, "label": a.label, "params": a.params} for a in actions
            ],
            **(extra or {}),
        }
        async with self._db.work() as work:
            written = await work.write(
                run_id, change, guard, [NewEvent(ev.ACTIONS_OFFERED, payload)]
            )
            if written is None:
                return None
            work.session.add_all(rows)
        return written.events[0], actions

    async def get(self, action_id: str) -> OfferedAction | None:
        async with self._db.reads() as session:
            row = await session.get(OfferedActionRow, action_id)
            return _action(row) if row else None

    async def approved_unapplied(self, *, decided_before: datetime) -> list[OfferedAction]:
        """Decisions taken before `decided_before` whose effect was not applied: the process
        that took them died in between (a younger one may still be being applied)."""
        async with self._db.reads() as session:
            rows = await session.scalars(
                select(OfferedActionRow).where(
                    OfferedActionRow.status == ActionStatus.APPROVED,
                    OfferedActionRow.decided_at < decided_before,
                )
            )
            return [_action(row) for row in rows]

    async def decide(
        self,
        action_id: str,
        *,
        user_id: str,
        approvers: frozenset[str],
        note: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> Decision:
        """Approve an offered action once. The run must be waiting for approval; the other
        buttons of the same offer are superseded in the same transaction. `note` (a reason
        the person gave) and `extra` are kept with the action's parameters."""
        async with self._db.work(urgent=True) as work:
            session = work.session
            refused, row, run = await _check(session, action_id, user_id, approvers)
            if refused is not None or row is None or run is None:
                return refused or Decision(DecisionOutcome.NOT_FOUND)
            now = utcnow()
            result = await session.execute(
                update(OfferedActionRow)
                .where(
                    OfferedActionRow.id == action_id,
                    OfferedActionRow.status == ActionStatus.OFFERED,
                )
                .values(
                    status=ActionStatus.APPROVED,
                    decided_by=user_id,
                    decided_at=now,
                    **(
                        {
                            "params": {
                                **row.params,
                                **(extra or {}),
                                **({"note": note} if note else {}),
                            }
                        }
                        if note or extra
                        else {}
                    ),
                )
            )
            if result.rowcount != 1:
                return Decision(DecisionOutcome.ALREADY_DECIDED, _action(row))
            await session.execute(
                update(OfferedActionRow)
                .where(
                    OfferedActionRow.offer_id == row.offer_id,
                    OfferedActionRow.id != action_id,
                    OfferedActionRow.status == ActionStatus.OFFERED,
                )
                .values(status=ActionStatus.SUPERSEDED, decided_by=user_id, decided_at=now)
            )
            work.audit(
                workspace_id=run.workspace_id,
                actor_id=user_id,
                action="action_decided",
                subject=row.type,
                run_id=run.id,
                detail={"action_id": row.id, "label": row.label},
            )
            await session.refresh(row)
            return Decision(DecisionOutcome.APPROVED, _action(row))

    async def check_decider(
        self, action_id: str, *, user_id: str, approvers: frozenset[str]
    ) -> Decision:
        """What `decide` would answer, without deciding: lets a front end refuse at once
        before it asks the person for more (a reason to deny, say)."""
        async with self._db.reads() as session:
            refused, row, _ = await _check(session, action_id, user_id, approvers)
            if refused is not None or row is None:
                return refused or Decision(DecisionOutcome.NOT_FOUND)
            return Decision(DecisionOutcome.APPROVED, _action(row))

    async def open_for(self, run_id: str) -> list[OfferedAction]:
        """The run's buttons nobody has decided yet, in the order they were offered."""
        async with self._db.reads() as session:
            rows = await session.scalars(
                select(OfferedActionRow)
                .where(
                    OfferedActionRow.run_id == run_id,
                    OfferedActionRow.status == ActionStatus.OFFERED,
                )
                .order_by(OfferedActionRow.created_at, OfferedActionRow.id)
            )
            return [_action(row) for row in rows]

    async def has_newer_offer(self, run_id: str, offer_id: str) -> bool:
        """Whether the run has undecided buttons from an offer other than `offer_id`."""
        async with self._db.reads() as session:
            found = await session.scalar(
                select(OfferedActionRow.id).where(
                    OfferedActionRow.run_id == run_id,
                    OfferedActionRow.offer_id != offer_id,
                    OfferedActionRow.status == ActionStatus.OFFERED,
                )
            )
            return found is not None

    @staticmethod
    async def mark_applied_in(work: RunWork, action_id: str) -> bool:
        """The approved action's effect is written (inside the same unit of work)."""
        result = await work.session.execute(
            update(OfferedActionRow)
            .where(
                OfferedActionRow.id == action_id,
                OfferedActionRow.status == ActionStatus.APPROVED,
            )
            .values(status=ActionStatus.APPLIED)
        )
        return result.rowcount == 1

    @staticmethod
    async def close_for_finished_run(session: AsyncSession, run_id: str) -> None:
        """The unit of work's finish hook: a finished run takes no decision."""
        await session.execute(
            update(OfferedActionRow)
            .where(
                OfferedActionRow.run_id == run_id, OfferedActionRow.status == ActionStatus.OFFERED
            )
            .values(status=ActionStatus.SUPERSEDED, decided_at=utcnow())
        )
