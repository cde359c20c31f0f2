"""`@AutoGen <task>` in a channel: a run whose root is a reply to the mention, in its thread.

The text after the mention is read like `/autogen`'s (`--team NAME` included); anything but
a task (help, an unknown team) is answered privately in the same thread. Slack retries an
event it thinks was not received; the mention's own ts makes the run's idempotency key, so
a retry or a duplicate starts nothing twice. Mentions by bots (the app's own included) and
edits of a mention are ignored; a mention also sent to the channel counts. A mention in a
run's own thread starts nothing: it is a reply to that run (see `message`).
"""

from __future__ import annotations

import logging
import re
from typing import Any

from slack_bolt.async_app import AsyncBoltContext
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.commands import Command, parse
from bot.listeners.answers import teams_answer, unknown_team
from bot.listeners.commands.start import Where, refused_answer, start_shown
from bot.services import services_of
from bot.ui import modals
from runner.team_catalog import TeamCatalog
from runner.thread_replies import message_key

log = logging.getLogger(__name__)
LEADING_MENTIONS = re.compile(r"^(\s*<@[A-Z0-9]+(?:\|[^>]*)?>\s*)+")


async def app_mention_event(
    event: dict[str, Any], body: dict[str, Any], client: AsyncWebClient, context: AsyncBoltContext
) -> None:
    if event.get("bot_id") or event.get("edited"):
        return  # a bot's message, or an edit of a mention already answered
    runs = services_of(context).runs
    if event.get("thread_ts") and await runs.thread_replies.run_in_thread(
        str(event["channel"]), str(event["thread_ts"])
    ):
        return  # a mention in a run's thread is a reply to it (the message event steers)
    thread = str(event.get("thread_ts") or event["ts"])  # where the run works
    asked_in = event.get("thread_ts")  # where a private answer shows: beside, or in a thread
    text = LEADING_MENTIONS.sub("", str(event.get("text", ""))).strip()
    parsed = parse(text)
    answer = _not_a_start(parsed, runs.teams)
    if answer is not None:
        await _tell(client, event, asked_in, answer)
        return
    name = runs.teams.run_name(parsed.team)
    where = Where(str(body["team_id"]), str(event["channel"]), str(event["user"]), thread)
    key = f"mention:{body['team_id']}:{event['channel']}:{event['ts']}"
    error = await start_shown(
        runs,
        client,
        where,
        parsed.argument,
        key=key,
        team_name=name,
        message_keys=[message_key(str(event["channel"]), str(event["ts"]))],  # never a reply
    )
    if error is not None:
        await _tell(
            client, event, asked_in, refused_answer(error, {"channel_id": event["channel"]})
        )


def _not_a_start(parsed: Command, teams: TeamCatalog) -> list[dict[str, Any]] | None:
    """What to answer instead of starting a run, if anything."""
    if parsed.kind == "start":
        problem = unknown_team(teams, parsed.team)
        return teams_answer(teams, problem) if problem is not None else None
    if parsed.kind == "teams":
        return teams_answer(teams)
    return modals.help_blocks(
        parsed.problem
        or "Mention me with a task: `@AutoGen summarise this thread`. "
        "Status, stop and keys are in `/autogen`."
    )


async def _tell(
    client: AsyncWebClient,
    event: dict[str, Any],
    thread: str | None,
    answer: list[dict[str, Any]] | str,
) -> None:
    """A private answer to the person who mentioned the app, where they wrote it."""
    content = {"text": answer} if isinstance(answer, str) else {"text": "AutoGen", "blocks": answer}
    try:
        await client.chat_postEphemeral(
            channel=event["channel"],
            user=event["user"],
            **({"thread_ts": thread} if thread else {}),
            **content,
        )
    except SlackApiError as exc:
        log.warning("mention answer not delivered (%s)", exc.response.get("error"))
