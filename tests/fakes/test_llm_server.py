"""The fake LLM server must answer the real OpenAI clients the way OpenAI does.

Every test goes over HTTP through ``openai.AsyncOpenAI`` or autogen's
``OpenAIChatCompletionClient``, so a mismatch in the wire format (field names, SSE
framing, error shape, auth) makes the client raise or misparse here, before the end-to-end
tests depend on it.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import openai
import pytest
from autogen_agentchat.agents import AssistantAgent
from autogen_agentchat.conditions import MaxMessageTermination, TextMentionTermination
from autogen_agentchat.messages import TextMessage, ToolCallSummaryMessage
from autogen_agentchat.teams import RoundRobinGroupChat
from autogen_core.models import CreateResult, UserMessage
from autogen_ext.models.openai import OpenAIChatCompletionClient

from tests.fakes.llm_server import FakeLLMServer, HttpError, ToolCall

KEY = "sk-test"
MODEL = "agent-model"
MODEL_INFO: Any = {
    "vision": False,
    "function_calling": True,
    "json_output": True,
    "family": "unknown",
    "structured_output": True,
}
FAST_RETRY = {"retry-after-ms": "1"}  # openai ignores "retry-after: 0" and sleeps ~0.5 s


@pytest.fixture
async def llm() -> AsyncIterator[FakeLLMServer]:
    async with FakeLLMServer(valid_keys={KEY}) as server:
        yield server


@pytest.fixture
async def client(llm: FakeLLMServer) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(base_url=llm.base_url, api_key=KEY, max_retries=0) as c:
        yield c


@pytest.fixture
async def autogen_client(llm: FakeLLMServer) -> AsyncIterator[OpenAIChatCompletionClient]:
    model_client = OpenAIChatCompletionClient(
        model=MODEL, api_key=KEY, base_url=llm.base_url, model_info=MODEL_INFO
    )
    yield model_client
    await model_client.close()


def user(text: str) -> list[Any]:
    return [{"role": "user", "content": text}]


# ---------------------------------------------------------------------------
# openai.AsyncOpenAI
# ---------------------------------------------------------------------------


async def test_text_reply_has_openai_fields_and_usage(
    llm: FakeLLMServer, client: openai.AsyncOpenAI
) -> None:
    llm.script(MODEL, ["Hello there, friend"])

    completion = await client.chat.completions.create(
        model=MODEL, messages=[{"role": "system", "content": "Be brief."}, *user("say hi now")]
    )

    assert llm.base_url.startswith("http://127.0.0.1:") and llm.base_url.endswith("/v1")
    assert completion.object == "chat.completion"
    assert completion.id.startswith("chatcmpl-") and completion.created > 0
    assert completion.model == MODEL
    choice = completion.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == "Hello there, friend"
    assert choice.message.tool_calls is None
    assert choice.finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == 5  # "Be brief." + "say hi now"
    assert completion.usage.completion_tokens == 3
    assert completion.usage.total_tokens == 8
    assert llm.remaining(MODEL) == 0


async def test_replies_are_consumed_in_order_then_default_then_terminate(
    llm: FakeLLMServer, client: openai.AsyncOpenAI
) -> None:
    llm.script(MODEL, ["one", "two"])
    llm.default("verifier-model", "verdict")

    async def ask(model: str) -> str | None:
        completion = await client.chat.completions.create(model=model, messages=user("go"))
        return completion.choices[0].message.content

    assert [await ask(MODEL) for _ in range(3)] == ["one", "two", "TERMINATE"]
    assert [await ask("verifier-model") for _ in range(2)] == ["verdict", "verdict"]
    assert await ask("never-scripted") == "TERMINATE"
    assert [r.model for r in llm.requests] == [MODEL] * 3 + ["verifier-model"] * 2 + [
        "never-scripted"
    ]
    assert len(llm.requests_for(MODEL)) == 3 and len(llm.requests_for("verifier-model")) == 2


async def test_tool_call_reply_is_parsed(llm: FakeLLMServer, client: openai.AsyncOpenAI) -> None:
    llm.script(MODEL, [ToolCall("add", {"a": 1, "b": 2}), ToolCall("add", {}, id="call_mine")])
    tools: Any = [
        {
            "type": "function",
            "function": {
                "name": "add",
                "parameters": {"type": "object", "properties": {"a": {}, "b": {}}},
            },
        }
    ]

    first = await client.chat.completions.create(model=MODEL, messages=user("1+2"), tools=tools)
    second = await client.chat.completions.create(model=MODEL, messages=user("0"), tools=tools)

    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    assert choice.message.tool_calls is not None and len(choice.message.tool_calls) == 1
    call = choice.message.tool_calls[0]
    assert call.type == "function" and call.id.startswith("call_")
    assert call.function.name == "add"
    assert json.loads(call.function.arguments) == {"a": 1, "b": 2}
    second_calls = second.choices[0].message.tool_calls
    assert second_calls is not None and second_calls[0].id == "call_mine"


async def test_streaming_text_with_usage(llm: FakeLLMServer, client: openai.AsyncOpenAI) -> None:
    text = "The quick brown fox\njumps  over it."
    llm.script(MODEL, [text])

    stream = await client.chat.completions.create(
        model=MODEL,
        messages=user("tell me a story"),
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]

    assert all(c.object == "chat.completion.chunk" and c.model == MODEL for c in chunks)
    assert len({c.id for c in chunks}) == 1
    content_chunks = [c for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(content_chunks) > 1, "the text should arrive in several pieces"
    assert "".join(c.choices[0].delta.content or "" for c in content_chunks) == text
    assert chunks[0].choices[0].delta.role == "assistant"
    finish = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finish[-1] == "stop" and set(finish[:-1]) == {None}
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.prompt_tokens == 4
    assert chunks[-1].usage.completion_tokens == 7
    assert all(c.usage is None for c in chunks[:-1])
    raw = llm.raw_bodies[-1]
    assert json.loads(raw)["stream"] is True


async def test_streaming_without_usage_ends_with_done_and_no_usage(llm: FakeLLMServer) -> None:
    llm.script(MODEL, ["short answer"])
    async with openai.AsyncOpenAI(base_url=llm.base_url, api_key=KEY, max_retries=0) as c:
        response = await c.chat.completions.with_raw_response.create(
            model=MODEL, messages=user("hi"), stream=True
        )
        body = (await response.http_response.aread()).decode()

    events = [line for line in body.split("\n\n") if line]
    assert response.http_response.headers["content-type"].startswith("text/event-stream")
    assert events[-1] == "data: [DONE]"
    chunks = [json.loads(event.removeprefix("data: ")) for event in events[:-1]]
    assert all("usage" not in chunk for chunk in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


async def test_streaming_tool_call(llm: FakeLLMServer, client: openai.AsyncOpenAI) -> None:
    llm.script(MODEL, [ToolCall("lookup", {"query": "weather in Paris", "days": 3})])

    stream = await client.chat.completions.create(model=MODEL, messages=user("?"), stream=True)
    chunks = [chunk async for chunk in stream]

    deltas = [c.choices[0].delta for c in chunks if c.choices]
    parts = [call for d in deltas for call in d.tool_calls or []]
    assert parts[0].id and parts[0].function and parts[0].function.name == "lookup"
    arguments = "".join((p.function.arguments or "") for p in parts if p.function)
    assert len(parts) > 2 and json.loads(arguments) == {"query": "weather in Paris", "days": 3}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


async def test_wrong_key_is_refused_without_echoing_it(
    llm: FakeLLMServer, client: openai.AsyncOpenAI
) -> None:
    wrong = "sk-wrong-Qx81-secret"
    async with openai.AsyncOpenAI(base_url=llm.base_url, api_key=wrong, max_retries=0) as bad:
        with pytest.raises(openai.AuthenticationError) as caught:
            await bad.chat.completions.create(model=MODEL, messages=user("hi"))

    error = caught.value
    assert error.status_code == 401
    assert error.code == "invalid_api_key"
    assert error.body == {
        "message": "Incorrect API key provided",
        "type": "invalid_request_error",
        "param": None,
        "code": "invalid_api_key",
    }
    assert wrong not in error.response.text and wrong not in str(error)
    assert [r.status for r in llm.requests] == [401]
    assert llm.requests[0].headers["Authorization"] == f"Bearer {wrong}"
    # The right key still works, and a missing header is refused too.
    assert (await client.chat.completions.create(model=MODEL, messages=user("hi"))).choices
    async with openai.AsyncOpenAI(
        base_url=llm.base_url, api_key=KEY, max_retries=0, default_headers={"Authorization": ""}
    ) as anonymous:
        with pytest.raises(openai.AuthenticationError):
            await anonymous.models.list()


async def test_rate_limit_then_success_with_client_retries(llm: FakeLLMServer) -> None:
    llm.script(MODEL, [HttpError(429, headers=FAST_RETRY), "made it"])

    async with openai.AsyncOpenAI(base_url=llm.base_url, api_key=KEY, max_retries=2) as c:
        completion = await c.chat.completions.create(model=MODEL, messages=user("hi"))

    assert completion.choices[0].message.content == "made it"
    assert [r.status for r in llm.requests_for(MODEL)] == [429, 200]
    assert [r.headers["x-stainless-retry-count"] for r in llm.requests] == ["0", "1"]


async def test_http_errors_map_to_openai_exceptions(
    llm: FakeLLMServer, client: openai.AsyncOpenAI
) -> None:
    llm.script(
        MODEL,
        [
            HttpError(429, headers={"retry-after": "0"}),
            HttpError(500),
            HttpError(400, {"error": {"message": "custom", "type": "x", "code": "bad"}}),
        ],
    )

    with pytest.raises(openai.RateLimitError) as rate_limited:
        await client.chat.completions.create(model=MODEL, messages=user("1"))
    with pytest.raises(openai.InternalServerError):
        await client.chat.completions.create(model=MODEL, messages=user("2"))
    with pytest.raises(openai.BadRequestError) as bad:
        await client.chat.completions.create(model=MODEL, messages=user("3"))

    assert rate_limited.value.code == "rate_limit_exceeded"
    assert rate_limited.value.response.headers["retry-after"] == "0"
    assert bad.value.code == "bad" and "custom" in str(bad.value)
    assert [r.status for r in llm.requests] == [429, 500, 400]


async def test_function_replies_and_handlers_see_the_request(
    llm: FakeLLMServer, client: openai.AsyncOpenAI
) -> None:
    def echo(request: dict[str, Any]) -> str:
        return "echo: " + request["messages"][-1]["content"]

    async def intercept(request: dict[str, Any]) -> str | None:
        return "intercepted" if "secret" in request["messages"][-1]["content"] else None

    llm.script(MODEL, [echo, lambda request: ToolCall("f", {"n": len(request["messages"])})])
    llm.set_handler(MODEL, intercept)

    async def ask(text: str) -> Any:
        completion = await client.chat.completions.create(model=MODEL, messages=user(text))
        return completion.choices[0].message

    assert (await ask("ping")).content == "echo: ping"
    assert (await ask("the secret word")).content == "intercepted"
    calls = (await ask("pong")).tool_calls
    assert calls is not None and json.loads(calls[0].function.arguments) == {"n": 1}
    llm.set_handler(MODEL, None)
    assert (await ask("the secret word")).content == "TERMINATE"


async def test_bad_script_is_reported_not_retried(llm: FakeLLMServer) -> None:
    llm.script(MODEL, [lambda request: None])
    with pytest.raises(TypeError):
        llm.script(MODEL, [42])  # type: ignore[list-item]

    async with openai.AsyncOpenAI(base_url=llm.base_url, api_key=KEY, max_retries=2) as c:
        with pytest.raises(openai.InternalServerError):
            await c.chat.completions.create(model=MODEL, messages=user("hi"))

    assert len(llm.requests) == 1
    assert llm.problems and "returned None" in llm.problems[0]


async def test_models_lists_scripted_models(llm: FakeLLMServer, client: openai.AsyncOpenAI) -> None:
    llm.script("b-model", ["x"])
    llm.default("a-model", "y")
    llm.set_handler("c-model", lambda request: None)

    page = await client.models.list()

    assert [model.id for model in page.data] == ["a-model", "b-model", "c-model"]
    assert llm.requests[-1].path == "/v1/models" and llm.requests[-1].method == "GET"


async def test_received_finds_secrets_in_headers_and_bodies(
    llm: FakeLLMServer, client: openai.AsyncOpenAI
) -> None:
    await client.chat.completions.create(
        model=MODEL, messages=user('token "tok-123" café'), extra_headers={"X-Trace": "tr-9"}
    )

    assert llm.received("tok-123") and llm.received("tr-9") and llm.received(KEY)
    assert llm.received('"tok-123" café')  # arrives JSON-escaped
    assert not llm.received("tok-1234")
    assert b"POST /v1/chat/completions HTTP/1.1\r\n" in llm.received_bytes()
    assert json.loads(llm.raw_bodies[0])["messages"][0]["content"] == 'token "tok-123" café'


async def test_requests_the_real_api_refuses_get_400(
    llm: FakeLLMServer, client: openai.AsyncOpenAI
) -> None:
    orphan_tool_reply: Any = [*user("hi"), {"role": "tool", "tool_call_id": "x", "content": "1"}]
    unanswered: Any = [
        *user("hi"),
        {
            "role": "assistant",
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
            ],
        },
        *user("and?"),
    ]
    bad_tool: Any = [{"type": "function", "function": {"name": "has space", "parameters": {}}}]
    bad_name: Any = [{"role": "user", "content": "hi", "name": "Jane Doe"}]

    with pytest.raises(openai.BadRequestError, match="preceeding message with 'tool_calls'"):
        await client.chat.completions.create(model=MODEL, messages=orphan_tool_reply)
    with pytest.raises(openai.BadRequestError, match="did not have response messages: c1"):
        await client.chat.completions.create(model=MODEL, messages=unanswered)
    with pytest.raises(openai.BadRequestError, match="too short"):
        await client.chat.completions.create(model=MODEL, messages=[])
    with pytest.raises(openai.BadRequestError, match="tools\\[0\\].function.name"):
        await client.chat.completions.create(model=MODEL, messages=user("x"), tools=bad_tool)
    with pytest.raises(openai.BadRequestError, match="messages\\[0\\].name") as named:
        await client.chat.completions.create(model=MODEL, messages=bad_name)
    assert named.value.code == "invalid_value"
    with pytest.raises(openai.BadRequestError, match="stream_options"):
        await client.chat.completions.create(
            model=MODEL, messages=user("x"), stream_options={"include_usage": True}
        )
    with pytest.raises(openai.NotFoundError):
        await client.post("/completions", cast_to=object, body={"model": MODEL})

    assert [r.status for r in llm.requests] == [400] * 6 + [404]
    assert len(llm.problems) == 7
    assert llm.remaining(MODEL) == 0  # refused requests consume no scripted reply


# ---------------------------------------------------------------------------
# autogen
# ---------------------------------------------------------------------------


async def test_autogen_client_create(
    llm: FakeLLMServer, autogen_client: OpenAIChatCompletionClient
) -> None:
    llm.script(MODEL, ["Hi from the fake"])

    result = await autogen_client.create([UserMessage(content="hi", source="user")])

    assert isinstance(result, CreateResult)
    assert result.content == "Hi from the fake" and result.finish_reason == "stop"
    assert result.usage.prompt_tokens == 1 and result.usage.completion_tokens == 4
    (request,) = llm.requests_for(MODEL)
    assert request.headers["Authorization"] == f"Bearer {KEY}"
    assert request.json == {
        "messages": [{"content": "hi", "role": "user", "name": "user"}],
        "model": MODEL,
        "stream": False,
    }


async def test_autogen_client_stream_with_usage(
    llm: FakeLLMServer, autogen_client: OpenAIChatCompletionClient
) -> None:
    llm.script(MODEL, ["streamed words arrive"])

    items = [
        item
        async for item in autogen_client.create_stream(
            [UserMessage(content="go on", source="user")], include_usage=True
        )
    ]

    assert "".join(i for i in items if isinstance(i, str)) == "streamed words arrive"
    result = items[-1]
    assert isinstance(result, CreateResult) and result.content == "streamed words arrive"
    assert result.usage.prompt_tokens == 2 and result.usage.completion_tokens == 3
    sent = llm.requests_for(MODEL)[0].json
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}


async def test_assistant_agent_in_round_robin_runs_to_terminate(
    llm: FakeLLMServer, autogen_client: OpenAIChatCompletionClient
) -> None:
    llm.script(MODEL, ["Working on it.", "All done. TERMINATE"])
    agent = AssistantAgent("worker", model_client=autogen_client)
    team = RoundRobinGroupChat(
        [agent],
        termination_condition=TextMentionTermination("TERMINATE") | MaxMessageTermination(10),
    )

    result = await team.run(task="Do the thing")

    texts = [m.content for m in result.messages if isinstance(m, TextMessage)]
    assert texts == ["Do the thing", "Working on it.", "All done. TERMINATE"]
    assert result.stop_reason is not None and "TERMINATE" in result.stop_reason
    requests = llm.requests_for(MODEL)
    assert len(requests) == 2
    assert requests[0].json["messages"][0]["role"] == "system"
    assert requests[1].json["messages"][-1]["content"] == "Working on it."
    assert llm.problems == []


async def test_assistant_agent_tool_round_trip(
    llm: FakeLLMServer, autogen_client: OpenAIChatCompletionClient
) -> None:
    async def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    llm.script(MODEL, [ToolCall("add", {"a": 2, "b": 3})])  # then the fallback: TERMINATE
    agent = AssistantAgent("calc", model_client=autogen_client, tools=[add])
    team = RoundRobinGroupChat([agent], termination_condition=TextMentionTermination("TERMINATE"))

    result = await team.run(task="2+3?")

    summaries = [m for m in result.messages if isinstance(m, ToolCallSummaryMessage)]
    assert [s.content for s in summaries] == ["5"]
    first, second = llm.requests_for(MODEL)
    assert first.json["tools"][0]["function"]["name"] == "add"
    assert second.json["messages"][-1] == {
        "role": "tool",
        "tool_call_id": "call_fake000001",
        "content": "5",
    }
    assert llm.problems == []
