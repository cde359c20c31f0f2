"""The request guard as pure functions: what passes to Bolt, what is refused and why."""

from __future__ import annotations

import json
import time
from urllib.parse import urlencode

import pytest

from bot.guard import DECLINED, Checked, Refusal, check_request, payload_problem
from tests.fakes.slack_signing import (
    app_mention,
    block_actions,
    event_callback,
    json_payload,
    sign,
    slash_command,
    view_submission,
)

SECRET = "guard-signing-secret"


def _headers(body: bytes, content_type: str, **override: str) -> dict[str, list[str]]:
    headers = {k.lower(): [v] for k, v in sign(SECRET, body).items()}
    headers["content-type"] = [content_type]
    headers.update({k.replace("_", "-"): [v] for k, v in override.items()})
    return headers


def _check(body: bytes, content_type: str, **override: str):
    return check_request(
        _headers(body, content_type, **override), body, signing_secret=SECRET, now=time.time()
    )


@pytest.mark.parametrize(
    "request_",
    [
        slash_command(text="write a haiku"),
        block_actions(action_id="credential_open", value="q1"),
        block_actions(action_id="approve:3", value="a1"),
        view_submission(callback_id="credential_modal", private_metadata="q1"),
        (b'{"type": "url_verification", "challenge": "c", "token": "t"}', "application/json"),
        json_payload(event_callback(app_mention(text="<@UBOT> do it", ts="1700000000.1"))),
    ],
)
def test_what_slack_sends_for_the_app_passes(request_: tuple[bytes, str]) -> None:
    checked = _check(*request_)
    assert isinstance(checked, Checked), checked
    assert checked.text == request_[0].decode()


def test_a_command_that_mentions_payload_is_read_as_the_command_it_is() -> None:
    """Bolt 1.30 reads any form body containing "payload" as an empty interaction."""
    checked = _check(*slash_command(text="explain the webhook payload", channel_name="payload"))
    assert isinstance(checked, Checked)
    assert checked.payload["command"] == "/autogen"
    assert checked.payload["text"] == "explain the webhook payload"


def test_deep_nesting_and_nul_characters_are_refused() -> None:
    deep = b"[" * 50_000  # too deep for the JSON parser itself
    refused = _check(deep, "application/json")
    assert isinstance(refused, Refusal) and refused.status == 400
    for depth in (100, 500, 900, 990):  # near the parser's limit, or past a walk's
        nested = ('{"type": "view_submission", "view": ' + "[" * depth + "]" * depth + "}").encode()
        refused = _check(nested, "application/json")
        assert isinstance(refused, Refusal) and refused.status == 400, depth
        assert depth > 500 or refused.reason == "nested too deeply", refused
    body, form = view_submission(callback_id="credential_modal", private_metadata="ab\x00cd")
    refused = _check(body, form)
    assert isinstance(refused, Refusal) and refused.reason == "a NUL character"


def test_requests_for_what_the_app_does_not_handle_are_declined_with_200() -> None:
    for body, content_type in [
        slash_command(command="/other", text="x"),
        block_actions(action_id="someone_elses_button", value="v"),
        view_submission(callback_id="another_modal"),
        (b'{"type": "event_callback", "event": {"type": "reaction_added"}}', "application/json"),
    ]:
        refused = _check(body, content_type)
        assert isinstance(refused, Refusal) and refused.status == DECLINED, body


def test_message_events_reach_the_listener_unless_a_field_it_reads_is_malformed() -> None:
    event = {"type": "message", "channel": "C1", "user": "U1", "ts": "1.2", "thread_ts": "1.1"}
    good = json.dumps({"type": "event_callback", "team_id": "T1", "event": event}).encode()
    assert not isinstance(_check(good, "application/json"), Refusal)
    for key, value in (("text", 5), ("thread_ts", 1.1), ("user", ["U1"]), ("subtype", {})):
        bad = {"type": "event_callback", "team_id": "T1", "event": {**event, key: value}}
        refused = _check(json.dumps(bad).encode(), "application/json")
        assert isinstance(refused, Refusal) and f"message {key}" in refused.reason, key


