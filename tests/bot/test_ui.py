"""Block builders: every payload is valid Block Kit within Slack's limits, whatever the input."""

from __future__ import annotations

import json

import pytest

from bot.commands import Command, parse
from bot.ui import blocks as ui
from bot.ui import modals
from bot.ui.credential_modal import credential_modal
from bot.ui.text import split_text
from runner.providers import ProviderTable
from tests.fakes.slack_api import find_block_problems, find_message_problems, find_view_problems

LONG = ("A paragraph of agent output with **bold** and `code`.\n\n" * 400).strip()
HOSTILE = "<!channel> <@U123> & <https://evil.example|click> " * 50


def _valid(text: str, blocks: list[dict]) -> None:
    assert find_block_problems(blocks) == []
    error, reasons = find_message_problems({"text": text, "blocks": blocks})
    assert error is None, reasons
    assert text.strip()


@pytest.mark.parametrize("content", ["short", LONG, HOSTILE, "", "x" * 20_000])
def test_agent_messages_split_and_valid(content: str) -> None:
    parts = ui.agent_message(
        source="worker", content=content, turn=3, verdict={"verdict": "fail", "reason": HOSTILE}
    )
    assert parts
    for text, blocks in parts:
        _valid(text, blocks)
    # The verdict rides on the last part, whatever the length, and on no earlier part.
    assert "Verifier: fail" in json.dumps(parts[-1][1])
    assert [i for i, (_, blocks) in enumerate(parts[:-1]) if "Verifier" in json.dumps(blocks)] == []


def test_every_builder_is_valid_with_hostile_input() -> None:
    builders = [
        ui.root_message(
            run_id="r1", task=HOSTILE * 10, requester_id="U1", status="running", detail=HOSTILE
        ),
        ui.root_message(run_id="r1", task="t", requester_id="U1", status="completed"),
        ui.credential_request(
            user_id="U1", provider="openrouter", reason=HOSTILE, request_id="q1", rejected=True
        ),
        ui.credential_received(user_id="U1", provider="openrouter"),
        ui.actions_offered(
            reason=HOSTILE * 5,
            actions=[
                {"id": f"a{i}", "type": "revise", "label": "L" * 90, "params": {}}
                for i in range(30)
            ],
        ),
        ui.action_decided(reason=HOSTILE, label="Fix", decided_by="U2", auto=False),
        ui.actions_closed(reason=HOSTILE),
        ui.credential_closed(provider="openrouter", status="expired"),
        ui.info(HOSTILE),
        ui.error(HOSTILE),
        ui.summary(
            {
                "status": "failed",
                "outcome": LONG,
                "turns": 3,
                "prompt_tokens": 10,
                "completion_tokens": 5,
                "duration_s": 1.5,
            }
        ),
    ]
    for text, blocks in builders:
        _valid(text, blocks)
    assert "<!channel>" not in str(builders[0][1])  # user text cannot ping the channel


def test_modal_and_ephemeral_blocks_are_valid() -> None:
    view = credential_modal(
        request_id="q" * 32, provider=ProviderTable().get("openrouter"), reason=HOSTILE * 20
    )
    assert find_view_problems(view) == []
    assert "only on your screen" in str(view)
    assert find_block_problems(modals.help_blocks("problem")) == []
    assert (
        find_block_problems(modals.credentials_list([(f"p{i}", "added") for i in range(60)])) == []
    )
    assert find_block_problems(modals.status_blocks(["• row"] * 200)) == []


