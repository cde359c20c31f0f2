"""response_url endpoints served by the Slack emulator, as Slack hands them to apps.

Slash commands and interactions carry a response_url the app may post to a few times.
``ResponseUrlsMixin`` hands such URLs out, checks each post like a message, and applies
``replace_original``/``delete_original`` to the message a URL is linked to.
"""

from __future__ import annotations

import json

from aiohttp import web

from tests.fakes.block_kit_rules import find_message_problems
from tests.fakes.slack_emulator_base import EmulatorBase
from tests.fakes.slack_messages import apply_update
from tests.fakes.slack_records import JsonDict
from tests.fakes.slack_wire import decode_json_fields, has_content, truthy

__all__ = ["RESPONSE_URL_MAX_USES", "ResponseUrlsMixin"]

RESPONSE_URL_MAX_USES = 5


class ResponseUrlsMixin(EmulatorBase):
    """The response_url side of ``SlackApiEmulator``: handing URLs out and answering posts."""

    def new_response_url(self, channel: str | None = None, message_ts: str | None = None) -> str:
        """A response_url served by this emulator, as Slack puts in commands and actions.

        Linking it to ``channel``/``message_ts`` lets ``replace_original`` and
        ``delete_original`` act on that stored message, as Slack does for button clicks.
        """
        hook_id = f"hook{next(self._hook_counter):04d}"
        self.responses[hook_id] = []
        self._response_links[hook_id] = (channel, message_ts)
        return f"{self.base_url}/response/{hook_id}"

    async def _handle_response_url(self, request: web.Request) -> web.Response:
        """Accept a JSON post to a response_url, as Slack's hooks endpoint does."""
        hook_id = request.match_info["hook_id"]
        headers = dict(request.headers)
        try:
            payload = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            payload = None
        if not isinstance(payload, dict):
            self._problem(
                "response_url", "invalid_payload", [f"{hook_id}: body is not a JSON object"]
            )
            return self._hook_answer({}, headers, 400, "invalid_payload", request.path)
        payload = decode_json_fields(payload)
        injected = self._injected_failure("response_url")
        if injected is not None:
            status, body, extra = injected
            self._record("response_url", payload, headers, status, body, request.path)
            return web.Response(status=status, text=str(body["error"]), headers=extra)
        status, text = self._accept_response(hook_id, payload)
        return self._hook_answer(payload, headers, status, text, request.path)

    def _hook_answer(
        self,
        payload: JsonDict,
        headers: dict[str, str],
        status: int,
        text: str,
        path: str,
    ) -> web.Response:
        body: JsonDict = {"ok": status == 200}
        if status != 200:
            body["error"] = text
        self._record("response_url", payload, headers, status, body, path)
        return web.Response(status=status, text=text, content_type="text/plain")

    def _accept_response(self, hook_id: str, payload: JsonDict) -> tuple[int, str]:
        """Validate and apply one response_url post; returns (status, body text)."""
        if hook_id not in self.responses:
            self._problem("response_url", "no_such_hook", [f"{hook_id} was never handed out"])
            return 404, "no_active_hooks"
        if len(self.responses[hook_id]) >= RESPONSE_URL_MAX_USES:
            reason = f"{hook_id} used more than {RESPONSE_URL_MAX_USES} times"
            self._problem("response_url", "used_url", [reason])
            return 404, "used_url"
        if not truthy(payload.get("delete_original")):
            error, reasons = find_message_problems(payload)
            if error is None and not has_content(payload):
                error, reasons = "no_text", ["needs text or blocks"]
            if error is not None:
                self._problem("response_url", error, [f"{hook_id}: {r}" for r in reasons])
                return 400, error
            self._warn_missing_fallback("response_url", payload)
        self.responses[hook_id].append(payload)
        self._apply_response_to_original(hook_id, payload)
        return 200, "ok"

    def _apply_response_to_original(self, hook_id: str, payload: JsonDict) -> None:
        channel, ts = self._response_links.get(hook_id, (None, None))
        key = (channel or "", ts or "")
        if key not in self.messages:
            return
        if truthy(payload.get("delete_original")):
            self.deleted_messages[key] = self.messages.pop(key)
        elif truthy(payload.get("replace_original")):
            apply_update(self.messages[key], payload)
