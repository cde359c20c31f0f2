"""`/autogen`: start a run, or help / status / stop / credentials. Acks first, always."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncBoltContext, AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bot.commands import parse
from bot.listeners.answers import cancel_answer, credential_rows, teams_answer, unknown_team
from bot.listeners.commands.start import start_run
from bot.services import services_of
from bot.ui import blocks as ui
from bot.ui import modals
from runner.manager import RunManager


async def autogen_command(
    ack: AsyncAck,
    command: dict[str, Any],
    respond: AsyncRespond,
    client: AsyncWebClient,
    context: AsyncBoltContext,
) -> None:
    parsed = parse(command.get("text"))
    team_id, user_id = command["team_id"], command["user_id"]
    if parsed.kind == "help":
        await ack(text="AutoGen help", blocks=modals.help_blocks(parsed.problem))
        return
    await ack()  # everything below may touch the database or Slack: after the ack
    runs = services_of(context).runs
    if parsed.kind == "status":
        blocks = await _status(runs, team_id, user_id)
        await respond(response_type="ephemeral", text="Your runs", blocks=blocks)
    elif parsed.kind == "credentials":
        blocks = await credential_rows(runs.keys, team_id, user_id)
        await respond(response_type="ephemeral", text="Your keys", blocks=blocks)
    elif parsed.kind == "stop":
        text = await _stop(runs, team_id, user_id, parsed.argument)
        await respond(response_type="ephemeral", text=text)
    elif parsed.kind == "teams":
        await respond(response_type="ephemeral", text="Teams", blocks=teams_answer(runs.teams))
    elif (problem := unknown_team(runs.teams, parsed.team)) is not None:
        blocks = teams_answer(runs.teams, problem)
        await respond(response_type="ephemeral", text=problem, blocks=blocks)
    else:
        name = runs.teams.run_name(parsed.team)
        await start_run(runs, client, respond, command, parsed.argument, team_name=name)


async def _status(runs: RunManager, team_id: str, user_id: str) -> list[dict[str, Any]]:
    recent = await runs.runs_for(workspace_id=team_id, user_id=user_id, limit=10)
    rows = [
        f"• `{run.id}` {ui.STATUS_LABELS.get(str(run.status), run.status)} · "
        f"{run.turns} turns · {ui.escape(run.task[:80])}"
        for run in recent
    ]
    return modals.status_blocks(rows)


async def _stop(runs: RunManager, team_id: str, user_id: str, run_id: str) -> str:
    if not run_id:
        recent = await runs.runs_for(workspace_id=team_id, user_id=user_id, limit=20)
        active = [run for run in recent if not run.status.finished]
        if not active:
            return "You have no active run to stop."
        run_id = active[0].id
    outcome = await runs.cancel(run_id, user_id=user_id)
    return cancel_answer(outcome, run_id)
