"""LLM plumbing: the verifier's client, which key a run uses, and what a provider error means."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import openai
from autogen_core.models import ChatCompletionClient

from runner.credential_source import stored_key
from runner.model_info import model_info_for
from runner.openai_pool import PooledOpenAIChatCompletionClient
from runner.verifier import ClientFactory
from store import Store
from store.records import Run
from store.settings import Settings


def openai_verifier_factory(settings: Settings) -> ClientFactory:
    """The production verifier client: VERIFIER_MODEL on LLM_BASE_URL with the run's key."""

    def build(api_key: str) -> ChatCompletionClient:
        model = settings.verifier_model_name
        model_info = model_info_for(model, settings)
        return PooledOpenAIChatCompletionClient(
            model=model,
            api_key=api_key,
            base_url=settings.llm_base_url,
            max_retries=settings.llm_max_retries,
            **({"model_info": model_info} if model_info is not None else {}),
        )

    return build


@dataclass(frozen=True)
class KeyLookup:
    """The LLM key a run uses and where it came from ("user", "workspace", "environment");
    without one (`value` None), why, in words for the person who is asked for one."""

    value: str | None
    source: str = ""
    missing_reason: str = ""


MISSING_REASON = "The agents need an LLM API key to start."
UNREADABLE_REASON = (
    "Your stored key could not be read (the server's encryption key changed). Please add it again."
)


async def resolve_llm_key(store: Store, settings: Settings, run: Run) -> KeyLookup:
    """The requester's own key, then a stored workspace key, then LLM_API_KEY; if none is
    left the requester is asked for the key, with the reason. An endpoint that takes no key
    (LLM_KEY_REQUIRED=false) gets a stand-in nobody is asked for, unless someone stored one."""
    found = await stored_key(store, run, settings.llm_provider)
    if found.value is not None:
        return KeyLookup(found.value, found.source)
    if settings.llm_api_key is not None:
        return KeyLookup(settings.llm_api_key.get_secret_value(), "environment")
    if not settings.llm_key_required:
        return KeyLookup(KEYLESS_STAND_IN, "none needed")
    return KeyLookup(None, missing_reason=UNREADABLE_REASON if found.unreadable else MISSING_REASON)


# What the OpenAI client is given for an endpoint that takes no key (it insists on one).
KEYLESS_STAND_IN = "keyless-endpoint-needs-no-key"


class ProviderFailure(StrEnum):
    KEY_REJECTED = "key_rejected"
    RATE_LIMITED = "rate_limited"
    UNAVAILABLE = "provider_unavailable"
    BAD_REQUEST = "provider_rejected_request"
    OTHER = "internal"


_NAMES: list[tuple[ProviderFailure, tuple[type[BaseException], ...], tuple[str, ...]]] = [
    (
        ProviderFailure.KEY_REJECTED,
        (openai.AuthenticationError, openai.PermissionDeniedError),
        ("AuthenticationError", "PermissionDeniedError", "Error code: 401"),
    ),
    (ProviderFailure.RATE_LIMITED, (openai.RateLimitError,), ("RateLimitError", "Error code: 429")),
    (
        ProviderFailure.UNAVAILABLE,
        (openai.InternalServerError, openai.APIConnectionError, openai.APITimeoutError),
        ("InternalServerError", "APIConnectionError", "APITimeoutError", "Error code: 5"),
    ),
    (
        ProviderFailure.BAD_REQUEST,
        (openai.BadRequestError, openai.NotFoundError),
        ("BadRequestError", "NotFoundError"),
    ),
]


def classify(exc: BaseException) -> ProviderFailure:
    """AutoGen re-raises agent errors as RuntimeError text, so look at type and text both."""
    text = str(exc)
    for failure, types, markers in _NAMES:
        if isinstance(exc, types) or any(marker in text for marker in markers):
            return failure
    return ProviderFailure.OTHER


def describe(failure: ProviderFailure, settings: Settings) -> str:
    retries = settings.llm_max_retries
    return {
        ProviderFailure.KEY_REJECTED: "The LLM provider rejected the API key.",
        ProviderFailure.RATE_LIMITED: (
            f"The LLM provider kept answering 429 (rate limited) after {retries} retries."
        ),
        ProviderFailure.UNAVAILABLE: (
            f"The LLM provider was unavailable (5xx or no connection) after {retries} retries."
        ),
        ProviderFailure.BAD_REQUEST: (
            f"The LLM provider refused the request (check LLM_MODEL={settings.llm_model} "
            f"and LLM_BASE_URL)."
        ),
        ProviderFailure.OTHER: "The run failed unexpectedly.",
    }[failure]
