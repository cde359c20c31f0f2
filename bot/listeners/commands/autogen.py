"""`/autogen`: start a run, or help / status / stop / credentials. Acks first, always."""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.commands import parse
from bot.listeners.answers import cancel_answer, credential_rows
from bot.services import Services
from bot.ui import blocks as ui
from bot.ui import modals
from store.records import FINISHED_STATUSES

log = logging.getLogger(__name__)

ROOT_POST_HOLD_S = 60.0
NOT_IN_CHANNEL = {"not_in_channel", "channel_not_found", "is_archived"}
NOT_IN_THIS_CHANNEL = (
    "I can't post in this channel yet. Invite me first with "
    "`/invite @AutoGen` (or add the app from the channel's settings), "
    "then run `/autogen` again."
)
NOT_HERE = (
    "I can't post in this conversation: runs happen in a thread in a channel I'm a member "
    "of, and I can't be added to direct messages or group DMs. Pick a channel (a private "
    "one works too), invite me with `/invite @AutoGen` there (or add the app from the "
    "channel's settings), then run `/autogen` in that channel."
)


def register(app: AsyncApp, services: Services) -> None:
    @app.command("/autogen")
    async def autogen_command(
        ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond, client: AsyncWebClient
    ) -> None:
        parsed = parse(command.get("text"))
        team_id, user_id = command["team_id"], command["user_id"]
        if parsed.kind == "help":
            await ack(text="AutoGen help", blocks=modals.help_blocks(parsed.problem))
            return
        await ack()  # everything below may touch the database or Slack: after the ack
        if parsed.kind == "status":
            blocks = await _status(services, team_id, user_id)
            await respond(response_type="ephemeral", text="Your runs", blocks=blocks)
        elif parsed.kind == "credentials":
            blocks = await credential_rows(services, team_id, user_id)
            await respond(response_type="ephemeral", text="Your keys", blocks=blocks)
        elif parsed.kind == "stop":
            text = await _stop(services, team_id, user_id, parsed.argument)
            await respond(response_type="ephemeral", text=text)
        else:
            await _start(services, client, respond, command, parsed.argument)


async def _start(
    services: Services,
    client: AsyncWebClient,
    respond: AsyncRespond,
    command: dict[str, Any],
    task: str,
) -> None:
    key = f"cmd:{command['team_id']}:{command.get('trigger_id') or command.get('response_url')}"
    started = await services.runs.start_run(
        workspace_id=command["team_id"],
        channel_id=command["channel_id"],
        requester_id=command["user_id"],
        task=task,
        idempotency_key=key,
        hold_s=ROOT_POST_HOLD_S,
    )
    if not started.created:
        return  # a redelivery of a command that already started its run
    text, blocks = ui.root_message(
        run_id=started.run.id, task=task, requester_id=command["user_id"], status="queued"
    )
    try:
        root = await client.chat_postMessage(
            channel=command["channel_id"],
            text=text,
            blocks=blocks,
            unfurl_links=False,
            unfurl_media=False,
        )
    except SlackApiError as exc:
        await services.runs.discard(started.run.id)
        error = str(exc.response.get("error", ""))
        if error in NOT_IN_CHANNEL:
            await respond(
                response_type="ephemeral",
                text=NOT_HERE if _is_direct_message(command) else NOT_IN_THIS_CHANNEL,
            )
        else:
            log.warning("root message failed: %s", error)
            await respond(
                response_type="ephemeral",
                text=f"Slack refused the message ({error}); nothing was started.",
            )
        return
    if not await services.runs.release_hold(started.run.id, thread_ts=root["ts"]):
        # Slack held this post past the hold and the publisher gave the run a root of its
        # own; ours would be a second, silent copy.
        with contextlib.suppress(SlackApiError):
            await client.chat_delete(channel=root["channel"], ts=root["ts"])


def _is_direct_message(command: dict[str, Any]) -> bool:
    """A DM or group DM, where nobody can invite the app. A G… id may also be a legacy
    private channel; the answer for DMs still fits one."""
    channel_id = str(command.get("channel_id") or "")
    channel_name = str(command.get("channel_name") or "")
    return (
        channel_id.startswith(("D", "G"))
        or channel_name == "directmessage"
        or channel_name.startswith("mpdm-")
    )


async def _status(services: Services, team_id: str, user_id: str) -> list[dict[str, Any]]:
    runs = await services.runs.runs_for(workspace_id=team_id, user_id=user_id, limit=10)
    rows = [
        f"• `{run.id}` {ui.STATUS_LABELS.get(str(run.status), run.status)} · "
        f"{run.turns} turns · {ui.escape(run.task[:80])}"
        for run in runs
    ]
    return modals.status_blocks(rows)


async def _stop(services: Services, team_id: str, user_id: str, run_id: str) -> str:
    if not run_id:
        runs = await services.runs.runs_for(workspace_id=team_id, user_id=user_id, limit=20)
        active = [run for run in runs if run.status not in FINISHED_STATUSES]
        if not active:
            return "You have no active run to stop."
        run_id = active[0].id
    outcome = await services.runs.cancel(run_id, user_id=user_id)
    return cancel_answer(outcome, run_id)
