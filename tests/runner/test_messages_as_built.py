"""The runner's model clients send chat messages as AutoGen built them: the same request
the OpenAI SDK sends, without its transform walking every message of the prompt (work
that grew with each turn of a long run)."""

from __future__ import annotations

from typing import Any

import openai._utils._transform as transform
import pytest
from autogen_core import FunctionCall
from autogen_core.models import (
    AssistantMessage,
    FunctionExecutionResult,
    FunctionExecutionResultMessage,
    SystemMessage,
    UserMessage,
)
from openai import AsyncOpenAI

from runner.openai_messages import send_messages_as_built
from runner.openai_pool import PooledOpenAIChatCompletionClient
from tests.fakes.llm_server import FakeLLMServer

KEY = "sk-as-built-key-0001"
MODEL = "agent-model"


def _prompt(turns: int) -> list[Any]:
    prompt: list[Any] = [SystemMessage(content="You are a planner.")]
    for n in range(turns):
        prompt.append(UserMessage(content=f"step {n}: carry on", source="user"))
        prompt.append(AssistantMessage(content=f"done step {n} · ünïcode", source="planner"))
    prompt.append(
        AssistantMessage(
            content=[FunctionCall(id="call_1", name="fetch_url", arguments='{"url": "x"}')],
            source="planner",
        )
    )
    prompt.append(
        FunctionExecutionResultMessage(
            content=[FunctionExecutionResult(call_id="call_1", content="page", name="fetch_url")]
        )
    )
    return prompt


async def _bodies(llm: FakeLLMServer, *, as_built: bool, turns: int) -> dict:
    """The JSON the fake model received for one AutoGen call over `turns` turns."""
    client = PooledOpenAIChatCompletionClient(
        model=MODEL,
        api_key=KEY,
        base_url=llm.base_url,
        model_info={
            "vision": False,
            "function_calling": True,
            "json_output": False,
            "family": "unknown",
            "structured_output": False,
        },
    )
    if not as_built:  # the SDK's own resource, as AutoGen's client has it
        vars(client._client.chat).pop("completions")
    await client.create(_prompt(turns), extra_create_args={"temperature": 0.2})
    await client.close()
    return llm.requests[-1].json


async def test_the_request_is_the_one_the_sdk_sends() -> None:
    async with FakeLLMServer(valid_keys={KEY}) as llm:
        llm.default(MODEL, "ok")
        ours = await _bodies(llm, as_built=True, turns=3)
        sdk = await _bodies(llm, as_built=False, turns=3)
    assert ours == sdk
    assert ours["messages"][0] == {"role": "system", "content": "You are a planner."}
    assert ours["temperature"] == 0.2 and len(ours["messages"]) == 9


async def test_the_transform_does_not_walk_the_prompt(monkeypatch: pytest.MonkeyPatch) -> None:
    """Counted, not timed: the transform's calls for a 100-turn prompt are as many as for
    a 1-turn prompt (through the SDK's own path they grow with every message)."""
    calls = 0
    real = transform._async_transform_recursive

    async def counted(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        return await real(*args, **kwargs)

    monkeypatch.setattr(transform, "_async_transform_recursive", counted)
    counts = {}
    async with FakeLLMServer(valid_keys={KEY}) as llm:
        llm.default(MODEL, "ok")
        for as_built in (True, False):
            for turns in (1, 100):
                calls = 0
                await _bodies(llm, as_built=as_built, turns=turns)
                counts[as_built, turns] = calls
    assert counts[True, 1] == counts[True, 100]
    assert counts[False, 100] > counts[False, 1] + 100


async def test_messages_that_are_not_plain_data_take_the_sdks_path() -> None:
    """A model object (a reply passed back as a message, as callers of the SDK do) needs
    the transform to become JSON: it goes the SDK's way. So does a caller's own
    `extra_body` messages, which win as they do in the SDK."""
    async with FakeLLMServer(valid_keys={KEY}) as llm:
        llm.default(MODEL, "the reply")
        client = AsyncOpenAI(api_key=KEY, base_url=llm.base_url)
        send_messages_as_built(client)
        question = {"role": "user", "content": "hi"}
        first = await client.chat.completions.create(model=MODEL, messages=[question])
        await client.chat.completions.create(
            model=MODEL, messages=[question, first.choices[0].message]
        )
        await client.chat.completions.create(
            model=MODEL,
            messages=(question,),
            extra_body={"messages": [{"role": "user", "content": "the caller's own"}]},
        )
        await client.close()
    assert llm.requests[0].json["messages"] == [question]
    passed_back = llm.requests[1].json["messages"]
    assert passed_back[0] == question
    assert passed_back[1]["role"] == "assistant" and passed_back[1]["content"] == "the reply"
    assert llm.requests[2].json["messages"] == [{"role": "user", "content": "the caller's own"}]
