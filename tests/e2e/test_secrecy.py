"""A key typed into the modal reaches the credential store encrypted and nothing else:
no Slack call, no LLM request except as the Authorization header, no log line, no plaintext
in the database."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from bot import ids
from tests.e2e.stack import AGENT_MODEL, VERIFIER_MODEL, running_stack, verdict

CANARY = "canary-Zq81xK0p-key-that-must-not-leak"


async def test_canary_key_goes_nowhere_but_the_encrypted_store(
    tmp_path: Path, secret_key: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with running_stack(tmp_path, secret_key, valid_keys={CANARY}, log_level="DEBUG") as stack:
        logging.getLogger().setLevel(logging.DEBUG)
        stack.llm.script(AGENT_MODEL, ["Plan.", "Work.", "Done. TERMINATE"])
        stack.llm.default(VERIFIER_MODEL, verdict())
        app_answers: list[str] = []  # every HTTP body the app returned to "Slack"
        _, body, _ = await stack.command("Use the key")
        app_answers.append(body)
        request_message = await stack.slack.wait_for(
            lambda s: next(
                (m for m in stack.thread() if ids.CREDENTIAL_OPEN in json.dumps(m.get("blocks"))),
                None,
            )
        )
        _, body, _ = await stack.click(request_message, ids.CREDENTIAL_OPEN, user_id="U1")
        app_answers.append(body)
        await stack.slack.wait_for(lambda s: s.views_opened)
        # A bad signature carrying the key first: Bolt logs rejected bodies.
        from tests.fakes.slack_signing import view_submission

        body, content_type = view_submission(
            view=stack.slack.views_opened[-1],
            state_values={ids.CREDENTIAL_INPUT_BLOCK: {ids.CREDENTIAL_INPUT: CANARY}},
            user_id="U1",
        )
        status, text, _ = await stack.sender.post(stack.url, body, content_type, "not-the-secret")
        assert status == 401
        app_answers.append(text)
        status, text, _ = await stack.sender.post(
            stack.url, body, content_type, "e2e-signing-secret-0123456789abcdef"
        )
        assert status == 200 and "errors" not in text
        app_answers.append(text)
        await stack.slack.wait_for(
            lambda s: any("Run finished" in json.dumps(m.get("blocks")) for m in stack.thread()),
            timeout=30,
        )
        # More of what the app answers Slack directly: status (its answer goes to a
        # response_url) and help (answered in the HTTP response itself).
        status, text, _ = await stack.command("status")
        assert status == 200
        app_answers.append(text)
        assert "Use the key" in json.dumps(await stack.reply())  # status's answer arrived
        status, text, _ = await stack.command("help")
        assert status == 200 and "/autogen" in text
        app_answers.append(text)

        slack_traffic = json.dumps(
            [(c.params, c.response) for c in stack.slack.calls] + [stack.slack.responses],
            default=str,
        )
        assert stack.slack.calls and any(stack.slack.responses.values())
        llm_requests = stack.llm.requests
        assert llm_requests and all(
            r.headers["Authorization"] == f"Bearer {CANARY}" for r in llm_requests
        )
        llm_bodies = json.dumps([r.json for r in llm_requests])

    assert CANARY not in slack_traffic
    assert CANARY not in json.dumps(app_answers)
    assert CANARY not in llm_bodies
    # The capture was live: the app's own loggers and Slack's libraries wrote records.
    names = {record.name for record in caplog.records}
    assert any(name.startswith("slack_bolt") for name in names), sorted(names)
    assert any(name.startswith(("bot.", "runner.")) for name in names), sorted(names)
    for record in caplog.records:
        assert CANARY not in record.getMessage(), record.name
        assert CANARY not in str(record.exc_text or "")
    assert CANARY not in caplog.text
    files = list(tmp_path.glob("e2e.db*"))
    assert files and any(path.stat().st_size for path in files), files
    for path in files:
        assert CANARY.encode() not in path.read_bytes(), path.name
