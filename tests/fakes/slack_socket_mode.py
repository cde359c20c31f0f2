"""Socket Mode in the Slack emulator: the websocket the app connects to, and its envelopes.

Given an app-level token, ``apps.connections.open`` hands the app a ``ws://`` URL served
here. ``SocketModeMixin`` greets each connection with ``hello`` like Slack, lets a test
play Slack's part with ``socket_send`` (deliver an envelope, return the app's ack), and
checks every acknowledgement: its deadline, duplicates, and any response payload it carries.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable

from aiohttp import WSCloseCode, WSMsgType, web

from tests.fakes.block_kit_rules import find_message_problems, find_view_problems
from tests.fakes.slack_emulator_base import EmulatorBase
from tests.fakes.slack_records import JsonDict, SocketConnection, SocketEnvelope

__all__ = ["SOCKET_ACK_DEADLINE_S", "SOCKET_PATH", "SocketModeMixin"]

# Socket Mode: Slack shows the user an error when an envelope is not acknowledged in 3 s.
SOCKET_ACK_DEADLINE_S = 3.0
SOCKET_PATH = "/socket-mode/"
# Envelope types an app may answer with a response payload (Slack sets
# accepts_response_payload for these; interactive only for modal submissions and menus).
_RESPONSE_PAYLOAD_INTERACTIONS = frozenset({"view_submission", "block_suggestion"})
_VIEW_RESPONSE_ACTIONS = frozenset({"errors", "update", "push", "clear"})


class SocketModeMixin(EmulatorBase):
    """The Socket Mode side of ``SlackApiEmulator``: connections, envelopes and acks."""

    @property
    def socket_connected(self) -> bool:
        """Whether the app holds an open Socket Mode connection that was greeted."""
        return bool(self._sockets)

    async def wait_for_socket(self, timeout: float = 10.0) -> SocketConnection:
        """Wait until the app has an open, greeted Socket Mode connection; return the newest."""
        await self.wait_for(lambda s: s.socket_connected, timeout=timeout)
        return self._newest_connection()

    async def socket_send(
        self,
        envelope_type: str,
        payload: JsonDict,
        *,
        timeout: float = 5.0,
        accepts_response_payload: bool | None = None,
        retry_attempt: int | None = None,
        retry_reason: str | None = None,
    ) -> JsonDict:
        """Deliver one envelope to the app, as Slack does, and return the app's ack.

        ``envelope_type`` is ``"slash_commands"``, ``"interactive"`` or ``"events_api"``;
        ``payload`` is what Slack puts in the envelope: a slash command's fields as a dict
        of strings, an interaction's JSON document, an event callback. The ack is the JSON
        the app sent back (``{"envelope_id": ..., "payload"?: {...}}``). Goes to the newest
        open connection. No ack within ``timeout`` raises AssertionError (with a summary).
        An ack later than Slack's 3 s, or one Slack would refuse, is added to ``problems``.
        """
        connection = await self.wait_for_socket(timeout=timeout)
        if accepts_response_payload is None:
            accepts_response_payload = envelope_type == "slash_commands" or (
                envelope_type == "interactive"
                and payload.get("type") in _RESPONSE_PAYLOAD_INTERACTIONS
            )
        envelope_id = _envelope_id(next(self._envelope_counter))
        envelope: JsonDict = {
            "envelope_id": envelope_id,
            "type": envelope_type,
            "payload": payload,
            "accepts_response_payload": accepts_response_payload,
        }
        if retry_attempt is not None:
            envelope["retry_attempt"] = retry_attempt
            envelope["retry_reason"] = retry_reason or "timeout"
        waiter: asyncio.Future[JsonDict] = asyncio.get_running_loop().create_future()
        record = SocketEnvelope(envelope, connection.id, time.monotonic())
        self._ack_waiters[envelope_id] = waiter
        self._envelopes_by_id[envelope_id] = record
        self.socket_envelopes.append(record)
        try:
            await self._sockets[connection.id].send_json(envelope)
            return await asyncio.wait_for(waiter, timeout)
        except TimeoutError:
            self._socket_problem(envelope_id, "no_ack", [f"no acknowledgement in {timeout}s"])
            raise AssertionError(
                f"the app did not acknowledge {envelope_type} envelope {envelope_id} "
                f"within {timeout}s\n{self.summary()}"
            ) from None
        finally:
            self._ack_waiters.pop(envelope_id, None)
            if not waiter.done():
                waiter.cancel()

    async def socket_disconnect(self, reason: str = "refresh_requested") -> None:
        """Ask every connected app to reconnect, as Slack does before recycling a socket."""
        message = {"type": "disconnect", "reason": reason, "debug_info": {"host": "emulator"}}
        for ws in list(self._sockets.values()):
            await ws.send_json(message)

    def _apps_connections_open(self, params: JsonDict) -> JsonDict:
        ticket = f"ticket{next(self._ticket_counter):04d}"
        self._socket_tickets.add(ticket)
        base = self.base_url.replace("http://", "ws://", 1)
        return {"url": f"{base}{SOCKET_PATH}{ticket}"}

    async def _handle_socket(self, request: web.Request) -> web.StreamResponse:
        """One Socket Mode connection: greet with ``hello``, then read acks until closed."""
        ticket = request.match_info["ticket"]
        if ticket not in self._socket_tickets:
            return web.json_response({"ok": False, "error": "invalid_ticket"}, status=401)
        ws = web.WebSocketResponse(autoping=True, timeout=2.0)
        await ws.prepare(request)
        connection = SocketConnection(
            id=f"conn{next(self._connection_counter):04d}",
            ticket=ticket,
            opened_at=time.monotonic(),
        )
        self.socket_connections.append(connection)
        try:
            await ws.send_json(self._hello())
            self._sockets[connection.id] = ws
            async for message in ws:
                if message.type == WSMsgType.TEXT:
                    self._receive_socket_text(connection, message.data)
                elif message.type == WSMsgType.BINARY:
                    self._socket_problem(None, "invalid_message", ["binary frame from the app"])
        finally:
            self._sockets.pop(connection.id, None)
            connection.closed_at = time.monotonic()
        return ws

    def _hello(self) -> JsonDict:
        return {
            "type": "hello",
            "num_connections": len(self._sockets) + 1,
            "debug_info": {
                "host": "applink-emulator",
                "build_number": 1,
                "approximate_connection_time": 18060,
            },
            "connection_info": {"app_id": self.app_id},
        }

    def _receive_socket_text(self, connection: SocketConnection, data: str) -> None:
        """Match an ack to its envelope, check it the way Slack would, wake the sender."""
        try:
            message = json.loads(data)
        except json.JSONDecodeError:
            self._socket_problem(None, "invalid_message", ["a frame that is not JSON"])
            return
        if not isinstance(message, dict):
            self._socket_problem(None, "invalid_message", ["a frame that is not a JSON object"])
            return
        connection.received.append(message)
        envelope_id = str(message.get("envelope_id") or "")
        record = self._envelopes_by_id.get(envelope_id)
        if record is None:
            self._socket_problem(envelope_id or None, "unknown_envelope", ["ack matches nothing"])
            return
        if record.ack is not None:
            self._socket_problem(envelope_id, "duplicate_ack", ["acknowledged twice"])
            return
        record.ack, record.acked_at = message, time.monotonic()
        latency = record.acked_at - record.sent_at
        if latency > SOCKET_ACK_DEADLINE_S:
            reason = f"acknowledged after {latency:.2f}s, Slack waits {SOCKET_ACK_DEADLINE_S}s"
            self._socket_problem(envelope_id, "ack_too_late", [reason])
        self._check_ack_payload(record, message)
        waiter = self._ack_waiters.get(envelope_id)
        if waiter is not None and not waiter.done():
            waiter.set_result(message)

    def _check_ack_payload(self, record: SocketEnvelope, ack: JsonDict) -> None:
        """Problems Slack would have with a response payload carried by an ack."""
        if "payload" not in ack:
            return
        payload = ack["payload"]
        envelope_id = record.envelope_id
        if not record.envelope.get("accepts_response_payload"):
            reason = f"{record.type} envelope does not accept one; Slack ignores it"
            self._socket_problem(envelope_id, "response_payload_ignored", [reason])
            return
        if not isinstance(payload, dict):
            self._socket_problem(envelope_id, "invalid_payload", ["payload must be an object"])
            return
        if record.type == "slash_commands":
            error, reasons = find_message_problems(payload)
            if error is not None:
                self._socket_problem(envelope_id, error, reasons)
            return
        action = payload.get("response_action")
        if record.envelope["payload"].get("type") != "view_submission":
            return
        if action not in _VIEW_RESPONSE_ACTIONS:
            self._socket_problem(
                envelope_id, "invalid_response_action", [f"unknown response_action {action!r}"]
            )
        elif action == "errors" and not (
            isinstance(payload.get("errors"), dict) and payload["errors"]
        ):
            self._socket_problem(envelope_id, "invalid_errors", ["errors must be a non-empty map"])
        elif action in ("update", "push"):
            reasons = find_view_problems(payload.get("view"))
            if reasons:
                self._socket_problem(envelope_id, "invalid_arguments", reasons)

    def _socket_problem(self, envelope_id: str | None, error: str, reasons: Iterable[str]) -> None:
        where = f"envelope {envelope_id}" if envelope_id else "socket"
        self.problems.append(f"socket_mode ({where}): {error}: " + "; ".join(reasons))

    def _newest_connection(self) -> SocketConnection:
        for connection in reversed(self.socket_connections):
            if connection.id in self._sockets:
                return connection
        raise AssertionError(f"no Socket Mode connection is open\n{self.summary()}")

    async def _close_sockets(self) -> None:
        """Close every connection (going away) and fail waits for acks that cannot come."""
        for waiter in self._ack_waiters.values():
            if not waiter.done():
                waiter.set_exception(ConnectionError("the Slack emulator stopped"))
        for ws in list(self._sockets.values()):
            await ws.close(code=WSCloseCode.GOING_AWAY, message=b"emulator stopping")


def _envelope_id(number: int) -> str:
    """A UUID-shaped envelope id like Slack's, counted so runs are reproducible."""
    return f"{number:08x}-0000-4000-8000-{number:012x}"
