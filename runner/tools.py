"""Tools the runner gives every agent that can call functions."""

from __future__ import annotations

from dataclasses import dataclass, field

from autogen_core.tools import FunctionTool

from store import Store
from store.credentials import WORKSPACE_USER
from store.crypto import Owner
from store.key_requests import KeyWanted
from store.records import Run


@dataclass
class ToolRequests:
    """Credentials that agents asked for during the current turn."""

    wanted: list[KeyWanted] = field(default_factory=list)


def credential_tool(store: Store, run: Run, requests: ToolRequests) -> FunctionTool:
    """`request_credential(provider, reason)`: says whether a key exists, never its value.

    A missing key is only noted here; the run pauses at the end of the turn (a team cannot
    be saved mid-turn), asks the requester privately, and resumes when it arrives."""

    async def request_credential(provider: str, reason: str) -> str:
        name = provider.strip().lower()[:64] or "unknown"
        for user_id in (run.requester_id, WORKSPACE_USER):
            if await store.credentials.exists(Owner(run.workspace_id, user_id, name)):
                return f"A {name} credential is available; tools that need it will read it."
        requests.wanted.append(KeyWanted(name, reason.strip()[:500] or "An agent needs it."))
        return (
            f"No {name} credential is stored. The run pauses after this turn and asks the "
            "requester for it privately; you will be told when it is available."
        )

    return FunctionTool(
        request_credential,
        name="request_credential",
        description=(
            "Ask the person who started this run for a credential (API key) for a provider. "
            "Returns only whether it is available, never the value."
        ),
    )
