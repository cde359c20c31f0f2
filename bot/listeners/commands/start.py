"""`/autogen <task>` (and an @mention): make the run's root message, then let the run go.

The run is created held (no replica claims it), the root message is posted, and the hold is
released with the root's `ts` as the run's thread. A redelivered command finds its run by
the idempotency key and starts nothing twice; a channel the app cannot post in leaves no
run behind and gets a clear answer.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from slack_bolt.async_app import AsyncRespond
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack_calls import CHANNEL_GONE
from bot.ui import blocks as ui
from runner.manager import RunManager

log = logging.getLogger(__name__)

ROOT_POST_HOLD_S = 60.0
NOT_IN_THIS_CHANNEL = (
    "I can't post in this channel yet. Invite me first with "
    "`/invite @AutoGen` (or add the app from the channel's settings), "
    "then run `/autogen` again."
)
RESTRICTED = (
    "Posting in this channel is restricted by a workspace setting, so I can't start a run "
    "here. Pick another channel, or ask an admin to let apps post here."
)
ARCHIVED = "This channel is archived, so I can't start a run here."
NOT_HERE = (
    "I can't post in this conversation: runs happen in a thread in a channel I'm a member "
    "of, and I can't be added to direct messages or group DMs. Pick a channel (a private "
    "one works too), invite me with `/invite @AutoGen` there (or add the app from the "
    "channel's settings), then run `/autogen` in that channel."
)


async def start_run(
    runs: RunManager,
    client: AsyncWebClient,
    respond: AsyncRespond,
    command: dict[str, Any],
    task: str,
    *,
    team_name: str | None = None,
) -> None:
    key = f"cmd:{command['team_id']}:{command.get('trigger_id') or command.get('response_url')}"
    where = Where(command["team_id"], command["channel_id"], command["user_id"])
    error = await start_shown(runs, client, where, task, key=key, team_name=team_name)
    if error is not None:
        await respond(response_type="ephemeral", text=refused_answer(error, command))


@dataclass(frozen=True)
class Where:
    """Who starts a run, in which channel, and (for an @mention) in which thread."""

    workspace_id: str
    channel_id: str
    requester_id: str
    thread_ts: str | None = None  # the root is a reply in this thread; None: a new thread


async def start_shown(
    runs: RunManager,
    client: AsyncWebClient,
    where: Where,
    task: str,
    *,
    key: str,
    team_name: str | None = None,
    message_keys: Sequence[str] = (),
) -> str | None:
    """Create the run held, post its root message (a new thread, or a reply in
    `where.thread_ts`), then let it go; Slack's error when the root could not be posted
    (no run is left behind then). A redelivery (same `key`) starts nothing twice.
    `message_keys`: the ids of the message that asked for it (an @mention), so that
    message is never also taken as a reply to the run it started."""
    started = await runs.start_run(
        workspace_id=where.workspace_id,
        channel_id=where.channel_id,
        requester_id=where.requester_id,
        task=task,
        idempotency_key=key,
        hold_s=ROOT_POST_HOLD_S,
        team_name=team_name,
        thread_ts=where.thread_ts,  # known from the start: the publisher posts there too
        message_keys=message_keys,
    )
    if not started.created:
        return None  # a redelivery of a request that already started its run
    text, blocks = ui.root_message(
        run_id=started.run.id,
        task=task,
        requester_id=where.requester_id,
        status="queued",
        team=team_name,
    )
    try:
        root = await client.chat_postMessage(
            channel=where.channel_id,
            text=text,
            blocks=blocks,
            unfurl_links=False,
            unfurl_media=False,
            **({"thread_ts": where.thread_ts} if where.thread_ts else {}),
        )
    except SlackApiError as exc:
        await runs.discard(started.run.id)
        error = str(exc.response.get("error", ""))
        if error not in CHANNEL_GONE:
            log.warning("root message failed: %s", error)
        return error
    thread, root_ts = (where.thread_ts, root["ts"]) if where.thread_ts else (root["ts"], None)
    if not await runs.release_hold(started.run.id, thread_ts=thread, root_ts=root_ts):
        # Slack held this post past the hold and the publisher gave the run a root of its
        # own; ours would be a second, silent copy.
        with contextlib.suppress(SlackApiError):
            await client.chat_delete(channel=root["channel"], ts=root["ts"])
    return None


def refused_answer(error: str, command: dict[str, Any]) -> str:
    """Why nothing started, in words that say what to do about it."""
    if error == "restricted_action":
        return RESTRICTED
    if error == "is_archived":
        return ARCHIVED
    if error in CHANNEL_GONE:
        return NOT_HERE if _is_direct_message(command) else NOT_IN_THIS_CHANNEL
    return f"Slack refused the message ({error}); nothing was started."


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
