"""The verifier: a second LLM that judges each agent message and suggests actions.

It talks through an AutoGen `ChatCompletionClient` (the OpenAI one in production, a replay
client in tests). Whatever goes wrong (malformed JSON, a timeout, a provider error) becomes
an `uncertain` verdict with the reason: the verifier can never crash a run.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from autogen_core.models import ChatCompletionClient, SystemMessage, UserMessage
from pydantic import BaseModel, Field, ValidationError

from runner.redact import redact
from store.settings import ACTION_TYPES

Verdict = Literal["pass", "fail", "uncertain"]
MAX_TRANSCRIPT_CHARS = 12_000

SYSTEM_PROMPT = """You are the verifier of a multi-agent team's work.
You judge ONE agent message (the last one) in the context of the task and the recent
conversation. Reply with a single JSON object and nothing else:
{"verdict": "pass" | "fail" | "uncertain",
 "reason": "<one or two sentences>",
 "suggested_actions": [{"type": "<action>", "label": "<button text, max 30 chars>",
                        "params": {...}}]}
verdict "pass": the message is a correct, useful step toward the task.
verdict "fail": it is wrong, unsafe, off-task or fabricated; suggest actions.
verdict "uncertain": you cannot tell.
Action types: "revise" (params: {"feedback": "<what to fix>"}), "continue", "stop",
"request_credential" (params: {"provider": "<name>", "reason": "<why>"}).
Suggest actions only with a "fail" verdict."""


class SuggestedAction(BaseModel):
    type: str
    label: str = Field(default="", max_length=200)
    params: dict[str, Any] = Field(default_factory=dict)


class VerdictModel(BaseModel):
    verdict: Verdict
    reason: str = Field(default="", max_length=4000)
    suggested_actions: list[SuggestedAction] = Field(default_factory=list)


@dataclass(frozen=True)
class VerifierResult:
    verdict: Verdict
    reason: str
    suggested_actions: list[dict[str, Any]] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def as_payload(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "reason": self.reason,
            "suggested_actions": self.suggested_actions,
        }


def _uncertain(reason: str) -> VerifierResult:
    return VerifierResult("uncertain", reason)


def default_label(action_type: str) -> str:
    """The button text of an action type the verifier (or the runner) offers unlabelled."""
    return {
        "revise": "Revise",
        "continue": "Continue anyway",
        "stop": "Stop the run",
        "request_credential": "Ask for a credential",
    }.get(action_type, action_type)


def parse_verdict(text: str) -> VerifierResult:
    """Parse the model's reply; anything off-contract becomes `uncertain` with the reason."""
    cleaned = text.strip()
    if cleaned.startswith("```"):
        cleaned = cleaned.strip("`")
        cleaned = cleaned.removeprefix("json").strip()
    try:
        parsed = VerdictModel.model_validate(json.loads(cleaned))
    except (ValueError, ValidationError):
        return _uncertain("The verifier's answer was not valid verdict JSON.")
    actions = [
        {
            "type": action.type,
            "label": (action.label or default_label(action.type))[:30],
            "params": action.params,
        }
        for action in parsed.suggested_actions
        if action.type in ACTION_TYPES
    ]
    return VerifierResult(parsed.verdict, parsed.reason.strip() or "(no reason given)", actions)


ClientFactory = Callable[[str], ChatCompletionClient]
"""Builds the verifier's model client from the LLM key."""


class Verifier:
    def __init__(self, client_factory: ClientFactory, *, timeout_s: float) -> None:
        self._client_factory = client_factory
        self._timeout_s = timeout_s

    async def judge(
        self,
        *,
        api_key: str,
        task: str,
        transcript: list[tuple[str, str]],
        message: tuple[str, str],
    ) -> VerifierResult:
        """Judge `message` (source, content) given the task and earlier (source, content)."""
        history = "\n\n".join(f"[{source}]\n{content}" for source, content in transcript)
        prompt = (
            f"TASK:\n{task}\n\nRECENT CONVERSATION:\n{history[-MAX_TRANSCRIPT_CHARS:]}\n\n"
            f"MESSAGE TO JUDGE (from {message[0]}):\n{message[1][-MAX_TRANSCRIPT_CHARS:]}"
        )
        client = self._client_factory(api_key)
        try:
            result = await asyncio.wait_for(
                client.create(
                    [
                        SystemMessage(content=SYSTEM_PROMPT),
                        UserMessage(content=prompt, source="runner"),
                    ],
                    json_output=client.model_info.get("json_output", False) or None,
                ),
                timeout=self._timeout_s,
            )
        except TimeoutError:
            return _uncertain(f"The verifier did not answer within {self._timeout_s:g} s.")
        except Exception as exc:  # any provider failure is a verdict, not a crash
            return _uncertain(
                redact(f"The verifier could not be reached ({type(exc).__name__}).", [api_key])
            )
        finally:
            await client.close()
        content = result.content if isinstance(result.content, str) else ""
        verdict = parse_verdict(content)
        return VerifierResult(
            verdict.verdict,
            redact(verdict.reason, [api_key]),
            verdict.suggested_actions,
            result.usage.prompt_tokens,
            result.usage.completion_tokens,
        )
