"""What the OpenAI client must be told about a model name it does not know.

AutoGen's OpenAI client refuses an unknown model name without `model_info`; OpenRouter and
local servers use names it has never heard of. AutoGen 0.7 has no public way to ask whether
it knows a name, so its model table is read here, in one place.
"""

from __future__ import annotations

from typing import Any

from store.settings import Settings

GENERIC_MODEL_INFO: dict[str, Any] = {
    "vision": False,
    "function_calling": True,
    "json_output": True,
    "family": "unknown",
    "structured_output": True,
}


def known_model(model: str) -> bool:
    from autogen_ext.models.openai._model_info import get_info  # no public accessor in 0.7

    try:
        get_info(model)
    except (KeyError, ValueError):
        return False
    return True


def model_info_for(model: str, settings: Settings) -> dict[str, Any] | None:
    """LLM_MODEL_INFO when set; else generic capabilities for a name AutoGen does not know;
    else None (AutoGen's own table applies)."""
    if settings.llm_model_info is not None:
        return settings.llm_model_info
    return None if known_model(model) else GENERIC_MODEL_INFO
