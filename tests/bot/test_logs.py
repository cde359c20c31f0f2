"""Log set-up: one JSON line per record, chatty libraries kept out of the INFO log."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from bot.logs import CHATTY_LOGGERS, configure_logging
from store.settings import load_settings


@pytest.fixture
def restored_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    levels = {name: logging.getLogger(name).level for name in CHATTY_LOGGERS}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, old in levels.items():
        logging.getLogger(name).setLevel(old)


def test_info_log_keeps_llm_calls_out_and_the_apps_lines_in(
    restored_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(load_settings(log_level="INFO", log_format="json"))
    logging.getLogger("autogen_core.events").info("LLMCall with the whole prompt")
    logging.getLogger("httpx").info("HTTP Request: POST /v1/chat/completions")
    logging.getLogger("autogen_agentchat").warning("a warning still shows")
    logging.getLogger("runner.executor").info("run claimed", extra={"run_id": "r1"})
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [(entry["logger"], entry["message"]) for entry in lines] == [
        ("autogen_agentchat", "a warning still shows"),
        ("runner.executor", "run claimed"),
    ]
    assert lines[1]["run_id"] == "r1"


def test_debug_brings_the_libraries_back(
    restored_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(load_settings(log_level="DEBUG", log_format="console"))
    logging.getLogger("autogen_core.events").debug("LLMCall detail")
    assert "LLMCall detail" in capsys.readouterr().err
