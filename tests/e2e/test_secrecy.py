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
        await stack.command("Use the key")
        request_message = await stack.slack.wait_for(
            lambda s: next(
                (m for m in stack.thread() if ids.CREDENTIAL_OPEN in json.dumps(m.get("blocks"))),
                None,
            )
        )
        await stack.click(request_message, ids.CREDENTIAL_OPEN, user_id="U1")
        await stack.slack.wait_for(lambda s: s.views_opened)
        # A bad signature carrying the key first: Bolt logs rejected bodies.
        from tests.fakes.slack_signing import view_submission

        body, content_type = view_submission(
            view=stack.slack.views_opened[-1],
            state_values={ids.CREDENTIAL_INPUT_BLOCK: {ids.CREDENTIAL_INPUT: CANARY}},
            user_id="U1",
        )
        status, _, _ = await stack.sender.post(stack.url, body, content_type, "not-the-secret")
        assert status == 401
        status, text, _ = await stack.sender.post(
            stack.url, body, content_type, "e2e-signing-secret-0123456789abcdef"
        )
        assert status == 200 and "errors" not in text
        await stack.slack.wait_for(
            lambda s: any("Run finished" in json.dumps(m.get("blocks")) for m in stack.thread()),
            timeout=30,
        )
        slack_traffic = json.dumps([(c.params, c.response) for c in stack.slack.calls], default=str)
        llm_requests = stack.llm.requests
        assert llm_requests and all(
            r.headers["Authorization"] == f"Bearer {CANARY}" for r in llm_requests
        )
        llm_bodies = json.dumps([r.json for r in llm_requests])

    assert CANARY not in slack_traffic
    assert CANARY not in llm_bodies
    for record in caplog.records:
        assert CANARY not in record.getMessage(), record.name
        assert CANARY not in str(record.exc_text or "")
    for path in tmp_path.glob("e2e.db*"):
        assert CANARY.encode() not in path.read_bytes(), path.name
