"""Drafts: the chunks of replies being streamed, held in this process for the live view."""

from __future__ import annotations

import pytest

from runner.drafts import Draft, Drafts
from runner.redact import REDACTED, secret_in_use


@pytest.fixture
def drafts() -> Drafts:
    return Drafts()


@pytest.fixture
def heard(drafts: Drafts) -> list[str]:
    """The run ids the listener was told about, in order."""
    told: list[str] = []
    drafts.subscribe(told.append)
    return told


def test_chunks_build_one_draft_per_run(drafts: Drafts) -> None:
    identity = {"username": "Writer", "icon_emoji": ":pencil:"}
    drafts.add("r1", source="writer", chunk="Hello", turn=2, identity=identity, message_id="m1")
    drafts.add("r1", source="writer", chunk=", world", turn=2, identity=identity, message_id="m1")
    drafts.add("r2", source="critic", chunk="No.", turn=1)

    first = drafts.get("r1")
    assert first is not None
    assert (first.run_id, first.source, first.turn) == ("r1", "writer", 2)
    assert (first.identity, first.message_id) == (identity, "m1")
    assert first.chunks == ["Hello", ", world"]
    assert first.text == "Hello, world"
    assert first.version == 2
    assert first.first_chunk_at > 0
    second = drafts.get("r2")
    assert second is not None and (second.text, second.version) == ("No.", 1)
    assert second.identity is None and second.message_id is None
    assert drafts.get("r3") is None


def test_close_drops_the_draft(drafts: Drafts) -> None:
    drafts.add("r1", source="writer", chunk="Hello", turn=1)
    drafts.close("r1")
    assert drafts.get("r1") is None
    drafts.close("r1")  # twice is harmless
    assert drafts.get("r1") is None


def test_listeners_hear_every_chunk_and_the_close(drafts: Drafts, heard: list[str]) -> None:
    also: list[str] = []
    drafts.subscribe(also.append)

    drafts.add("r1", source="writer", chunk="a", turn=1)
    drafts.add("r2", source="critic", chunk="b", turn=1)
    drafts.add("r1", source="writer", chunk="c", turn=1)
    drafts.close("r1")

    assert heard == ["r1", "r2", "r1", "r1"]
    assert also == heard


def test_closing_an_unknown_run_tells_nobody(drafts: Drafts, heard: list[str]) -> None:
    drafts.close("never-streamed")
    drafts.add("r1", source="writer", chunk="a", turn=1)
    drafts.close("r1")
    drafts.close("r1")  # already closed
    assert heard == ["r1", "r1"]


def test_empty_chunks_change_nothing_and_tell_nobody(drafts: Drafts, heard: list[str]) -> None:
    drafts.add("r1", source="writer", chunk="", turn=1)
    assert heard == []
    drafts.add("r1", source="writer", chunk="Hello", turn=1)
    drafts.add("r1", source="writer", chunk="", turn=1)

    draft = drafts.get("r1")
    assert draft is not None
    assert (draft.chunks, draft.version) == (["Hello"], 1)
    assert heard == ["r1"]


def test_another_agent_restarts_the_text_and_the_version_keeps_growing(
    drafts: Drafts, heard: list[str]
) -> None:
    drafts.add("r1", source="writer", chunk="Draft one", turn=1)
    drafts.add("r1", source="writer", chunk=" more", turn=1)
    before = drafts.get("r1")
    assert before is not None and before.version == 2

    drafts.add("r1", source="critic", chunk="Too long", turn=2, identity={"username": "Critic"})

    after = drafts.get("r1")
    assert after is not None and after is not before
    assert (after.source, after.turn, after.identity) == ("critic", 2, {"username": "Critic"})
    assert (after.text, after.version) == ("Too long", 3)
    assert heard == ["r1", "r1", "r1"]


def test_a_new_model_call_of_the_same_agent_restarts_the_text(drafts: Drafts) -> None:
    drafts.add("r1", source="writer", chunk="Let me look that up", turn=1, message_id="call-1")
    drafts.add("r1", source="writer", chunk="Found it", turn=1, message_id="call-2")
    drafts.add("r1", source="writer", chunk=": 42", turn=1, message_id="call-2")

    draft = drafts.get("r1")
    assert draft is not None
    assert (draft.message_id, draft.text, draft.version) == ("call-2", "Found it: 42", 3)


def test_a_new_message_id_starting_empty_keeps_the_version_then_grows(drafts: Drafts) -> None:
    drafts.add("r1", source="writer", chunk="old", turn=1, message_id="call-1")
    drafts.add("r1", source="writer", chunk="", turn=1, message_id="call-2")
    restarted = drafts.get("r1")
    assert restarted is not None
    assert (restarted.message_id, restarted.text, restarted.version) == ("call-2", "", 1)

    drafts.add("r1", source="writer", chunk="new", turn=1, message_id="call-2")
    draft = drafts.get("r1")
    assert draft is restarted and (draft.text, draft.version) == ("new", 2)


def test_versions_start_afresh_after_a_close(drafts: Drafts) -> None:
    drafts.add("r1", source="writer", chunk="a", turn=1)
    drafts.add("r1", source="writer", chunk="b", turn=1)
    drafts.close("r1")
    drafts.add("r1", source="writer", chunk="c", turn=2)
    draft = drafts.get("r1")
    assert draft is not None and (draft.text, draft.version, draft.turn) == ("c", 1, 2)


def test_text_hides_a_secret_the_run_uses(drafts: Drafts) -> None:
    secret = "correct-horse-battery"
    drafts.add("r1", source="writer", chunk="The key is correct-horse-", turn=1)
    drafts.add("r1", source="writer", chunk="battery, keep it safe", turn=1)
    draft = drafts.get("r1")
    assert draft is not None

    with secret_in_use(secret):
        assert draft.text == f"The key is {REDACTED}, keep it safe"
        assert secret not in draft.text
    # The chunks themselves are untouched; redaction happens as the text is read.
    assert "".join(draft.chunks) == f"The key is {secret}, keep it safe"
    assert draft.text == f"The key is {secret}, keep it safe"  # no longer in use


def test_text_hides_key_shaped_strings() -> None:
    draft = Draft(
        "r1", "writer", 1, None, chunks=["use sk-", "abcdef123456 and ", "xox" + "b-1234567"]
    )
    # A key-shaped token at the very end may still grow: held back until it ends.
    assert draft.text == f"use {REDACTED} and "
    draft.chunks.append(" now")
    assert draft.text == f"use {REDACTED} and {REDACTED} now"
    assert "abcdef123456" not in draft.text


def test_a_secret_half_written_is_not_shown(drafts: Drafts) -> None:
    with secret_in_use("correct-horse-battery"):
        drafts.add("r1", source="writer", chunk="The key is correct-horse-", turn=1)
        draft = drafts.get("r1")
        assert draft is not None
        assert "correct-horse" not in draft.text
