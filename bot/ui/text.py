"""Agent Markdown for Slack: mrkdwn conversion and splitting within Slack's limits."""

from __future__ import annotations

from markdown_to_mrkdwn import SlackMarkdownConverter

SECTION_LIMIT = 2800  # Slack allows 3,000 per section; keep a margin for the converter.
FALLBACK_LIMIT = 3000  # message `text`; Slack reports msg_too_long near 4,000 in practice.
_converter = SlackMarkdownConverter()


def to_mrkdwn(markdown: str) -> str:
    try:
        return _converter.convert(markdown)
    except Exception:  # noqa: BLE001 - a converter hiccup must not lose the message
        return markdown


def split_text(text: str, limit: int = SECTION_LIMIT) -> list[str]:
    """Split at paragraph, then line, then word boundaries; never return an empty list."""
    text = text.strip() or "(empty message)"
    chunks: list[str] = []
    while len(text) > limit:
        cut = text.rfind("\n\n", 0, limit)
        if cut < limit // 2:
            cut = text.rfind("\n", 0, limit)
        if cut < limit // 2:
            cut = text.rfind(" ", 0, limit)
        if cut < limit // 2:
            cut = limit
        chunks.append(text[:cut].rstrip())
        text = text[cut:].lstrip()
    chunks.append(text)
    return chunks


def plain(text: str, limit: int = FALLBACK_LIMIT) -> str:
    """A notification / screen-reader fallback: short and never empty."""
    text = " ".join(text.split()) or "(empty)"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def escape(text: str) -> str:
    """Escape user text for mrkdwn so it cannot ping channels or forge links."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
