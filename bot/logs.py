"""Structured logs (one JSON object per line, with run ids) that never carry a secret.

Bolt logs a request's raw body at INFO when its signature check fails, and the Socket Mode
client logs raw payloads at DEBUG; a modal submission carries a key. Records from those
libraries that mention a body or payload are withheld, and every record is scrubbed of
key-shaped strings.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

from runner.redact import redact
from store.settings import Settings

WITHHELD = "[withheld: this log line may carry a Slack request body]"
_SLACK_LOGGERS = ("slack_bolt", "slack_sdk")
_BODY_MARKERS = ("body", "payload", "view_submission", "state", "envelope")


def scrub(record: logging.LogRecord) -> None:
    """Withhold what may be a Slack request body and redact secrets, in place."""
    try:
        message = record.getMessage()
    except (TypeError, ValueError):
        message = str(record.msg)
    if record.name.startswith(_SLACK_LOGGERS) and any(m in message for m in _BODY_MARKERS):
        message = WITHHELD
    record.msg = redact(message)
    record.args = None
    if record.exc_info and not record.exc_text:
        # Formatters reuse exc_text once set, so tracebacks are scrubbed too.
        record.exc_text = redact(logging.Formatter().formatException(record.exc_info))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "at": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in ("run_id", "user_id", "channel_id"):
            if hasattr(record, key):
                entry[key] = getattr(record, key)
        if record.exc_info:
            # The record factory scrubbed the traceback into exc_text when the record was made.
            entry["error"] = record.exc_text or redact(self.formatException(record.exc_info))
        return json.dumps(entry)


# Libraries that narrate every LLM call (whole prompts and replies) and every HTTP request
# at INFO. An operator reading the app's INFO log wants the app's story; LOG_LEVEL=DEBUG
# brings them back.
CHATTY_LOGGERS = ("autogen_core", "autogen_agentchat", "httpx", "openai")


def configure_logging(settings: Settings) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if settings.log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level)
    chatty_level = logging.DEBUG if settings.log_level == "DEBUG" else logging.WARNING
    for name in CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(max(chatty_level, root.level))
    install_secret_filter()


def install_secret_filter() -> None:
    """Scrub records as they are created, so every handler (ours, a test's, a library's)
    only ever sees the scrubbed text: the one place records are scrubbed. Idempotent."""
    current = logging.getLogRecordFactory()
    if getattr(current, "scrubs_secrets", False):
        return

    def factory(*args: object, **kwargs: object) -> logging.LogRecord:
        record = current(*args, **kwargs)
        scrub(record)
        return record

    factory.scrubs_secrets = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)
    # Raw Socket Mode frames are only logged at DEBUG: never let them through.
    logging.getLogger("slack_sdk.socket_mode").setLevel(logging.INFO)
