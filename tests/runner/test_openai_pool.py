"""Every OpenAI client the runner builds in one event loop shares one HTTP pool (one TLS
context, reused connections); each keeps its own key, and closing one leaves the pool to
the others."""

from __future__ import annotations

from runner.llm import openai_verifier_factory
from runner.openai_pool import PooledOpenAIChatCompletionClient, shared_http_client
from runner.team import _participants, load_team
from store.settings import Settings


def _clients(loaded) -> list[PooledOpenAIChatCompletionClient]:  # type: ignore[no-untyped-def]
    return [agent._model_client for agent in _participants(loaded.team)]


async def test_teams_and_the_verifier_share_one_pool_each_with_its_own_key(
    settings: Settings,
) -> None:
    first = load_team(settings, api_key="first-key-0001")
    second = load_team(settings, api_key="second-key-0002")
    verifier = openai_verifier_factory(settings)("verifier-key-0003")
    clients = [*_clients(first), *_clients(second), verifier]
    assert all(isinstance(c, PooledOpenAIChatCompletionClient) for c in clients)
    pool = shared_http_client()
    assert {id(c._client._client) for c in clients} == {id(pool)}
    keys = {c._client.api_key for c in clients}
    assert keys == {"first-key-0001", "second-key-0002", "verifier-key-0003"}
    assert all("http_client" not in c._raw_config for c in clients)

    await first.close()
    assert not pool.is_closed  # the second team and the verifier still use it
    await second.close()
    await verifier.close()
    assert shared_http_client() is pool
