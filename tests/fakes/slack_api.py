"""A local stand-in for the Slack Web API, spoken to over real HTTP.

No Slack workspace is reachable from the test machines, yet the end-to-end tests must
exercise the real ``slack_sdk`` client, its HTTP stack and its error handling. This module
runs a small aiohttp server that answers the Web API methods the app uses the way Slack
does (HTTP 200 with ``ok``/``error``), keeps the resulting workspace state (messages,
threads, ephemerals, modals), records every call, and checks every Block Kit payload so
that a message Slack would refuse fails here too instead of passing silently.

Typical use::

    async with SlackApiEmulator(member_channels={"C1"}) as slack:
        client = AsyncWebClient(token="xoxb-test", base_url=slack.api_url)
        ...
        await slack.wait_for(lambda s: len(s.calls_to("chat.postMessage")) == 2)
        assert slack.problems == []

Socket Mode is emulated too: give the emulator an app-level token
(``SlackApiEmulator(app_token="xapp-test")``) and ``apps.connections.open`` hands the app a
``ws://`` URL served here. The emulator greets each connection with ``hello`` like Slack,
and a test plays Slack's part with ``await slack.socket_send("slash_commands", {...})``,
which delivers an envelope and returns the app's acknowledgement::

    async with SlackApiEmulator(app_token="xapp-test") as slack:
        ...  # start the app in Socket Mode with SLACK_API_URL=slack.api_url
        await slack.wait_for_socket()
        ack = await slack.socket_send("slash_commands", {"command": "/autogen", ...})
        assert "payload" not in ack  # a bare ack: the app answers later, via the Web API

Block Kit checking combines three layers, because ``slack_sdk``'s models alone are lenient
(see ``find_block_problems``): the SDK's own validators (lengths, counts, enums), a
comparison of what was sent against what the SDK could model (to catch unknown block
types, unknown fields and values it silently coerced), and explicit rules for limits the
SDK does not enforce.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import json
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import WSCloseCode, WSMsgType, web
from slack_sdk.errors import SlackObjectFormationError
from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

__all__ = [
    "FailureRule",
    "RecordedCall",
    "SlackApiEmulator",
    "SocketConnection",
    "SocketEnvelope",
    "find_block_problems",
    "find_message_problems",
    "find_view_problems",
]

JsonDict = dict[str, Any]
Surface = Literal["message", "modal"]

# Limits Slack applies to what an app sends. Named so a failing test points at the rule.
MESSAGE_TEXT_MAX = 4_000
MESSAGE_BLOCKS_MAX = 50
MODAL_BLOCKS_MAX = 100
MESSAGE_BLOCKS_JSON_MAX = 12_000
VIEW_BUTTON_TEXT_MAX = 24  # modal title, submit and close
PRIVATE_METADATA_MAX = 3_000
BUTTON_VALUE_MAX = 2_000
ID_MAX = 255  # action_id, block_id, callback_id
SECTION_FIELD_TEXT_MAX = 2_000
OPTION_TEXT_MAX = 75
OPTION_VALUE_MAX = 150
TEXT_INPUT_LENGTH_MAX = 3_000
RESPONSE_URL_MAX_USES = 5

# Payload fields that arrive JSON-encoded inside form data and are decoded for recording.
_JSON_FIELDS = ("blocks", "attachments", "view", "metadata")
# Element types whose option labels must be plain text (checkboxes and radios allow mrkdwn).
_PLAIN_OPTION_ELEMENTS = frozenset(
    {"static_select", "multi_static_select", "external_select", "multi_external_select", "overflow"}
)
DEFAULT_BOT_TOKEN = "xoxb-test"
_FIRST_TS_MICROS = 1_700_000_000_000_000
_TS_STEP_MICROS = 100
# Socket Mode: Slack shows the user an error when an envelope is not acknowledged in 3 s.
SOCKET_ACK_DEADLINE_S = 3.0
SOCKET_PATH = "/socket-mode/"
# Methods that take the app-level token (xapp-...) instead of the bot token.
_APP_TOKEN_METHODS = frozenset({"apps.connections.open"})
# Envelope types an app may answer with a response payload (Slack sets
# accepts_response_payload for these; interactive only for modal submissions and menus).
_RESPONSE_PAYLOAD_INTERACTIONS = frozenset({"view_submission", "block_suggestion"})
_VIEW_RESPONSE_ACTIONS = frozenset({"errors", "update", "push", "clear"})


# ---------------------------------------------------------------------------
# Records
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RecordedCall:
    """One HTTP request the emulator answered, kept so tests can assert on traffic.

    ``params`` merges query string and body, with JSON-encoded fields (``blocks``,
    ``view``...) decoded, so assertions do not depend on how the client encoded them.
    ``at`` is ``time.monotonic()`` when the answer was produced.
    """

    method: str
    params: JsonDict
    headers: dict[str, str]
    status: int
    response: JsonDict
    at: float
    path: str = ""

    @property
    def ok(self) -> bool:
        """Whether Slack would have reported success for this call."""
        return self.status == 200 and bool(self.response.get("ok"))

    @property
    def error(self) -> str | None:
        """The Slack error code, if the call failed."""
        value = self.response.get("error")
        return str(value) if value is not None else None


@dataclass
class FailureRule:
    """An injected failure for one method: either the next ``times`` calls, or a ratio.

    Ratio rules draw from their own seeded ``random.Random`` so a run is reproducible no
    matter what else in the process uses randomness.
    """

    status: int
    retry_after: int | None
    error: str
    times: int | None = None
    ratio: float | None = None
    rng: random.Random | None = None

    def triggers(self) -> bool:
        """Consume one decision: does this call fail?"""
        if self.times is not None:
            if self.times <= 0:
                return False
            self.times -= 1
            return True
        assert self.ratio is not None and self.rng is not None
        return self.rng.random() < self.ratio


@dataclass
class SocketConnection:
    """One websocket the app opened on a URL from ``apps.connections.open``.

    ``received`` holds every JSON message the app sent on it (its acknowledgements).
    """

    id: str
    ticket: str
    opened_at: float
    closed_at: float | None = None
    received: list[JsonDict] = field(default_factory=list)

    @property
    def open(self) -> bool:
        return self.closed_at is None


@dataclass
class SocketEnvelope:
    """One envelope delivered to the app over Socket Mode, and the ack it got (if any)."""

    envelope: JsonDict
    connection_id: str
    sent_at: float
    ack: JsonDict | None = None
    acked_at: float | None = None

    @property
    def envelope_id(self) -> str:
        return str(self.envelope["envelope_id"])

    @property
    def type(self) -> str:
        return str(self.envelope["type"])

    @property
    def ack_latency(self) -> float | None:
        """Seconds between sending the envelope and receiving its ack."""
        return None if self.acked_at is None else self.acked_at - self.sent_at


class _ApiError(Exception):
    """Raised inside a method handler to answer ``{"ok": false, "error": code}``."""

    def __init__(self, code: str, messages: Iterable[str] = ()) -> None:
        super().__init__(code)
        self.code = code
        self.messages = list(messages)


# ---------------------------------------------------------------------------
# Block Kit validation
# ---------------------------------------------------------------------------


def find_block_problems(blocks: Any, surface: Surface = "message") -> list[str]:
    """Return why Slack would reject ``blocks`` (empty when they are acceptable).

    ``slack_sdk``'s ``Block.parse`` turns unknown block or element types into ``None``,
    ignores unknown keys, drops empty strings and lists, and coerces a bad text ``type``
    or a bare string into ``mrkdwn``; its ``to_dict()`` only enforces the limits it models.
    So each block is built with the SDK, compared field by field with what was sent, and
    then checked against the extra rules below.
    """
    if not isinstance(blocks, list):
        return [f"blocks must be a JSON array, got {type(blocks).__name__}"]
    limit = MESSAGE_BLOCKS_MAX if surface == "message" else MODAL_BLOCKS_MAX
    problems: list[str] = []
    if len(blocks) > limit:
        problems.append(f"blocks: {len(blocks)} blocks, a {surface} allows at most {limit}")
    for index, block in enumerate(blocks):
        problems.extend(_single_block_problems(block, f"blocks[{index}]"))
    problems.extend(_duplicate_block_id_problems(blocks))
    return problems


def find_view_problems(view: Any) -> list[str]:
    """Return why Slack would reject a modal passed to views.open/push/update."""
    if not isinstance(view, dict):
        return [f"view must be a JSON object, got {type(view).__name__}"]
    problems = list(_modal_shape_problems(view))
    blocks = view.get("blocks")
    if not isinstance(blocks, list) or not blocks:
        problems.append("view.blocks is required and must be a non-empty array")
        blocks = []
    # Blocks get the per-block check below; a stand-in keeps View's count check quiet here.
    stand_in = {**view, "blocks": [{"type": "divider"}]}
    problems.extend(_sdk_problems(_build_view, stand_in, "view", skip={"blocks"}))
    problems.extend(f"view.{p}" for p in find_block_problems(blocks, "modal"))
    return problems


def find_message_problems(payload: Mapping[str, Any]) -> tuple[str | None, list[str]]:
    """Check a message payload (chat.* or a response_url post) the way Slack does.

    Returns the Slack error code (``None`` when acceptable) and the reasons behind it.
    """
    blocks = payload.get("blocks")
    if blocks is not None:
        if not isinstance(blocks, list):
            return "invalid_blocks_format", ["blocks must be a JSON array"]
        size = len(json.dumps(blocks, separators=(",", ":"), ensure_ascii=False))
        if size > MESSAGE_BLOCKS_JSON_MAX:
            return "msg_blocks_too_long", [f"blocks JSON is {size} characters, max is 12000"]
        reasons = find_block_problems(blocks, "message")
        if reasons:
            return "invalid_blocks", reasons
    text = payload.get("text")
    if isinstance(text, str) and len(text) > MESSAGE_TEXT_MAX:
        return "msg_too_long", [f"text is {len(text)} characters, max is {MESSAGE_TEXT_MAX}"]
    return None, []


def _single_block_problems(block: Any, path: str) -> list[str]:
    """All problems of one block: SDK validation, shape diff, then explicit rules."""
    if not isinstance(block, dict):
        return [f"{path}: a block must be a JSON object, got {type(block).__name__}"]
    problems = _sdk_problems(Block.parse, block, path)
    problems.extend(_block_rule_problems(block, path))
    return problems


def _build_view(view: JsonDict) -> View:
    """Adapter so views go through the same SDK check as blocks."""
    return View(**view)


def _sdk_problems(
    build: Callable[[JsonDict], Any],
    raw: JsonDict,
    path: str,
    skip: frozenset[str] | set[str] = frozenset(),
) -> list[str]:
    """Build ``raw`` with an SDK model, run its validators, and diff the result with ``raw``."""
    try:
        model = build(dict(raw))
        if model is None:
            return [f"{path}: unknown block type {raw.get('type')!r}"]
        built = model.to_dict()
    except SlackObjectFormationError as exc:
        return [f"{path}: {exc}"]
    except (TypeError, KeyError, ValueError, AttributeError) as exc:
        return [f"{path}: slack_sdk cannot build it ({type(exc).__name__}: {exc})"]
    trimmed = {k: v for k, v in raw.items() if k not in skip}
    return list(_shape_differences(trimmed, built, path))


def _shape_differences(sent: Any, built: Any, path: str) -> Iterator[str]:
    """Yield every place where the SDK's model of a payload differs from what was sent.

    A difference means the SDK did not recognise something (unknown type or field), or
    silently repaired it (string where an object belongs, a coerced text type). Slack's
    own validator rejects all of these, so they are problems.
    """
    if isinstance(sent, dict):
        yield from _dict_differences(sent, built, path)
    elif isinstance(sent, list):
        yield from _list_differences(sent, built, path)
    elif isinstance(built, dict | list):
        yield f"{path}: expected an object or array, got {type(sent).__name__} {sent!r:.40}"
    elif sent != built or type(sent) is not type(built):
        yield f"{path}: value {sent!r:.40} is not valid here (slack_sdk made it {built!r:.40})"


def _dict_differences(sent: JsonDict, built: Any, path: str) -> Iterator[str]:
    if built is None:
        yield f"{path}: unknown element type {sent.get('type')!r}"
        return
    if not isinstance(built, dict):
        yield f"{path}: expected {type(built).__name__}, got an object"
        return
    for key, value in sent.items():
        where = f"{path}.{key}"
        if key in built:
            yield from _shape_differences(value, built[key], where)
        elif value is None:
            yield f"{where}: null is not accepted, omit the field instead"
        elif value == []:
            yield f"{where}: must not be an empty array"
        elif value != "":  # empty strings are checked by the explicit rules
            yield f"{where}: unknown field for type {sent.get('type')!r}"


def _list_differences(sent: list[Any], built: Any, path: str) -> Iterator[str]:
    if not isinstance(built, list) or len(built) != len(sent):
        yield f"{path}: array could not be modelled by slack_sdk"
        return
    for index, (item, model) in enumerate(zip(sent, built, strict=True)):
        yield from _shape_differences(item, model, f"{path}[{index}]")


def _block_rule_problems(block: JsonDict, path: str) -> Iterator[str]:
    """Limits and requirements Slack enforces that the SDK models leave out."""
    kind = block.get("type")
    yield from _id_problems(block, "block_id", path)
    yield from _empty_text_problems(block, path)
    if kind == "header":
        yield from _plain_text_problems(block.get("text"), f"{path}.text")
    elif kind == "section":
        yield from _section_field_problems(block, path)
    elif kind == "input":
        for key in ("label", "hint"):
            yield from _plain_text_problems(block.get(key), f"{path}.{key}")
    elif kind == "image" and not (block.get("image_url") or block.get("slack_file")):
        yield f"{path}: image blocks need image_url or slack_file"
    elements = list(_interactive_elements(block, path))
    for element, where in elements:
        yield from _element_problems(element, where)
    yield from _duplicate_action_id_problems([e for e, _ in elements], path)


def _interactive_elements(block: JsonDict, path: str) -> Iterator[tuple[JsonDict, str]]:
    """The interactive elements a block carries, wherever that block type keeps them."""
    if block.get("type") == "actions" and isinstance(block.get("elements"), list):
        for index, element in enumerate(block["elements"]):
            if isinstance(element, dict):
                yield element, f"{path}.elements[{index}]"
    for key in ("accessory", "element"):
        if isinstance(block.get(key), dict):
            yield block[key], f"{path}.{key}"


def _element_problems(element: JsonDict, path: str) -> Iterator[str]:
    yield from _id_problems(element, "action_id", path)
    kind = element.get("type")
    if kind == "button":
        yield from _plain_text_problems(element.get("text"), f"{path}.text")
        value = element.get("value")
        if isinstance(value, str) and len(value) > BUTTON_VALUE_MAX:
            yield f"{path}.value: {len(value)} characters, max is {BUTTON_VALUE_MAX}"
    if "placeholder" in element:
        yield from _plain_text_problems(element["placeholder"], f"{path}.placeholder")
    if isinstance(element.get("confirm"), dict):
        for key in ("title", "confirm", "deny"):
            yield from _plain_text_problems(element["confirm"].get(key), f"{path}.confirm.{key}")
    if kind == "plain_text_input":
        yield from _text_input_problems(element, path)
    yield from _option_problems(element, path, plain_only=kind in _PLAIN_OPTION_ELEMENTS)


def _text_input_problems(element: JsonDict, path: str) -> Iterator[str]:
    for key in ("min_length", "max_length"):
        value = element.get(key)
        if isinstance(value, int) and not 0 <= value <= TEXT_INPUT_LENGTH_MAX:
            yield f"{path}.{key}: {value} is outside 0..{TEXT_INPUT_LENGTH_MAX}"


def _option_problems(element: JsonDict, path: str, *, plain_only: bool) -> Iterator[str]:
    for option, where in _options_of(element, path):
        text = option.get("text")
        if plain_only:
            yield from _plain_text_problems(text, f"{where}.text")
        if isinstance(text, dict) and len(str(text.get("text", ""))) > OPTION_TEXT_MAX:
            yield f"{where}.text: longer than {OPTION_TEXT_MAX} characters"
        value = option.get("value")
        if isinstance(value, str) and len(value) > OPTION_VALUE_MAX:
            yield f"{where}.value: longer than {OPTION_VALUE_MAX} characters"


def _options_of(element: JsonDict, path: str) -> Iterator[tuple[JsonDict, str]]:
    """Every option object of a menu, including grouped and initial options."""
    for key in ("options", "initial_options"):
        for index, option in enumerate(element.get(key) or []):
            if isinstance(option, dict):
                yield option, f"{path}.{key}[{index}]"
    if isinstance(element.get("initial_option"), dict):
        yield element["initial_option"], f"{path}.initial_option"
    for g_index, group in enumerate(element.get("option_groups") or []):
        if not isinstance(group, dict):
            continue
        for index, option in enumerate(group.get("options") or []):
            if isinstance(option, dict):
                yield option, f"{path}.option_groups[{g_index}].options[{index}]"


def _section_field_problems(block: JsonDict, path: str) -> Iterator[str]:
    for index, item in enumerate(block.get("fields") or []):
        text = item.get("text") if isinstance(item, dict) else None
        if isinstance(text, str) and len(text) > SECTION_FIELD_TEXT_MAX:
            yield f"{path}.fields[{index}].text: {len(text)} characters, max is 2000"


def _id_problems(obj: JsonDict, key: str, path: str) -> Iterator[str]:
    value = obj.get(key)
    if value is None:
        return
    if not isinstance(value, str) or not value:
        yield f"{path}.{key}: must be a non-empty string"
    elif len(value) > ID_MAX:
        yield f"{path}.{key}: {len(value)} characters, max is {ID_MAX}"


def _plain_text_problems(obj: Any, path: str) -> Iterator[str]:
    if isinstance(obj, dict) and obj.get("type") != "plain_text":
        yield f"{path}: must be a plain_text object, got type {obj.get('type')!r}"


def _empty_text_problems(node: Any, path: str) -> Iterator[str]:
    """Text objects with empty text are refused by Slack; the SDK just drops the text."""
    if isinstance(node, dict):
        if node.get("type") in ("plain_text", "mrkdwn") and node.get("text") in ("", None):
            yield f"{path}: text objects need non-empty text"
        for key, value in node.items():
            yield from _empty_text_problems(value, f"{path}.{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _empty_text_problems(value, f"{path}[{index}]")


def _duplicate_block_id_problems(blocks: list[Any]) -> Iterator[str]:
    ids = [b.get("block_id") for b in blocks if isinstance(b, dict) and b.get("block_id")]
    for block_id in sorted({i for i in ids if ids.count(i) > 1}):
        yield f"blocks: block_id {block_id!r} is used by more than one block"


def _duplicate_action_id_problems(elements: list[JsonDict], path: str) -> Iterator[str]:
    ids = [e.get("action_id") for e in elements if e.get("action_id")]
    for action_id in sorted({i for i in ids if ids.count(i) > 1}):
        yield f"{path}: action_id {action_id!r} is used by more than one element"


def _modal_shape_problems(view: JsonDict) -> Iterator[str]:
    """Modal requirements the SDK's ``View`` does not check (it accepts a missing title)."""
    if view.get("type") != "modal":
        yield f"view.type must be 'modal', got {view.get('type')!r}"
    if not isinstance(view.get("title"), dict):
        yield "view.title is required"
    for key in ("title", "submit", "close"):
        obj = view.get(key)
        yield from _plain_text_problems(obj, f"view.{key}")
        text = obj.get("text") if isinstance(obj, dict) else None
        if isinstance(text, str) and len(text) > VIEW_BUTTON_TEXT_MAX:
            yield f"view.{key}: {len(text)} characters, max is {VIEW_BUTTON_TEXT_MAX}"
    yield from _id_problems(view, "callback_id", "view")
    metadata = view.get("private_metadata")
    if isinstance(metadata, str) and len(metadata) > PRIVATE_METADATA_MAX:
        yield f"view.private_metadata: {len(metadata)} characters, max is {PRIVATE_METADATA_MAX}"
    has_input = any(
        isinstance(b, dict) and b.get("type") == "input" for b in view.get("blocks") or []
    )
    if has_input and not view.get("submit"):
        yield "view.submit is required when the modal has input blocks"