def test_split_text_keeps_everything() -> None:
    parts = split_text(LONG, 500)
    assert all(len(p) <= 500 for p in parts)
    assert "".join(p.replace("\n", "").replace(" ", "") for p in parts) == LONG.replace(
        "\n", ""
    ).replace(" ", "")


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("", "help"),
        ("help", "help"),
        ("status", "status"),
        ("stop", "stop"),
        ("stop 0123456789abcdef", "stop"),
        ("stop using passive voice in this text: the ball was thrown", "start"),
        ("stop r1", "start"),
        ("stop 0123456789abcdef and summarise", "start"),
        ("credentials", "credentials"),
        ("write a poem", "start"),
        ("help me write", "start"),
        ("x", "help"),
        ("y" * 5000, "help"),
    ],
)
def test_command_parsing(text: str, kind: str) -> None:
    assert parse(text).kind == kind


@pytest.mark.parametrize(
    ("text", "run_id"),
    [
        ("stop", ""),
        ("stop 0123456789abcdef", "0123456789abcdef"),
        ("STOP `0123456789ABCDEF`", "0123456789abcdef"),
    ],
)
def test_stop_takes_only_a_run_id(text: str, run_id: str) -> None:
    assert (parse(text).kind, parse(text).argument) == ("stop", run_id)


def test_a_task_starting_with_stop_is_a_task() -> None:
    text = "stop using passive voice in this text: the report was written by me"
    assert (parse(text).kind, parse(text).argument) == ("start", text)


def test_command_text_arrives_escaped_and_the_task_is_what_was_typed() -> None:
    command = parse("compare a &amp; b where x &lt; 3 &gt; y")
    assert command == Command("start", "compare a & b where x < 3 > y")
    text, blocks = ui.root_message(
        run_id="r1", task=command.argument, requester_id="U1", status="queued"
    )
    shown = json.dumps(blocks) + text
    assert "a &amp; b" in shown and "&amp;amp;" not in shown and "x < 3" not in shown


def test_the_summary_separates_working_time_from_a_long_wait() -> None:
    base = {"status": "completed", "outcome": "Done.", "turns": 3}
    _, quick = ui.summary({**base, "duration_s": 12.5, "working_s": 12.1})
    assert "12.5 s" in json.dumps(quick) and "working" not in json.dumps(quick)
    _, waited = ui.summary({**base, "duration_s": 7300.0, "working_s": 41.0})
    assert "41 s working, 2.0 h in all" in json.dumps(waited)
    _, old = ui.summary({**base, "duration_s": 9.0})  # events written before working_s
    assert "9 s" in json.dumps(old)


def _call(arguments: dict) -> dict:
    return {
        "agent": "work<er>",
        "tool": "github.create_issue",
        "arguments": arguments,
        "call_id": "c",
    }


TOOL_ACTIONS = [{"id": "a1", "type": "approve_tool"}, {"id": "a2", "type": "deny_tool"}]


def test_a_held_call_shows_all_its_arguments_inert() -> None:
    body = "x" * 7000 + " HIDDEN-TAIL"
    text, blocks = ui.tool_approval(
        call=_call({"title": "```*Approved by security*```", "body": body, "to": HOSTILE[:200]}),
        actions=TOOL_ACTIONS,
    )
    _valid(text, blocks)
    shown = json.dumps(blocks)
    assert "HIDDEN-TAIL" in shown  # nothing a person approves is cut away
    assert "```*Approved" not in shown  # a backtick in the arguments closes no code block
    assert "<!channel>" not in shown and "work&lt;er&gt;" in shown
    approve, deny = next(b for b in blocks if b["type"] == "actions")["elements"]
    assert (approve["value"], deny["value"], deny["action_id"]) == ("a1", "a2", "tool_deny")


