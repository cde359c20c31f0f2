"""Agent and user text reaches Slack inert: no pings, no forged links, escaped exactly once."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from bot.ui import blocks as ui
from bot.ui.text import SECTION_LIMIT, split_text, to_mrkdwn
from tests.fakes.slack_api import find_block_problems, find_message_problems

INJECTIONS = ["<!channel>", "<!here>", "<@U1>", "<#C1>", "<https://evil|bank>"]
# Markdown whose links the converter would turn into mentions: `<!here|x>`, `<@U1>`.
MARKDOWN_MENTIONS = ["[x](!here)", "![img](@U1)", "[y](#C1)"]


def _texts(value: Any) -> list[str]:
    """Every `text` string in a block tree."""
    if isinstance(value, dict):
        found = [value["text"]] if isinstance(value.get("text"), str) else []
        return found + [t for v in value.values() for t in _texts(v)]
    if isinstance(value, list):
        return [t for v in value for t in _texts(v)]
    return []


def _sequences(text: str) -> list[str]:
    """The `<…>` control sequences Slack would act on (mentions, links)."""
    return re.findall(r"<[^<>]*>", text)


def _shown(message: tuple[str, list[dict[str, Any]]]) -> list[str]:
    """The fallback, then every text in the blocks; the message must be valid Block Kit."""
    text, blocks = message
    assert find_block_problems(blocks) == []
    assert find_message_problems({"text": text, "blocks": blocks})[0] is None
    return [text, *_texts(blocks)]


def _agent_says(content: str) -> tuple[str, str]:
    """(fallback, section text) of a one-part agent message."""
    (message,) = ui.agent_message(source="worker", content=content, turn=1)
    fallback, _header, section = _shown(message)
    return fallback, section


@pytest.mark.parametrize("hostile", INJECTIONS + MARKDOWN_MENTIONS)
def test_agent_content_is_inert_in_blocks_and_fallback(hostile: str) -> None:
    content = f"Note {hostile} please"
    shown = [
        *_shown(ui.agent_message(source="worker", content=content, turn=1)[0]),
        *_shown(ui.summary({"status": "completed", "outcome": content})),
    ]
    assert all(_sequences(text) == [] for text in shown), shown


@pytest.mark.parametrize("hostile", INJECTIONS)
def test_escaped_text_shows_what_was_written(hostile: str) -> None:
    escaped = hostile.replace("<", "&lt;").replace(">", "&gt;")
    assert all(escaped in text for text in _agent_says(hostile))


@pytest.mark.parametrize("hostile", INJECTIONS)
def test_root_message_fallback_escapes_the_task(hostile: str) -> None:
    text, blocks = ui.root_message(
        run_id="0123456789abcdef", task=f"do {hostile}", requester_id="U9", status="queued"
    )
    assert _sequences(text) == []
    assert [s for t in _texts(blocks) for s in _sequences(t)] == ["<@U9>"]


def test_markdown_links_still_work() -> None:
    for text in _agent_says("See [docs](https://example.com)."):
        assert _sequences(text) == ["<https://example.com|docs>"]
    assert "<https://example.com|docs>" in ui.summary({"outcome": "[docs](https://example.com)"})[0]


def test_ampersand_is_escaped_exactly_once() -> None:
    for text in _agent_says("a & b"):
        assert "a &amp; b" in text and "&amp;amp;" not in text
    text, blocks = ui.summary({"status": "completed", "outcome": "a & b"})
    assert "a &amp; b" in text and "&amp;amp;" not in text
    assert "a &amp; b" in str(blocks) and "&amp;amp;" not in str(blocks)


def test_markdown_quotes_and_formatting_survive_escaping() -> None:
    assert to_mrkdwn("> quoted **bold**") == "> quoted *bold*"


def test_escaping_that_lengthens_text_still_splits_within_limits() -> None:
    """`&` grows fivefold; splitting happens after escaping and never cuts an entity."""
    content = "a" + "&" * 4000 + " <!channel>"
    parts = ui.agent_message(source="worker", content=content, turn=1)
    assert len(parts) > 1
    chunks = split_text(to_mrkdwn(content))
    assert all(len(chunk) <= SECTION_LIMIT for chunk in chunks)
    assert all(
        "&" not in chunk.replace("&amp;", "").replace("&lt;", "").replace("&gt;", "")
        for chunk in chunks
    )
    for message in parts:
        assert all(_sequences(text) == [] for text in _shown(message))


def test_bare_broadcast_words_cannot_notify_but_emails_stay_intact() -> None:
    (text, blocks), *_ = ui.agent_message(
        source="worker", content="Ping @channel, @here and @Everyone; mail ops@here.org", turn=1
    )
    shown = json.dumps(blocks, ensure_ascii=False) + text
    for word in ("@channel", "@here", "@Everyone"):
        assert word not in shown.replace("ops@here.org", "")
        assert word.replace("@", "@\u2060") in shown
    assert "ops@here.org" in shown


def test_a_cancellation_names_who_cancelled_as_a_mention() -> None:
    text, blocks = ui.summary(
        {"status": "cancelled", "outcome": "Cancelled by <@U123>.", "cancelled_by": "U123"}
    )
    assert "Cancelled by <@U123>." in json.dumps(blocks) and "<@U123>" in text
    text, blocks = ui.summary({"status": "cancelled", "outcome": "x", "cancelled_by": "<!channel>"})
    assert "<!channel>" not in json.dumps(blocks) + text


def test_a_long_code_block_is_closed_and_reopened_across_parts() -> None:
    code = "\n".join(f"    line_{i} = compute(*x*, _y_)  # step {i}" for i in range(120))
    markdown = f"Intro.\n\n```python\n{code}\n```\n\nAfter."
    parts = ui.agent_message(source="worker", content=markdown, turn=1)
    assert len(parts) >= 2
    sections = [
        block["text"]["text"]
        for _, blocks in parts
        for block in blocks
        if block["type"] == "section"
    ]
    assert all(section.count("```") % 2 == 0 for section in sections)
    assert "python" not in "".join(sections)  # the language tag is not shown as code
    assert all(section.startswith("```\n    line_") for section in sections[1:])
    assert all(len(section) <= SECTION_LIMIT for section in sections)
    for text, blocks in parts:
        assert find_block_problems(blocks) == []
        assert find_message_problems({"text": text, "blocks": blocks})[1] == []


def test_help_shows_angle_brackets_instead_of_making_links() -> None:
    from bot.commands import parse
    from bot.ui import modals

    shown = json.dumps(modals.help_blocks(parse("").problem))
    assert "<task>" not in shown and "&lt;task&gt;" in shown
    assert "<@" not in json.dumps(modals.help_blocks(parse("<@").problem))