def test_refusals_name_the_problem_without_quoting_the_request() -> None:
    body, form = slash_command(text="sk-secret-in-the-task")
    cases = {
        "bad signature": _check(body, form, x_slack_signature="v0=" + "0" * 64),
        "missing or malformed signature headers": _check(body, form, x_slack_signature="x"),
        "stale timestamp": check_request(
            {k.lower(): [v] for k, v in sign(SECRET, body, timestamp=1).items()}
            | {"content-type": [form]},
            body,
            signing_secret=SECRET,
            now=time.time(),
        ),
        "not form-encoded or JSON": _check(body, "text/plain"),
        "body is not UTF-8": _check(b"\xff\xfe", form),
    }
    for reason, refused in cases.items():
        assert isinstance(refused, Refusal) and refused.reason == reason, (reason, refused)
        assert "sk-secret" not in refused.reason
    repeated = _headers(body, form)
    repeated["x-slack-signature"] *= 2
    refused = check_request(repeated, body, signing_secret=SECRET, now=time.time())
    assert isinstance(refused, Refusal) and refused.status == 400


def _mention(**fields: object) -> dict:
    return {
        "type": "app_mention",
        "user": "U1",
        "channel": "C1",
        "ts": "1.2",
        "text": "x",
        **fields,
    }


@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        ({"type": "block_actions", "user": "U1", "actions": []}, "user is not an object"),
        ({"type": "block_actions", "user": {"id": 7}}, "user.id is not a string"),
        ({"type": "block_actions", "user": {"id": "U1"}}, "block_actions without actions"),
        (
            {"type": "block_actions", "user": {"id": "U1"}, "actions": [1]},
            "actions is not a list of objects",
        ),
        (
            {
                "type": "view_submission",
                "user": {"id": "U1"},
                "view": {"callback_id": "c", "state": []},
            },
            "view state is not an object",
        ),
        (
            {"command": "/autogen", "team_id": "T1", "user_id": "U 1"},
            "command without a valid user_id",
        ),
        ({"type": "event_callback", "event": {}}, "event without a type"),
        (
            {"type": "event_callback", "team_id": "T1", "event": {"type": "app_mention"}},
            "app_mention without a user",
        ),
        (
            {"type": "event_callback", "team_id": "T1", "event": _mention(thread_ts=1.5)},
            "app_mention thread_ts is not a string",
        ),
        (
            {"type": "event_callback", "team_id": "t 1", "event": _mention()},
            "event without a team id",
        ),
        ({"team": 3}, "team is not an object"),
    ],
)
def test_payload_shapes(payload: dict, problem: str) -> None:
    assert payload_problem(payload) == problem


def test_a_json_body_that_is_not_an_object_is_refused() -> None:
    body = b"[1, 2]"
    refused = _check(body, "application/json")
    assert isinstance(refused, Refusal) and refused.reason == "payload is not an object"
    form = urlencode({"payload": "not json"}).encode()
    refused = _check(form, "application/x-www-form-urlencoded")
    assert isinstance(refused, Refusal) and refused.reason == "body does not parse"


def test_event_payloads_bolt_would_choke_on_are_refused() -> None:
    mention = {"type": "event_callback", "team_id": "T1", "event": _mention()}
    assert (
        payload_problem({**mention, "response_urls": 5}) == "response_urls is not a list of objects"
    )
    assert (
        payload_problem({**mention, "response_urls": [1]})
        == "response_urls is not a list of objects"
    )
    by_bot = {"type": "app_mention", "bot_id": "B1", "text": "x", "ts": "1", "channel": "C1"}
    assert payload_problem({"type": "event_callback", "team_id": "T1", "event": by_bot}) is None