def test_tool_call_lines_and_results_are_valid_and_inert() -> None:
    calls = [
        {"tool": "fetch_url", "arguments": HOSTILE[:300], "outcome": "ok", "size": 12_345},
        {"tool": "web_search", "arguments": "q", "outcome": "needs_credential", "detail": HOSTILE},
    ] * 6
    parts = ui.agent_message(source="worker", content="Done.", turn=1, tool_calls=calls)
    for text, blocks in parts:
        _valid(text, blocks)
    shown = json.dumps(parts[-1][1])
    assert "12.3k chars" in shown and "and 4 more calls" in shown and "<!channel>" not in shown
    summary = ui.agent_message(
        source="worker", content="raw tool output " * 500, turn=1, results_only=True
    )
    assert "not all shown" in json.dumps(summary) and len(summary) == 1
    for builder in (
        ui.tool_decided(call=_call({"a": 1}), decided_by="U1", approved=False, note=HOSTILE),
        ui.tool_closed(call=_call({"a": 1})),
        ui.tool_running(tool="fetch_url", arguments=HOSTILE, decided_by="<!here>"),
        ui.tool_ran(
            {"tool": "fetch_url", "arguments": "x", "outcome": "unknown", "decided_by": "U1"}
        ),
        ui.warning(HOSTILE),
    ):
        _valid(*builder)
        assert "<!channel>" not in json.dumps(builder[1]) and "<!here>" not in json.dumps(
            builder[1]
        )


@pytest.mark.parametrize(
    ("text", "kind", "team", "task"),
    [
        ("teams", "teams", None, ""),
        ("--team research find three sources", "start", "research", "find three sources"),
        ("--team=Research find x", "start", "research", "find x"),
        ("--TEAM `ops` restart the deploy", "start", "ops", "restart the deploy"),
        ("--team research status", "start", "research", "status"),
        ("--team research", "help", None, ""),
        ("--team", "help", None, ""),
        ("--teams are great", "help", None, ""),
        ("plan with --team x later", "start", None, "plan with --team x later"),
    ],
)
def test_team_option(text: str, kind: str, team: str | None, task: str) -> None:
    parsed = parse(text)
    assert (parsed.kind, parsed.team) == (kind, team)
    if kind == "start":
        assert parsed.argument == task


def test_the_teams_list_is_valid_and_inert() -> None:
    blocks = modals.teams_blocks(
        [("default", HOSTILE), *((f"t{i}", "d" * 100) for i in range(60))], "No such team."
    )
    assert find_block_problems(blocks) == []
    assert "<!channel>" not in json.dumps(blocks) and "more" in json.dumps(blocks)
    assert "`t59`" in json.dumps(modals.teams_blocks([(f"t{i}", "d") for i in range(60)]))


def test_the_summary_carries_feedback_buttons_for_its_run() -> None:
    text, blocks = ui.summary({"run_id": "0123456789abcdef" * 2, "status": "completed", "turns": 1})
    _valid(text, blocks)
    feedback = blocks[-1]["elements"][0]
    assert blocks[-1]["type"] == "context_actions" and feedback["type"] == "feedback_buttons"
    assert feedback["positive_button"]["value"] == "good:" + "0123456789abcdef" * 2
    assert feedback["negative_button"]["value"].startswith("bad:")
    assert "context_actions" not in json.dumps(ui.summary({"status": "completed"})[1])


def test_the_home_tab_and_the_add_key_form_are_valid_with_hostile_input() -> None:
    from bot.ui.credential_modal import add_key_modal
    from bot.ui.home import HomeRun, home_view

    runs = [
        HomeRun(f"r{i}", "running", HOSTILE, "C1", "https://w.slack.com/archives/C1/p1")
        for i in range(30)
    ]
    view = home_view(
        runs=runs,
        keys=[(f"p{i}", HOSTILE[:60]) for i in range(40)],
        teams=[(f"t{i}", HOSTILE) for i in range(40)],
    )
    assert find_block_problems(view["blocks"], "modal") == [] and len(view["blocks"]) <= 100
    assert "<!channel>" not in json.dumps(view)
    empty = home_view(runs=[], keys=[], teams=[("default", "")])
    assert "No runs yet" in json.dumps(empty) and "No stored keys" in json.dumps(empty)
    form = add_key_modal([ProviderTable().get(name) for name in ProviderTable().names])
    assert find_view_problems(form) == []
