"""The "Add your key" button when Slack refuses to open the modal: the user hears about it
privately, the spent trigger is never retried, and the next click opens the form."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot import ids
from tests.e2e.stack import button, running_stack
from tests.e2e.test_slack_flow import KEY


@pytest.mark.parametrize(
    ("status", "error"),
    [(200, "expired_trigger_id"), (200, "invalid_arguments"), (429, None), (503, None)],
    ids=["expired_trigger", "invalid_arguments", "rate_limited", "unavailable"],
)
async def test_a_refused_views_open_asks_for_another_click(
    tmp_path: Path, secret_key: str, status: int, error: str | None
) -> None:
    async with running_stack(tmp_path, secret_key, valid_keys={KEY}) as stack:
        await stack.command("Something that needs a key")
        request_message = await stack.slack.wait_for(
            lambda s: next((m for m in stack.thread() if button(m, ids.CREDENTIAL_OPEN)), None)
        )
        stack.slack.fail("views.open", status=status, error=error, retry_after=1, times=1)

        await stack.click(request_message, ids.CREDENTIAL_OPEN, user_id="U1")
        notes = await stack.slack.wait_for(lambda s: [e for e in s.ephemerals if e["user"] == "U1"])
        assert "click the button again" in notes[-1]["text"].lower()
        assert notes[-1]["channel"] == "C1"
        # The trigger was spent once and not retried after Retry-After.
        assert len(stack.slack.calls_to("views.open")) == 1
        assert stack.slack.views_opened == []

        await stack.click(request_message, ids.CREDENTIAL_OPEN, user_id="U1")
        (view,) = await stack.slack.wait_for(lambda s: s.views_opened)
        assert view["callback_id"] == ids.CREDENTIAL_MODAL
        assert len(stack.slack.calls_to("views.open")) == 2
        assert len([e for e in stack.slack.ephemerals if e["user"] == "U1"]) == 1
        assert stack.slack.problems == []