# ---------------------------------------------------------------------------
# Request decoding helpers
# ---------------------------------------------------------------------------


async def _read_params(request: web.Request) -> JsonDict:
    """Merge query string and body into one dict, as Slack accepts either."""
    params: JsonDict = dict(request.query)
    if request.content_type == "application/json":
        body = await request.json()
        if not isinstance(body, dict):
            raise _ApiError("invalid_json", ["the JSON body must be an object"])
        params.update(body)
    elif request.can_read_body:
        form = await request.post()
        params.update({k: v for k, v in form.items() if isinstance(v, str)})
    return _decode_json_fields(params)


def _decode_json_fields(params: JsonDict) -> JsonDict:
    """Form-encoded calls carry ``blocks``/``view`` as JSON strings; decode them if valid."""
    decoded = dict(params)
    for name in _JSON_FIELDS:
        value = decoded.get(name)
        if isinstance(value, str):
            try:
                decoded[name] = json.loads(value)
            except json.JSONDecodeError:
                pass  # left as a string; the validators report it as malformed
    return decoded


def _bearer_token(headers: Mapping[str, str], params: Mapping[str, Any]) -> str | None:
    header = headers.get("Authorization", "")
    if header.startswith("Bearer "):
        return header.removeprefix("Bearer ").strip() or None
    token = params.get("token")
    return str(token) if token else None


