"""Block Kit rules: why Slack would refuse a message, a block list or a modal.

The Slack emulator (``tests.fakes.slack_api``) runs every payload it receives through these
pure functions, and tests may call them directly. ``slack_sdk``'s models alone are lenient
(see ``find_block_problems``), so checking combines three layers: the SDK's own validators
(lengths, counts, enums), a comparison of what was sent against what the SDK could model
(to catch unknown block types, unknown fields and values it silently coerced), and explicit
rules for limits the SDK does not enforce.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Literal

from slack_sdk.errors import SlackObjectFormationError
from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

from tests.fakes.slack_records import JsonDict

__all__ = [
    "Surface",
    "find_block_problems",
    "find_message_problems",
    "find_view_problems",
]

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

# Element types whose option labels must be plain text (checkboxes and radios allow mrkdwn).
_PLAIN_OPTION_ELEMENTS = frozenset(
    {"static_select", "multi_static_select", "external_select", "multi_external_select", "overflow"}
)


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
