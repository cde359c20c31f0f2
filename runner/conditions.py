"""Termination conditions the default team needs and AutoGen cannot write as JSON.

AutoGen's `TextMentionTermination(text, sources=[...])` drops `sources` when it is dumped
to component JSON, and `TextMention & SourceMatch` is not the same thing once a condition
lives across turns (the text from one agent and the source of another would add up). This
condition says exactly "one of these agents wrote this text", and survives the round trip.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Self

from autogen_agentchat.base import TerminatedException, TerminationCondition
from autogen_agentchat.messages import BaseAgentEvent, BaseChatMessage, StopMessage
from autogen_core import Component
from pydantic import BaseModel


class TextMentionFromConfig(BaseModel):
    text: str
    sources: list[str]


class TextMentionFromTermination(TerminationCondition, Component[TextMentionFromConfig]):
    """Stop when a message from one of `sources` contains `text`."""

    component_config_schema = TextMentionFromConfig
    component_provider_override = "runner.conditions.TextMentionFromTermination"

    def __init__(self, text: str, sources: Sequence[str]) -> None:
        self._text = text
        self._sources = list(sources)
        self._terminated = False

    @property
    def terminated(self) -> bool:
        return self._terminated

    async def __call__(
        self, messages: Sequence[BaseAgentEvent | BaseChatMessage]
    ) -> StopMessage | None:
        if self._terminated:
            raise TerminatedException("Termination condition has already been reached")
        for message in messages:
            if message.source in self._sources and self._text in message.to_text():
                self._terminated = True
                return StopMessage(
                    content=f"{message.source} wrote '{self._text}'",
                    source="TextMentionFromTermination",
                )
        return None

    async def reset(self) -> None:
        self._terminated = False

    def _to_config(self) -> TextMentionFromConfig:
        return TextMentionFromConfig(text=self._text, sources=self._sources)

    @classmethod
    def _from_config(cls, config: TextMentionFromConfig) -> Self:
        return cls(config.text, config.sources)
