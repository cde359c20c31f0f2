"""What listeners answer, shared by the command and the buttons that do the same thing
(the Stop button and `/autogen stop`; the Delete button and `/autogen credentials`), and by
the command and the @mention (the teams, an unknown team)."""

from __future__ import annotations

from typing import Any

from bot.ui import modals
from bot.ui.text import escape
from runner.keys import KeyDesk
from runner.manager import CancelOutcome
from runner.team_catalog import TeamCatalog
from store.records import CredentialInfo

_CANCEL_ANSWERS = {
    CancelOutcome.CANCELLED: "Stopping run `{id}`.",
    CancelOutcome.NOT_FOUND: "I found no run `{id}`.",
    CancelOutcome.NOT_AUTHORISED: (
        "Only the person who started run `{id}` or an approver can stop it."
    ),
    CancelOutcome.ALREADY_FINISHED: "Run `{id}` has already finished.",
}


def cancel_answer(outcome: CancelOutcome, run_id: str) -> str:
    """The reply to a stop request; the run id is the user's text, so it is escaped."""
    return _CANCEL_ANSWERS[outcome].format(id=escape(run_id[:40]))


def teams_answer(teams: TeamCatalog, problem: str | None = None) -> list[dict[str, Any]]:
    """The teams `--team NAME` can pick, after `problem` when there is one."""
    return modals.teams_blocks(teams.listing, problem)


def unknown_team(teams: TeamCatalog, name: str | None) -> str | None:
    """What to say when `--team NAME` names no team; None when it does (or none was given).
    The name is the user's text, so it is escaped."""
    if name is None or teams.get(name) is not None:
        return None
    return f"I don't know a team called `{escape(name[:40])}`."


def key_facts(info: CredentialInfo) -> str:
    """When a stored key was added and last used: all a person is ever shown of it."""
    used = (
        f"last used {info.last_used_at:%Y-%m-%d %H:%M} UTC" if info.last_used_at else "never used"
    )
    return f"added {info.created_at:%Y-%m-%d}, {used}"


async def credential_rows(keys: KeyDesk, team_id: str, user_id: str) -> list[dict[str, Any]]:
    stored = await keys.listed(workspace_id=team_id, user_id=user_id)
    return modals.credentials_list([(info.provider, key_facts(info)) for info in stored])
