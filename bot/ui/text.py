"""Agent Markdown for Slack: mrkdwn conversion and splitting within Slack's limits."""

from __future__ import annotations

import re

from markdown_to_mrkdwn import SlackMarkdownConverter

SECTION_LIMIT = 2800  # Slack allows 3,000 per section; keep a margin for the converter.
FALLBACK_LIMIT = 3000  # message `text`; Slack reports msg_too_long near 4,000 in practice.
_converter = SlackMarkdownConverter()
_QUOTE = re.compile(r"^&gt; ", re.MULTILINE)
_ANGLED = re.compile(r"<([^<>]*)>")
_WEB_LINK = re.compile(r"(?:https?://|mailto:)[^\s|]+(?:\|.*)?", re.IGNORECASE | re.DOTALL)
_ENTITY_TAIL = re.compile(r"&[a-z]{0,3}$")
FENCE = "```"
FENCE_BREAK = "\n" + FENCE
# Slack shows a fence's language tag ("```python") as the code's first line.
_FENCE_LANGUAGE = re.compile(r"^```[\w+#.-]+[ \t]*$", re.MULTILINE)
# Bare @channel / @here / @everyone may be parsed as mentions in mrkdwn sections; a word
# joiner after the @ keeps them readable and inert.
_BROADCAST = re.compile(r"(?<![\w.])@(channel|here|everyone)\b", re.IGNORECASE)


def inert_broadcasts(text: str) -> str:
    """@channel, @here, @everyone written by an agent notify nobody (a word joiner breaks
    them), as in every message the app posts."""
    return _BROADCAST.sub("@\u2060\\1", text)


def escape(text: str) -> str:
    """Escape user text for mrkdwn so it cannot ping channels or forge links."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def to_mrkdwn(markdown: str) -> str:
    """Agent (or user) Markdown as mrkdwn that shows but never acts.

    The raw text is escaped first, so any `<!channel>`, `<@U…>`, `<#C…>` or `<url|label>`
    the agent wrote is shown literally; the converter adds no escaping of its own, so nothing
    is escaped twice. The only `<…>` left are the links it builds from `[label](url)`, and
    those keep working only when they point at a web or mail address (`[x](!here)` would
    otherwise become `<!here|x>`, a channel ping).
    """
    text = _QUOTE.sub("> ", escape(markdown))  # a lone `>` opens nothing: keep quotes
    text = inert_broadcasts(text)
    try:
        converted = _converter.convert(text)
    except Exception:  # a converter hiccup must not lose the message
        converted = text
    return _FENCE_LANGUAGE.sub(FENCE, _ANGLED.sub(_web_links_only, converted))


def _web_links_only(match: re.Match[str]) -> str:
    if _WEB_LINK.fullmatch(match.group(1)):
        return match.group(0)
    return f"&lt;{match.group(1)}&gt;"


def split_text(text: str, limit: int = SECTION_LIMIT) -> list[str]:
    """Split at paragraph, then line, then word boundaries; never return an empty list.

    Give it text that is already escaped: a cut never falls inside an `&amp;` entity or a
    `<url|label>` link, so escaping after splitting is never needed.
    """
    text = text.strip() or "(empty message)"
    room = limit - 2 * len(FENCE_BREAK)  # for closing and reopening a code block
    chunks: list[str] = []
    in_code = False
    while len(text) > room:
        cut = text.rfind("\n\n", 0, room)
        if cut < room // 2:
            cut = text.rfind("\n", 0, room)
        if cut < room // 2:
            cut = text.rfind(" ", 0, room)
        if cut < room // 2:
            cut = room
        cut = _outside_markup(text, cut)
        chunk = text[:cut].rstrip()
        opened = in_code
        in_code ^= chunk.count(FENCE) % 2 == 1
        # A code block cut in two is closed at the end of one part and reopened in the next,
        # so neither part renders code as text (or text as code).
        chunks.append((FENCE + "\n" if opened else "") + chunk + ("\n" + FENCE if in_code else ""))
        # Inside code, indentation of the next line is content: keep it.
        text = text[cut:].lstrip("\n") if in_code else text[cut:].lstrip()
    chunks.append((FENCE + "\n" if in_code else "") + text)
    return chunks


def _outside_markup(text: str, cut: int) -> int:
    """Move `cut` back so it falls neither inside an entity nor inside a `<…>` link."""
    opened = text.rfind("<", 0, cut)
    if opened > 0 and text.rfind(">", 0, cut) < opened:
        cut = opened
    entity = _ENTITY_TAIL.search(text, 0, cut)
    if entity is not None and entity.start() > 0:
        cut = entity.start()
    return cut


def clip(text: str, limit: int) -> str:
    """Escaped text cut to at most `limit` characters, never through an entity or a link."""
    return text if len(text) <= limit else text[: _outside_markup(text, limit)]


def plain(text: str, limit: int = FALLBACK_LIMIT) -> str:
    """A notification / screen-reader fallback: short and never empty. Escape agent and user
    text before it gets here (`escape`, or `to_mrkdwn` for Markdown)."""
    text = " ".join(text.split()) or "(empty)"
    return text if len(text) <= limit else clip(text, limit - 1) + "…"