def _truthy(value: Any) -> bool:
    """Slack reads booleans from form fields as "true"/"1"."""
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return bool(value)


def _has_content(payload: Mapping[str, Any]) -> bool:
    return bool(payload.get("text") or payload.get("blocks") or payload.get("attachments"))


# ---------------------------------------------------------------------------
# The emulator
# ---------------------------------------------------------------------------


class SlackApiEmulator:
    """A fake Slack workspace reachable at ``api_url``, holding state and a call log.

    Every answer is built synchronously after the request body is read, so concurrent calls
    from the app never interleave half-applied state.
    """

    def __init__(
        self,
        *,
        bot_token: str = DEFAULT_BOT_TOKEN,
        app_token: str | None = None,
        bot_user_id: str = "UBOT",
        bot_id: str = "BBOT",
        team_id: str = "T1",
        team_domain: str = "autogen-test",
        app_id: str = "AAPP",
        member_channels: Iterable[str] = ("C1",),
        channel_names: Mapping[str, str] | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        self.bot_token = bot_token
        self.app_token = app_token
        self.bot_user_id = bot_user_id
        self.bot_id = bot_id
        self.team_id = team_id
        self.team_domain = team_domain
        self.app_id = app_id
        self.member_channels: set[str] = set(member_channels)
        self.channel_names: dict[str, str] = dict(channel_names or {})
        self.host = host

        self.calls: list[RecordedCall] = []
        self.problems: list[str] = []
        self.messages: dict[tuple[str, str], JsonDict] = {}
        self.deleted_messages: dict[tuple[str, str], JsonDict] = {}
        self.ephemerals: list[JsonDict] = []
        self.deleted: list[JsonDict] = []
        self.views: dict[str, JsonDict] = {}
        self.views_opened: list[JsonDict] = []
        self.views_pushed: list[JsonDict] = []
        self.responses: dict[str, list[JsonDict]] = {}
        self.socket_connections: list[SocketConnection] = []
        self.socket_envelopes: list[SocketEnvelope] = []

        self._response_links: dict[str, tuple[str | None, str | None]] = {}
        self._failures: dict[str, list[FailureRule]] = {}
        self._delays: dict[str, list[float]] = {}
        self._used_triggers: set[str] = set()
        self._ts_counter = itertools.count(1)
        self._view_counter = itertools.count(1)
        self._hook_counter = itertools.count(1)
        self._ticket_counter = itertools.count(1)
        self._connection_counter = itertools.count(1)
        self._envelope_counter = itertools.count(1)
        self._socket_tickets: set[str] = set()
        self._sockets: dict[str, web.WebSocketResponse] = {}
        self._envelopes_by_id: dict[str, SocketEnvelope] = {}
        self._ack_waiters: dict[str, asyncio.Future[JsonDict]] = {}
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._handlers: dict[str, Callable[[JsonDict], JsonDict]] = {
            "auth.test": self._auth_test,
            "chat.postMessage": self._chat_post_message,
            "chat.update": self._chat_update,
            "chat.delete": self._chat_delete,
            "chat.postEphemeral": self._chat_post_ephemeral,
            "chat.getPermalink": self._chat_get_permalink,
            "conversations.info": self._conversations_info,
            "views.open": self._views_open,
            "views.push": self._views_push,
            "views.update": self._views_update,
            "apps.connections.open": self._apps_connections_open,
        }

    # -- lifecycle -----------------------------------------------------------

    async def __aenter__(self) -> SlackApiEmulator:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Listen on a free port of ``host``; the OS picks it so parallel runs never clash."""
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._handle_api)
        app.router.add_post("/response/{hook_id}", self._handle_response_url)
        app.router.add_get(SOCKET_PATH + "{ticket}", self._handle_socket)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, 0)
        await site.start()
        self._port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        await self._close_sockets()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def base_url(self) -> str:
        """``http://host:port`` of the running server."""
        if self._port is None:
            raise RuntimeError("SlackApiEmulator is not running; use 'async with' or start()")
        return f"http://{self.host}:{self._port}"

    @property
    def api_url(self) -> str:
        """Give this to ``AsyncWebClient(base_url=...)``; the SDK appends the method name."""
        return f"{self.base_url}/api/"

    # -- test-facing helpers ---------------------------------------------------

    def calls_to(self, method: str) -> list[RecordedCall]:
        """Recorded calls of one method, oldest first (failed ones included)."""
        return [call for call in self.calls if call.method == method]

    def thread(self, channel: str, thread_ts: str) -> list[JsonDict]:
        """Replies in a thread, oldest first, without the parent message."""
        replies = [
            message
            for (chan, ts), message in self.messages.items()
            if chan == channel and message.get("thread_ts") == thread_ts and ts != thread_ts
        ]
        return sorted(replies, key=lambda m: _ts_key(m["ts"]))

    def channel_messages(self, channel: str) -> list[JsonDict]:
        """Top-level messages of a channel (no thread replies), oldest first."""
        top = [
            message
            for (chan, ts), message in self.messages.items()
            if chan == channel and message.get("thread_ts") in (None, ts)
        ]
        return sorted(top, key=lambda m: _ts_key(m["ts"]))

    def add_user_message(
        self, channel: str, text: str, *, user: str = "U1", thread_ts: str | None = None
    ) -> str:
        """Seed a message written by a human, e.g. a thread parent the app replies to."""
        ts = self._next_ts()
        message: JsonDict = {"type": "message", "user": user, "text": text, "ts": ts}
        self._store_message(channel, message, thread_ts)
        return ts

    def new_response_url(self, channel: str | None = None, message_ts: str | None = None) -> str:
        """A response_url served by this emulator, as Slack puts in commands and actions.

        Linking it to ``channel``/``message_ts`` lets ``replace_original`` and
        ``delete_original`` act on that stored message, as Slack does for button clicks.
        """
        hook_id = f"hook{next(self._hook_counter):04d}"
        self.responses[hook_id] = []
        self._response_links[hook_id] = (channel, message_ts)
        return f"{self.base_url}/response/{hook_id}"

    def fail(
        self,
        method: str,
        status: int = 429,
        retry_after: int | None = 1,
        times: int = 1,
        error: str | None = None,
    ) -> None:
        """Answer the next ``times`` calls of ``method`` ("*" for any) with an HTTP error.

        429 answers carry ``Retry-After`` and ``ratelimited`` like Slack's rate limiter (503
        also carries ``Retry-After``); other statuses get an error body. Failed calls are
        recorded and change no state. Use method ``"response_url"`` to fail response_url posts.
        """
        rule = FailureRule(status, retry_after, error or _default_error(status), times=times)
        self._failures.setdefault(method, []).append(rule)

    def slow(self, method: str, seconds: float, times: int = 1) -> None:
        """Hold the next ``times`` calls of ``method`` for ``seconds`` before Slack acts on
        them, like a slow or congested API; the call then succeeds as usual."""
        self._delays.setdefault(method, []).extend([seconds] * times)

    def fail_ratio(
        self,
        method: str,
        ratio: float = 0.3,
        status: int = 429,
        retry_after: int | None = 0,
        seed: int = 1234,
        error: str | None = None,
    ) -> None:
        """Fail a deterministic share of ``method`` calls, drawn from ``Random(seed)``."""
        if not 0.0 <= ratio <= 1.0:
            raise ValueError("ratio must be within 0..1")
        rule = FailureRule(
            status,
            retry_after,
            error or _default_error(status),
            ratio=ratio,
            rng=random.Random(seed),
        )
        self._failures.setdefault(method, []).append(rule)

    def clear_failures(self) -> None:
        """Stop injecting failures (pending ``fail`` counts are dropped)."""
        self._failures.clear()

    async def wait_for(
        self,
        predicate: Callable[[SlackApiEmulator], Any | Awaitable[Any]],
        timeout: float = 10.0,
        interval: float = 0.02,
    ) -> Any:
        """Poll until ``predicate(self)`` is truthy and return its value.

        The app answers Slack quickly and does the work in the background, so tests wait
        for effects instead of sleeping. On timeout the AssertionError lists the traffic
        seen, which usually explains what the app did instead. A ``LookupError`` from the
        predicate (``s.thread(...)[2]`` before the third reply exists) counts as "not yet".
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            result = await self._evaluate(predicate)
            if result:
                return result
            if loop.time() >= deadline:
                raise AssertionError(f"condition not met within {timeout}s\n{self.summary()}")
            await asyncio.sleep(interval)

    async def _evaluate(self, predicate: Callable[[SlackApiEmulator], Any]) -> Any:
        try:
            result = predicate(self)
            if inspect.isawaitable(result):
                result = await result
        except LookupError:
            return None
        return result

    def summary(self, last: int = 40) -> str:
        """A readable digest of recent calls and all problems, for assertion messages."""
        lines = [f"{len(self.calls)} call(s) recorded, showing the last {last}:"]
        start = max(0, len(self.calls) - last)
        for number, call in enumerate(self.calls[start:], start=start + 1):
            outcome = "ok" if call.ok else f"error={call.error}"
            lines.append(f"  #{number} {call.method} -> {call.status} {outcome} {_brief(call)}")
        if self.socket_connections or self.socket_envelopes:
            lines.extend(self._socket_summary(last))
        lines.append(f"problems ({len(self.problems)}):")
        lines.extend(f"  - {problem}" for problem in self.problems)
        return "\n".join(lines)

    # -- HTTP handlers ---------------------------------------------------------

    async def _handle_api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        headers = dict(request.headers)
        try:
            params = await _read_params(request)
        except (_ApiError, json.JSONDecodeError, UnicodeDecodeError) as exc:
            params = {}
            body: JsonDict = {"ok": False, "error": "invalid_json"}
            self._problem(method, "invalid_json", [str(exc)])
            return self._answer(method, params, headers, 200, body, {}, request.path)
        delays = self._delays.get(method)
        if delays:
            await asyncio.sleep(delays.pop(0))
        status, body, extra = self._dispatch(method, params, headers)
        return self._answer(method, params, headers, status, body, extra, request.path)

    def _dispatch(
        self, method: str, params: JsonDict, headers: Mapping[str, str]
    ) -> tuple[int, JsonDict, dict[str, str]]:
        """Route one API call: method lookup, auth, injected failures, then the handler."""
        handler = self._handlers.get(method)
        if handler is None:
            return 200, {"ok": False, "error": "unknown_method"}, {}
        token = _bearer_token(headers, params)
        if token is None:
            return 200, {"ok": False, "error": "not_authed"}, {}
        auth_error = self._token_error(method, token)
        if auth_error is not None:
            return 200, {"ok": False, "error": auth_error}, {}
        injected = self._injected_failure(method)
        if injected is not None:
            return injected
        try:
            return 200, {"ok": True, **handler(params)}, {}
        except _ApiError as exc:
            return 200, _error_body(exc), {}

    def _token_error(self, method: str, token: str) -> str | None:
        """Slack's answer to a token that does not fit the method, else ``None``.

        ``apps.connections.open`` takes only the app-level token; every other method takes
        the bot token. The right kind of token with the wrong value is ``invalid_auth``.
        """
        if method in _APP_TOKEN_METHODS:
            if token == self.bot_token:
                return "not_allowed_token_type"
            if self.app_token is not None and token == self.app_token:
                return None
            return "invalid_auth"
        if token == self.bot_token:
            return None
        if self.app_token is not None and token == self.app_token:
            return "not_allowed_token_type"
        return "invalid_auth"

    def _answer(
        self,
        method: str,
        params: JsonDict,
        headers: dict[str, str],
        status: int,
        body: JsonDict,
        extra_headers: dict[str, str],
        path: str,
    ) -> web.Response:
        self._record(method, params, headers, status, body, path)
        return web.json_response(body, status=status, headers=extra_headers)

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
        payload = _decode_json_fields(payload)
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
        if not _truthy(payload.get("delete_original")):
            error, reasons = find_message_problems(payload)
            if error is None and not _has_content(payload):
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
        if _truthy(payload.get("delete_original")):
            self.deleted_messages[key] = self.messages.pop(key)
        elif _truthy(payload.get("replace_original")):
            self._apply_update(self.messages[key], payload)

    # -- bookkeeping -------------------------------------------------------------

    def _record(
        self,
        method: str,
        params: JsonDict,
        headers: dict[str, str],
        status: int,
        body: JsonDict,
        path: str,
    ) -> None:
        call = RecordedCall(method, params, headers, status, body, time.monotonic(), path)
        self.calls.append(call)

    def _problem(self, method: str, error: str, reasons: Iterable[str]) -> None:
        """Note a payload Slack would refuse (or frown on), naming the call and why."""
        number = len(self.calls) + 1
        self.problems.append(f"{method} (call #{number}): {error}: " + "; ".join(reasons))

    def _warn_missing_fallback(self, method: str, payload: Mapping[str, Any]) -> None:
        if payload.get("blocks") and not payload.get("text"):
            reason = "blocks without a 'text' fallback (notifications would show nothing)"
            self._problem(method, "no_fallback_text", [reason])

    def _injected_failure(self, method: str) -> tuple[int, JsonDict, dict[str, str]] | None:
        for rule in self._failures.get(method, []) + self._failures.get("*", []):
            if rule.triggers():
                headers: dict[str, str] = {}
                if rule.retry_after is not None and rule.status in (429, 503):
                    headers["Retry-After"] = str(rule.retry_after)
                return rule.status, {"ok": False, "error": rule.error}, headers
        return None

    def _next_ts(self) -> str:
        micros = _FIRST_TS_MICROS + next(self._ts_counter) * _TS_STEP_MICROS
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    def _require(self, params: JsonDict, *names: str) -> None:
        missing = [name for name in names if not params.get(name)]
        if missing:
            raise _ApiError("invalid_arguments", [f"missing required field: {n}" for n in missing])

    # -- channels and messages -------------------------------------------------

    def _resolve_channel(self, channel: Any) -> str:
        """Map a channel argument to a channel id the bot may post in, or fail like Slack."""
        if not isinstance(channel, str) or not channel:
            raise _ApiError("channel_not_found")
        if channel.startswith(("U", "W")):
            dm = f"D{channel}"  # posting to a user id opens the app's DM with them
            self.member_channels.add(dm)
            return dm
        if channel in self.member_channels:
            return channel
        if channel.startswith(("C", "G", "D")):
            raise _ApiError("not_in_channel")
        raise _ApiError("channel_not_found")

    def _check_message_payload(
        self, method: str, params: JsonDict, *, require_content: bool
    ) -> None:
        """Raise the Slack error for a bad message payload and log it as a problem."""
        error, reasons = find_message_problems(params)
        if error is None and require_content and not _has_content(params):
            raise _ApiError("no_text")
        if error is not None:
            self._problem(method, error, reasons)
            raise _ApiError(error, [f"[ERROR] {r}" for r in reasons])
        self._warn_missing_fallback(method, params)

    def _new_bot_message(self, params: JsonDict) -> JsonDict:
        message: JsonDict = {
            "type": "message",
            "user": self.bot_user_id,
            "bot_id": self.bot_id,
            "app_id": self.app_id,
            "team": self.team_id,
            "text": params.get("text") or "",
            "ts": self._next_ts(),
        }
        for key in ("blocks", "attachments", "metadata"):
            if params.get(key) is not None:
                message[key] = params[key]
        return message

    def _store_message(self, channel: str, message: JsonDict, thread_ts: str | None) -> None:
        """Save a message, attaching it to its thread parent the way Slack threads work."""
        message.update(channel=channel, history=[])
        if thread_ts:
            parent = self._thread_parent(channel, thread_ts)
            message["thread_ts"] = parent
            if (channel, parent) in self.messages:
                self._note_reply(self.messages[(channel, parent)], message["ts"])
        self.messages[(channel, message["ts"])] = message

    def _thread_parent(self, channel: str, thread_ts: str) -> str:
        """A reply's ts given as thread_ts means its parent's thread."""
        target = self.messages.get((channel, thread_ts))
        if target is None:
            return thread_ts
        return str(target.get("thread_ts") or thread_ts)

    @staticmethod
    def _note_reply(parent: JsonDict, reply_ts: str) -> None:
        parent["thread_ts"] = parent["ts"]
        parent["reply_count"] = int(parent.get("reply_count", 0)) + 1
        parent["latest_reply"] = reply_ts

    @staticmethod
    def _apply_update(message: JsonDict, params: Mapping[str, Any]) -> None:
        """Replace text/blocks; fields left out keep their value, as chat.update does."""
        previous = {k: message.get(k) for k in ("text", "blocks", "attachments")}
        message["history"].append(previous)
        for key in ("text", "blocks", "attachments"):
            if key in params:
                message[key] = params[key]
        message["edited"] = {"user": message.get("user"), "ts": message["ts"]}

    # -- Socket Mode -------------------------------------------------------------

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

    def _socket_summary(self, last: int) -> list[str]:
        open_count = len(self._sockets)
        lines = [
            f"socket mode: {len(self.socket_connections)} connection(s), {open_count} open; "
            f"{len(self.socket_envelopes)} envelope(s), showing the last {last}:"
        ]
        for record in self.socket_envelopes[-last:]:
            kind = record.envelope["payload"].get("type") or record.envelope["payload"].get(
                "command", ""
            )
            if record.ack is None:
                outcome = "not acknowledged"
            else:
                outcome = f"acked in {record.ack_latency:.2f}s"
                if "payload" in record.ack:
                    outcome += " with a payload"
            lines.append(f"  {record.envelope_id} {record.type} {kind} -> {outcome}")
        return lines

    async def _close_sockets(self) -> None:
        """Close every connection (going away) and fail waits for acks that cannot come."""
        for waiter in self._ack_waiters.values():
            if not waiter.done():
                waiter.set_exception(ConnectionError("the Slack emulator stopped"))
        for ws in list(self._sockets.values()):
            await ws.close(code=WSCloseCode.GOING_AWAY, message=b"emulator stopping")

    # -- Web API methods -------------------------------------------------------

    def _auth_test(self, params: JsonDict) -> JsonDict:
        return {
            "url": f"https://{self.team_domain}.slack.com/",
            "team": self.team_domain,
            "user": "autogen",
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            "is_enterprise_install": False,
        }

    def _chat_post_message(self, params: JsonDict) -> JsonDict:
        channel = self._resolve_channel(params.get("channel"))
        self._check_message_payload("chat.postMessage", params, require_content=True)
        thread_ts = params.get("thread_ts") or None
        if thread_ts and (channel, thread_ts) not in self.messages:
            reason = f"thread_ts {thread_ts} matches no message in {channel}"
            self._problem("chat.postMessage", "thread_not_found", [reason])
        message = self._new_bot_message(params)
        self._store_message(channel, message, thread_ts)
        if thread_ts and _truthy(params.get("reply_broadcast")):
            message["subtype"] = "thread_broadcast"
        return {"channel": channel, "ts": message["ts"], "message": _public(message)}

    def _chat_update(self, params: JsonDict) -> JsonDict:
        channel = self._resolve_channel(params.get("channel"))
        message = self.messages.get((channel, str(params.get("ts") or "")))
        if message is None:
            raise _ApiError("message_not_found")
        if message.get("user") != self.bot_user_id:
            raise _ApiError("cant_update_message")
        self._check_message_payload("chat.update", params, require_content=True)
        self._apply_update(message, params)
        return {
            "channel": channel,
            "ts": message["ts"],
            "text": message.get("text", ""),
            "message": _public(message),
        }

    def _chat_delete(self, params: JsonDict) -> JsonDict:
        channel = self._resolve_channel(params.get("channel"))
        ts = str(params.get("ts") or "")
        message = self.messages.get((channel, ts))
        if message is None:
            raise _ApiError("message_not_found")
        if message.get("user") != self.bot_user_id:
            raise _ApiError("cant_delete_message")
        del self.messages[(channel, ts)]
        self.deleted.append(message)
        return {"channel": channel, "ts": ts}

    def _chat_post_ephemeral(self, params: JsonDict) -> JsonDict:
        channel = self._resolve_channel(params.get("channel"))
        if not params.get("user"):
            raise _ApiError("user_not_in_channel")
        self._check_message_payload("chat.postEphemeral", params, require_content=True)
        entry: JsonDict = {
            "channel": channel,
            "user": params["user"],
            "text": params.get("text") or "",
            "blocks": params.get("blocks"),
            "thread_ts": params.get("thread_ts"),
            "message_ts": self._next_ts(),
        }
        self.ephemerals.append(entry)
        return {"message_ts": entry["message_ts"]}

    def _chat_get_permalink(self, params: JsonDict) -> JsonDict:
        channel = str(params.get("channel") or "")
        ts = str(params.get("message_ts") or "")
        message = self.messages.get((channel, ts))
        if message is None:
            raise _ApiError("message_not_found")
        link = f"https://{self.team_domain}.slack.com/archives/{channel}/p{ts.replace('.', '')}"
        parent = message.get("thread_ts")
        if parent and parent != ts:
            link += f"?thread_ts={parent}&cid={channel}"
        return {"channel": channel, "permalink": link}

    def _conversations_info(self, params: JsonDict) -> JsonDict:
        channel = str(params.get("channel") or "")
        is_member = channel in self.member_channels
        if not channel.startswith(("C", "G", "D")) or (not is_member and channel[0] != "C"):
            raise _ApiError("channel_not_found")
        return {
            "channel": {
                "id": channel,
                "name": self.channel_names.get(channel, f"channel-{channel.lower()}"),
                "is_channel": channel.startswith("C"),
                "is_group": channel.startswith("G"),
                "is_im": channel.startswith("D"),
                "is_private": channel.startswith("G"),
                "is_archived": False,
                "is_member": is_member,
                "created": 1_600_000_000,
                "context_team_id": self.team_id,
            }
        }

    # -- views -------------------------------------------------------------------

    def _views_open(self, params: JsonDict) -> JsonDict:
        stored = self._open_view("views.open", params)
        self.views_opened.append(stored)
        return {"view": stored}

    def _views_push(self, params: JsonDict) -> JsonDict:
        stored = self._open_view("views.push", params)
        self.views_pushed.append(stored)
        return {"view": stored}

    def _open_view(self, method: str, params: JsonDict) -> JsonDict:
        """Shared by open and push: a fresh trigger, a valid modal, a new view id."""
        self._require(params, "trigger_id", "view")
        trigger = str(params["trigger_id"])
        self._check_view(method, params["view"])
        if trigger in self._used_triggers:
            self._problem(method, "trigger_exchanged", [f"trigger_id {trigger} was already used"])
            raise _ApiError("trigger_exchanged")
        self._used_triggers.add(trigger)
        view_id = f"V{next(self._view_counter):04d}"
        stored = self._stored_view(params["view"], view_id, version=1)
        self.views[view_id] = stored
        return stored

    def _views_update(self, params: JsonDict) -> JsonDict:
        self._require(params, "view")
        current = self._find_view(params)
        expected_hash = params.get("hash")
        if expected_hash and expected_hash != current["hash"]:
            raise _ApiError("hash_conflict")
        self._check_view("views.update", params["view"])
        version = int(current["hash"].rsplit("-", 1)[1]) + 1
        stored = self._stored_view(params["view"], current["id"], version=version)
        self.views[current["id"]] = stored
        return {"view": stored}

    def _find_view(self, params: JsonDict) -> JsonDict:
        view_id = params.get("view_id")
        external_id = params.get("external_id")
        for view in self.views.values():
            if (view_id and view["id"] == view_id) or (
                external_id and view.get("external_id") == external_id
            ):
                return view
        raise _ApiError("not_found")

    def _check_view(self, method: str, view: Any) -> None:
        reasons = find_view_problems(view)
        if reasons:
            self._problem(method, "invalid_arguments", reasons)
            raise _ApiError("invalid_arguments", [f"[ERROR] {r}" for r in reasons])

    def _stored_view(self, view: JsonDict, view_id: str, *, version: int) -> JsonDict:
        """The view as Slack echoes it back, with the ids and defaults it fills in."""
        return {
            "callback_id": "",
            "private_metadata": "",
            "external_id": "",
            "clear_on_close": False,
            "notify_on_close": False,
            "submit": None,
            "close": None,
            **view,
            "id": view_id,
            "team_id": self.team_id,
            "app_id": self.app_id,
            "bot_id": self.bot_id,
            "app_installed_team_id": self.team_id,
            "hash": f"{view_id}-{version}",
            "root_view_id": view_id,
            "previous_view_id": None,
            "state": {"values": {}},
        }


# ---------------------------------------------------------------------------
# Small pure helpers
# ---------------------------------------------------------------------------


def _ts_key(ts: str) -> tuple[int, int]:
    seconds, _, micros = ts.partition(".")
    return int(seconds), int(micros or 0)


def _envelope_id(number: int) -> str:
    """A UUID-shaped envelope id like Slack's, counted so runs are reproducible."""
    return f"{number:08x}-0000-4000-8000-{number:012x}"


def _public(message: JsonDict) -> JsonDict:
    """A stored message without the emulator's own bookkeeping, as Slack returns it."""
    return {k: v for k, v in message.items() if k not in ("channel", "history")}


def _default_error(status: int) -> str:
    return {429: "ratelimited", 500: "internal_error", 503: "service_unavailable"}.get(
        status, "request_failed"
    )


def _error_body(exc: _ApiError) -> JsonDict:
    body: JsonDict = {"ok": False, "error": exc.code}
    if exc.messages:
        body["response_metadata"] = {"messages": exc.messages}
    return body


def _brief(call: RecordedCall) -> str:
    """One-line gist of a call's arguments for ``summary``."""
    keys = ("channel", "ts", "thread_ts", "trigger_id", "view_id")
    parts = [f"{k}={call.params[k]}" for k in keys if call.params.get(k)]
    text = call.params.get("text")
    if isinstance(text, str) and text:
        parts.append(f"text={text[:60]!r}")
    if call.params.get("blocks"):
        parts.append(f"blocks={len(call.params['blocks'])}")
    return " ".join(parts)
