"""Who may do what through the web API: a token acts for its person only; another's task,
keys and decisions are refused (403) and audited; no token or a revoked one is a 401; a
decision is taken once. Every refusal is JSON with a message, and never a 5xx."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from store import Store
from store.tokens import LOCAL_WORKSPACE
from tests.db import audit_entries
from tests.e2e.stack import AGENT_MODEL, VERIFIER_MODEL, verdict
from tests.web.stack import KEY, running_web

FIX = [{"type": "revise", "label": "Fix it", "params": {}}]


async def test_another_persons_token_is_refused_everywhere_and_audited(
    tmp_path: Path, secret_key: str
) -> None:
    async with running_web(tmp_path, secret_key, llm_api_key=KEY) as stack:
        stack.llm.script(AGENT_MODEL, ["1. Plan.", "Draft", "Fine. TERMINATE"])
        stack.llm.script(VERIFIER_MODEL, [verdict("fail", "Too short.", FIX)])
        alice, bob = await stack.client("alice"), await stack.client("bob")
        task_id = await alice.start()
        async with alice.follow(task_id) as socket:
            offered = (await alice.events_until(socket, "actions_offered"))[-1]
        action_id = offered["actions"][0]["id"]
        given = await alice.call(
            "POST", "/credentials", {"user_id": "alice", "provider": "github", "value": KEY}
        )
        assert given.status == 201

        refusals = [
            await bob.call("GET", f"/tasks/{task_id}"),
            await bob.call("POST", f"/tasks/{task_id}/cancel"),
            await bob.call("POST", f"/tasks/{task_id}/actions/{action_id}", {}),
            await bob.call("GET", "/credentials/alice"),
            await bob.call("DELETE", "/credentials/alice/github"),
            await bob.call(
                "POST", "/credentials", {"user_id": "alice", "provider": "github", "value": KEY}
            ),
        ]
        assert [r.status for r in refusals] == [403] * 6
        assert all(r.body == {"error": "This belongs to someone else."} for r in refusals)
        async with bob.follow(task_id) as socket:
            assert (await socket.receive()).type == aiohttp.WSMsgType.CLOSE
            assert socket.close_code == 4403
        assert [t["task_id"] for t in (await bob.call("GET", "/tasks")).body] == []

        # Nothing of alice's changed: her run still waits, her key is still there.
        read = await alice.call("GET", f"/tasks/{task_id}")
        assert read.body["status"] == "waiting_approval"
        listed = await alice.call("GET", "/credentials/alice")
        assert [c["provider"] for c in listed.body] == ["github"]

        store = await Store.open(stack.settings, run_migrations=False)
        try:
            entries = await audit_entries(store, LOCAL_WORKSPACE)
        finally:
            await store.close()
        refused = [e for e in entries if e["action"] == "api_refused"]
        assert [(e["actor_id"], e["detail"]["asked"]) for e in refused] == [
            ("bob", "read_task"),
            ("bob", "cancel_task"),
            ("bob", "decide_action"),
            ("bob", "list_credentials"),
            ("bob", "delete_credential"),
            ("bob", "give_credential"),
            ("bob", "follow_task"),
        ]
        assert KEY not in "".join(bob.texts + alice.texts)


async def test_a_decision_is_taken_once(tmp_path: Path, secret_key: str) -> None:
    async with running_web(tmp_path, secret_key, llm_api_key=KEY) as stack:
        stack.llm.script(AGENT_MODEL, ["1. Plan.", "Draft", "Fine. TERMINATE"])
        stack.llm.script(VERIFIER_MODEL, [verdict("fail", "Too short.", FIX)])
        stack.llm.default(VERIFIER_MODEL, verdict())
        alice = await stack.client("alice")
        task_id = await alice.start()
        async with alice.follow(task_id) as socket:
            offered = (await alice.events_until(socket, "actions_offered"))[-1]
        first, second = (action["id"] for action in offered["actions"][:2])
        path = f"/tasks/{task_id}/actions/{first}"
        assert (await alice.call("POST", path, {"note": "Make it longer."})).status == 200
        replayed = await alice.call("POST", path, {"note": "Make it longer."})
        assert replayed.status == 409 and replayed.body == {"error": "This was already decided."}
        other = await alice.call("POST", f"/tasks/{task_id}/actions/{second}", {})
        assert other.status == 409, other
        elsewhere = await alice.call("POST", f"/tasks/{'0' * 16}/actions/{first}", {})
        assert elsewhere.status == 404
        unknown = await alice.call("POST", f"/tasks/{task_id}/actions/{'f' * 16}", {})
        assert unknown.status == 404 and "no such action" in unknown.body["error"]


async def test_no_token_or_a_revoked_one_is_a_401(tmp_path: Path, secret_key: str) -> None:
    async with running_web(tmp_path, secret_key, llm_api_key=KEY) as stack:
        nobody = await stack.client(None)
        alice = await stack.client("alice")
        task_id = await alice.start()
        for method, path in [
            ("POST", "/start-task"),
            ("GET", "/tasks"),
            ("GET", f"/tasks/{task_id}"),
            ("GET", "/credentials/alice"),
        ]:
            answer = await nobody.call(method, path, {"task": "x"})
            assert answer.status == 401, (method, path, answer)
            assert "Authorization: Bearer" in answer.body["error"]
        async with nobody.follow(task_id) as socket:
            assert (await socket.receive()).type == aiohttp.WSMsgType.CLOSE
            assert socket.close_code == 4401

        store = await Store.open(stack.settings, run_migrations=False)
        try:
            assert alice.token is not None and await store.tokens.revoke(alice.token)
        finally:
            await store.close()
        revoked = await alice.call("GET", f"/tasks/{task_id}")
        assert revoked.status == 401 and "not valid" in revoked.body["error"]
        forged = await stack.client(None)
        forged.token = "agt_" + "x" * 43
        assert (await forged.call("GET", "/tasks")).status == 401
        # A token in the query string is no token.
        query = await nobody.call("GET", f"/tasks?token={alice.token}")
        assert query.status in (401, 422)


async def test_bad_bodies_get_clear_json_errors_that_never_quote_the_value(
    tmp_path: Path, secret_key: str
) -> None:
    async with running_web(tmp_path, secret_key, llm_api_key=KEY) as stack:
        alice = await stack.client("alice")
        long_key = "k" * 5000
        cases = [
            ("POST", "/start-task", {"task": "   "}, 422, "task"),
            ("POST", "/start-task", {"task": "Go", "team": "nope"}, 422, "no such team"),
            ("POST", "/start-task", ["not", "an", "object"], 422, "body"),
            (
                "POST",
                "/credentials",
                {"user_id": "alice", "provider": "openrouter", "value": "short"},
                422,
                "too short",
            ),
            (
                "POST",
                "/credentials",
                {"user_id": "alice", "provider": "openrouter", "value": long_key},
                422,
                "value",
            ),
            (
                "POST",
                "/credentials",
                {"user_id": "alice", "provider": "nobody-knows", "value": KEY},
                422,
                "no such provider",
            ),
            ("GET", "/tasks/not-an-id", None, 404, "no such task"),
            ("POST", f"/tasks/{'a' * 16}/cancel", None, 404, "no such task"),
            ("DELETE", "/credentials/alice/openrouter", None, 404, "No key"),
            ("GET", "/tasks?limit=0", None, 422, "limit"),
            ("GET", "/no/such/path", None, 404, "nothing here"),
        ]
        for method, path, body, status, says in cases:
            answer = await alice.call(method, path, body)
            assert answer.status == status, (path, answer)
            assert says.lower() in answer.body["error"].lower(), (path, answer.body)
        raw = await alice.call(
            "POST", "/credentials", data=b"{not json", headers={"Content-Type": "application/json"}
        )
        assert raw.status == 422
        assert long_key not in "".join(alice.texts) and KEY not in "".join(alice.texts)


async def test_an_unexpected_failure_is_a_json_500_and_the_server_goes_on(
    tmp_path: Path, secret_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from store.runs import RunRepository

    async with running_web(tmp_path, secret_key, llm_api_key=KEY) as stack:
        alice = await stack.client("alice")
        task_id = await alice.start()

        async def broken(self: RunRepository, run_id: str) -> None:
            raise RuntimeError("the database went away")

        with monkeypatch.context() as patched:
            patched.setattr(RunRepository, "get", broken)
            answer = await alice.call("GET", f"/tasks/{task_id}")
        assert answer.status == 500
        assert answer.body == {"error": "Something went wrong on the server."}
        assert (await alice.call("GET", f"/tasks/{task_id}")).status == 200
