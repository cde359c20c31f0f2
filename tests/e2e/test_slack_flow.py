"""What a Slack user does, end to end over HTTP: start a run, give the key privately, watch
the transcript, decide the verifier's suggestions."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from bot import ids
from runner.identities import identity_for
from store import Store
from tests.e2e.stack import (
    AGENT_MODEL,
    VERIFIER_MODEL,
    Stack,
    assert_default_team_transcript,
    assert_refused_not_in_channel,
    button,
    running_stack,
    text_of,
    verdict,
)

KEY = "sk-e2e-user-key-5b8f0c2a"


async def _start_and_add_key(
    stack: Stack, task: str = "Write a haiku about queues"
) -> dict[str, Any]:
    status, body, _ = await stack.command(task)
    assert (status, body) == (200, "")
    request_message = await stack.slack.wait_for(
        lambda s: next((m for m in stack.thread() if button(m, ids.CREDENTIAL_OPEN)), None)
    )
    await stack.click(request_message, ids.CREDENTIAL_OPEN, user_id="U1")
    await stack.slack.wait_for(lambda s: s.views_opened)
    view = stack.slack.views_opened[-1]
    status, body, _ = await stack.submit(
        view, {ids.CREDENTIAL_INPUT_BLOCK: {ids.CREDENTIAL_INPUT: KEY}}, "U1"
    )
    assert status == 200 and "errors" not in body, body
    return request_message


async def test_full_run_from_slash_command_to_summary(tmp_path: Path, secret_key: str) -> None:
    async with running_stack(tmp_path, secret_key, valid_keys={KEY}) as stack:
        stack.llm.script(
            AGENT_MODEL, ["1. Pick a theme.", "Queues wait in line", "Good. TERMINATE"]
        )
        stack.llm.script(VERIFIER_MODEL, [verdict(), verdict(), verdict()])

        # Slack holds the root post for 3 s: the command is acknowledged before it (nothing
        # slow runs before the ack), and the root appears afterwards.
        stack.slack.slow("chat.postMessage", 3)
        status, body, _ = await stack.command("Write a haiku about queues")
        assert (status, body) == (200, "")
        assert stack.slack.channel_messages("C1") == [], "the ack waited for the root post"
        assert stack.slack.calls_to("chat.postMessage") == []
        root = await stack.slack.wait_for(lambda s: s.channel_messages("C1"))
        assert "Write a haiku about queues" in text_of(root[0])
        assert stack.slack.held == ["chat.postMessage"]  # the root post was the one held
        request_message = await stack.slack.wait_for(
            lambda s: next((m for m in stack.thread() if button(m, ids.CREDENTIAL_OPEN)), None)
        )

        # Someone else clicks the button: refused privately, no modal.
        await stack.click(request_message, ids.CREDENTIAL_OPEN, user_id="U2")
        refusal = await stack.slack.wait_for(
            lambda s: [e for e in s.ephemerals if e["user"] == "U2"]
        )
        assert "Only <@U1>" in refusal[0]["text"]
        assert refusal[0]["thread_ts"] == stack.root()["ts"]  # in the thread, by the button
        assert stack.slack.views_opened == []

        # The requester opens the private modal; a malformed key gets an inline error.
        await stack.click(request_message, ids.CREDENTIAL_OPEN, user_id="U1")
        await stack.slack.wait_for(lambda s: s.views_opened)
        view = stack.slack.views_opened[-1]
        assert view["private_metadata"] == button(request_message, ids.CREDENTIAL_OPEN)["value"]
        status, body, _ = await stack.submit(
            view, {ids.CREDENTIAL_INPUT_BLOCK: {ids.CREDENTIAL_INPUT: "has space"}}, "U1"
        )
        assert json.loads(body)["response_action"] == "errors"
        status, body, _ = await stack.submit(
            view, {ids.CREDENTIAL_INPUT_BLOCK: {ids.CREDENTIAL_INPUT: KEY}}, "U1"
        )
        assert status == 200 and "errors" not in body

        summary = await stack.slack.wait_for(
            lambda s: next((m for m in stack.thread() if "Run finished" in text_of(m)), None),
            timeout=30,
        )
        assert_default_team_transcript(stack.thread(), summary)
        # The root is refreshed just after the summary is posted.
        final_root = await stack.slack.wait_for(
            lambda s: "Completed" in text_of(stack.root()) and stack.root()
        )
        assert "Completed" in text_of(final_root) and button(final_root, ids.STOP_RUN) is None

        agent_requests = stack.llm.requests_for(AGENT_MODEL)
        assert len(agent_requests) == 3
        assert all(r.headers.get("Authorization") == f"Bearer {KEY}" for r in stack.llm.requests)
        assert stack.slack.problems == []


async def test_approval_buttons_decided_once_by_whom_may(tmp_path: Path, secret_key: str) -> None:
    async with running_stack(tmp_path, secret_key, valid_keys={KEY}, approvers="UBOSS") as stack:
        stack.llm.script(AGENT_MODEL, ["Plan: say 5.", "2+2=5", "Reviewed. TERMINATE"])
        stack.llm.script(
            VERIFIER_MODEL,
            [
                verdict(
                    "fail",
                    "2+2 is 4, not 5.",
                    [{"type": "revise", "label": "Fix it", "params": {}}],
                ),
            ],
        )
        stack.llm.default(VERIFIER_MODEL, verdict())
        await _start_and_add_key(stack)

        offer = await stack.slack.wait_for(
            lambda s: next((m for m in stack.thread() if button(m, ids.APPROVE_PREFIX)), None),
            timeout=20,
        )
        assert "2+2 is 4, not 5." in text_of(offer)
        offer = copy.deepcopy(offer)  # the emulator updates its copy in place; keep the buttons
        await stack.click(offer, f"{ids.APPROVE_PREFIX}0", user_id="U2")
        await stack.slack.wait_for(lambda s: [e for e in s.ephemerals if e["user"] == "U2"])
        assert button(stack.slack.messages[("C1", offer["ts"])], ids.APPROVE_PREFIX) is not None

        await stack.click(offer, f"{ids.APPROVE_PREFIX}0", user_id="UBOSS")
        decided = await stack.slack.wait_for(
            lambda s: (
                "chosen by <@UBOSS>" in text_of(s.messages[("C1", offer["ts"])])
                and s.messages[("C1", offer["ts"])]
            )
        )
        assert button(decided, ids.APPROVE_PREFIX) is None
        await stack.click(offer, f"{ids.APPROVE_PREFIX}1", user_id="U1")
        late = await stack.slack.wait_for(lambda s: [e for e in s.ephemerals if e["user"] == "U1"])
        assert "already decided" in late[-1]["text"]

        await stack.slack.wait_for(
            lambda s: next((m for m in stack.thread() if "Run finished" in text_of(m)), None),
            timeout=30,
        )
        prompts = json.dumps([r.json for r in stack.llm.requests_for(AGENT_MODEL)])
        assert "2+2 is 4, not 5." in prompts  # the feedback reached the team
        # ... and the agent whose message was judged (the planner) answers it first.
        speakers = [m["text"].split(":")[0] for m in stack.thread() if "turn " in text_of(m)]
        assert speakers[:2] == ["planner", "planner"], speakers
        assert stack.slack.problems == []


async def test_bad_signature_and_stale_timestamp_are_rejected(
    tmp_path: Path, secret_key: str
) -> None:
    import time

    from tests.fakes.slack_signing import slash_command

    async with running_stack(tmp_path, secret_key, valid_keys={KEY}) as stack:
        body, content_type = slash_command(text="do something risky")
        status, _, _ = await stack.sender.post(stack.url, body, content_type, "wrong-secret")
        assert status == 401
        stale = int(time.time()) - 6 * 60
        status, _, _ = await stack.sender.post(
            stack.url, body, content_type, "e2e-signing-secret-0123456789abcdef", timestamp=stale
        )
        assert status == 401
        assert stack.slack.calls_to("chat.postMessage") == []
        status, _, _ = await stack.command("help")
        assert status == 200


async def test_transcript_complete_when_slack_rate_limits(tmp_path: Path, secret_key: str) -> None:
    async with running_stack(tmp_path, secret_key, valid_keys={KEY}) as stack:
        stack.llm.script(AGENT_MODEL, ["Plan.", "Work.", "Done. TERMINATE"])
        stack.llm.default(VERIFIER_MODEL, verdict())
        stack.slack.fail_ratio("chat.postMessage", ratio=0.3, status=429, retry_after=0, seed=7)
        await _start_and_add_key(stack)
        await stack.slack.wait_for(
            lambda s: next((m for m in stack.thread() if "Run finished" in text_of(m)), None),
            timeout=40,
        )
        thread = stack.thread()
        assert sum("turn " in text_of(m) for m in thread) == 3
        limited = [c for c in stack.slack.calls_to("chat.postMessage") if c.status == 429]
        assert limited, "the test should have seen rate limiting"
        bodies = [json.dumps(m.get("blocks")) for m in thread]
        assert len(bodies) == len(set(bodies)), "a message was posted twice"
        assert stack.slack.problems == []


async def test_help_and_unknown_input(tmp_path: Path, secret_key: str) -> None:
    async with running_stack(tmp_path, secret_key, valid_keys={KEY}) as stack:
        for text, problem in (
            ("", "Tell me what the team should do"),
            ("help", None),
            ("x", "`x` is not a command I know"),
        ):
            status, body, _ = await stack.command(text)
            assert status == 200, body
            answer = json.loads(body)  # help is answered in the ack itself
            shown = text_of(answer)
            assert answer["text"] == "AutoGen help"
            assert ("/autogen &lt;task&gt;" in shown) or ("/autogen <task>" in shown), shown
            assert problem is None or problem in shown, shown
        # Nothing was started or posted: help is all there is.
        assert stack.slack.calls_to("chat.postMessage") == []
        assert [r for posts in stack.slack.responses.values() for r in posts] == []
        assert await stack.stored_runs() == []

        status, body, _ = await stack.command("Write things", channel_id="C999")
        assert (status, body) == (200, "")
        assert "Invite me first" in (await stack.reply())["text"]
        await assert_refused_not_in_channel(stack, "C999")
        assert stack.slack.problems == []


async def test_each_agent_posts_as_itself_and_the_header_names_it_without_the_scope(
    tmp_path: Path, secret_key: str
) -> None:
    script = ["1. Pick a theme.", "Queues wait in line", "Good. TERMINATE"]
    async with running_stack(tmp_path, secret_key, valid_keys={KEY}) as stack:
        stack.llm.script(AGENT_MODEL, script)
        stack.llm.default(VERIFIER_MODEL, verdict())
        await _start_and_add_key(stack)
        await stack.slack.wait_for(
            lambda s: any("Run finished" in text_of(m) for m in stack.thread()), timeout=30
        )
        agents = [m for m in stack.thread() if "turn " in text_of(m)]
        assert [m.get("username") for m in agents] == ["Planner", "Worker", "Reviewer"]
        expected = [
            identity_for(name, {})["icon_emoji"] for name in ("planner", "worker", "reviewer")
        ]
        assert [m["icons"]["emoji"] for m in agents] == expected  # stable per agent name
        # The verdict rides on each agent's message, visibly the verifier's.
        assert all("Verifier: pass" in text_of(m) for m in agents)
        others = [m for m in stack.thread() if m not in agents]
        assert all("username" not in m for m in others)  # the app's own messages are its own
    async with running_stack(
        tmp_path / "no-scope", secret_key, valid_keys={KEY}, slack_scopes={"commands", "chat:write"}
    ) as stack:
        stack.llm.script(AGENT_MODEL, script)
        stack.llm.default(VERIFIER_MODEL, verdict())
        await _start_and_add_key(stack)
        await stack.slack.wait_for(
            lambda s: any("Run finished" in text_of(m) for m in stack.thread()), timeout=30
        )
        agents = [m for m in stack.thread() if "turn " in text_of(m)]
        assert [m.get("username") for m in agents] == [None, None, None]
        assert "*planner* · turn 1" in json.dumps(agents[0]["blocks"], ensure_ascii=False)
        assert stack.slack.ignored_customizations == []  # the app did not even try


async def test_feedback_on_the_result_counts_once_per_person(
    tmp_path: Path, secret_key: str
) -> None:
    async with running_stack(tmp_path, secret_key, valid_keys={KEY}) as stack:
        stack.llm.script(AGENT_MODEL, ["1. Plan.", "Done.", "Good. TERMINATE"])
        stack.llm.default(VERIFIER_MODEL, verdict())
        await _start_and_add_key(stack)
        summary = await stack.slack.wait_for(
            lambda s: next((m for m in stack.thread() if "Run finished" in text_of(m)), None),
            timeout=30,
        )
        assert "feedback_buttons" in json.dumps(summary["blocks"])
        clicks = (("U2", "positive"), ("U2", "positive"), ("U3", "negative"), ("U3", "positive"))
        for count, (user, thumb) in enumerate(clicks, start=1):  # one at a time: in order
            await stack.click(summary, ids.RUN_FEEDBACK, user_id=user, value=thumb)
            await stack.slack.wait_for(lambda s, n=count: len(s.ephemerals) == n)
        answers = [e["text"] for e in stack.slack.ephemerals]
        assert "is recorded" in answers[0] and "already recorded" in answers[1]
        assert "is recorded" in answers[2] and "is changed" in answers[3]
        run = (await stack.stored_runs())[0]
        store = await Store.open(stack.settings)
        try:
            assert await store.feedback.tally(run.id) == {"good": 2, "bad": 0}
        finally:
            await store.close()
