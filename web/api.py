"""The REST API: start, read, stop and steer runs; give, list and delete one's keys.

The original design's paths and shapes (`POST /start-task`, `POST /credentials`,
`GET /credentials/{user_id}`), plus what a client needs to drive a run. Routes only check
who may do what and translate; the runner does the work, with the same single-use and
approver rules as Slack's buttons, so both front ends can drive one run.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import AfterValidator, BaseModel, Field, StringConstraints

from runner.keys import PROBLEMS, check_secret
from runner.manager import CancelOutcome
from store.actions import DecisionOutcome
from store.records import MAX_TASK_CHARS, NO_CHANNEL, Run
from store.tokens import TokenHolder
from store.work import looks_like_id
from web.access import Refused, holder_of, refuse, visible_run
from web.context import WebServices, services
from web.events import plain, public_event

MAX_EVENTS_PER_READ = 500
MAX_SEQ = 2**63 - 1  # the database's integer
PERSON = r"^[A-Za-z0-9._\-]{1,32}$"  # a Slack user id, or a local person's (create-token)
PROVIDER = r"^[A-Za-z0-9._\-]{1,64}$"


def _no_nul(value: str) -> str:
    """PostgreSQL stores no NUL character in text (SQLite would): refuse it up front."""
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


UserId = Annotated[str, Path(pattern=PERSON, description="Your own user id.")]
ProviderName = Annotated[str, Path(pattern=PROVIDER)]


async def caller(request: Request) -> TokenHolder:
    return await holder_of(services(request).store, request)


Caller = Annotated[TokenHolder, Depends(caller)]
router = APIRouter()


# --- bodies and answers ----------------------------------------------------------------


class StartTask(BaseModel):
    task: Annotated[
        str,
        StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_TASK_CHARS),
        AfterValidator(_no_nul),
    ] = Field(description="What the team should do.")
    team: Annotated[str, StringConstraints(max_length=64), AfterValidator(_no_nul)] | None = Field(
        default=None, description="A team of TEAMS_DIR."
    )


class StartedTask(BaseModel):
    task_id: str
    ws_url: str = Field(description="Follow the run's events here (a WebSocket).")
    status: str


class TaskSummary(BaseModel):
    task_id: str
    status: str
    task: str
    team: str | None
    requester_id: str
    source: Literal["slack", "api"] = Field(description="Where the run was started.")
    created_at: datetime
    finished_at: datetime | None
    outcome: str | None


class TaskView(TaskSummary):
    workspace_id: str
    started_at: datetime | None
    turns: int
    prompt_tokens: int
    completion_tokens: int
    last_seq: int = Field(description="The last event's number, or `after` when none came.")
    events: list[dict[str, Any]] = Field(description="The events after `?after=`, in order.")


class Decide(BaseModel):
    note: Annotated[str, StringConstraints(max_length=4000), AfterValidator(_no_nul)] | None = (
        Field(default=None, description="Why (a denied tool call's reason, say).")
    )


class Decided(BaseModel):
    action_id: str
    outcome: str


class Cancelled(BaseModel):
    task_id: str
    status: str


class GiveCredential(BaseModel):
    user_id: str = Field(pattern=PERSON)
    provider: str = Field(pattern=PROVIDER)
    value: Annotated[
        str, StringConstraints(min_length=1, max_length=4096), AfterValidator(_no_nul)
    ] = Field(description="Never shown again.")


class StoredCredential(BaseModel):
    provider: str
    stored: bool = True
    resumed_tasks: list[str] = Field(description="Runs that were waiting for it, now going.")


class CredentialListed(BaseModel):
    provider: str
    created_at: datetime
    updated_at: datetime
    last_used_at: datetime | None


# --- runs ------------------------------------------------------------------------------


def _summary(run: Run) -> dict[str, Any]:
    return {
        "task_id": run.id,
        "status": str(run.status),
        "task": run.task,
        "team": run.team_name,
        "requester_id": run.requester_id,
        "source": "api" if run.channel_id == NO_CHANNEL else "slack",
        "created_at": run.created_at,
        "finished_at": run.finished_at,
        "outcome": plain(run.outcome),
    }


def ws_url(request: Request, task_id: str) -> str:
    scheme = "wss" if request.url.scheme == "https" else "ws"
    return f"{scheme}://{request.url.netloc}/ws/{task_id}"


@router.post("/start-task", status_code=201, response_model=StartedTask, tags=["tasks"])
async def start_task(body: StartTask, request: Request, holder: Caller) -> dict[str, Any]:
    """Start a run for the token's person. It is followed on `ws_url`, or read with
    `GET /tasks/{id}`; a key it needs is asked for there (`credential_request`)."""
    web = services(request)
    team = body.team.strip() if body.team and body.team.strip() else None
    if team is not None and web.runs.teams.get(team) is None:
        names = ", ".join(name for name, _ in web.runs.teams.listing)
        raise Refused(422, f"There is no such team. Teams: {names}.")
    key = request.headers.get("idempotency-key")
    started = await web.runs.start_run(
        workspace_id=holder.workspace_id,
        channel_id=NO_CHANNEL,
        requester_id=holder.user_id,
        task=body.task,
        team_name=web.runs.teams.run_name(team),
        idempotency_key=f"api:{holder.token_id}:{key[:100]}" if key else None,
    )
    run = started.run
    return {"task_id": run.id, "ws_url": ws_url(request, run.id), "status": str(run.status)}


@router.get("/tasks", response_model=list[TaskSummary], tags=["tasks"])
async def list_tasks(
    request: Request, holder: Caller, limit: Annotated[int, Query(ge=1, le=100)] = 20
) -> list[dict[str, Any]]:
    """The token's person's runs, newest first, from Slack and from the API."""
    runs = await services(request).runs.runs_for(
        workspace_id=holder.workspace_id, user_id=holder.user_id, limit=limit
    )
    return [_summary(run) for run in runs]


@router.get("/tasks/{task_id}", response_model=TaskView, tags=["tasks"])
async def get_task(
    task_id: str,
    request: Request,
    holder: Caller,
    after: Annotated[
        int, Query(ge=0, le=MAX_SEQ, description="Only events after this number.")
    ] = 0,
) -> dict[str, Any]:
    """A run's status and totals, and its events after `after` (at most 500 a read: read
    again from `last_seq` for more)."""
    web = services(request)
    run = await visible_run(web.store, web.rules, holder, task_id, "read_task")
    events = (await web.store.runs.events(run.id, after_seq=after))[:MAX_EVENTS_PER_READ]
    return {
        **_summary(run),
        "workspace_id": run.workspace_id,
        "started_at": run.started_at,
        "turns": run.turns,
        "prompt_tokens": run.prompt_tokens,
        "completion_tokens": run.completion_tokens,
        "last_seq": events[-1].seq if events else after,
        "events": [public_event(event) for event in events],
    }


CANCEL_ANSWERS = {
    CancelOutcome.NOT_FOUND: (404, "There is no such task."),
    CancelOutcome.NOT_AUTHORISED: (403, "This belongs to someone else."),
    CancelOutcome.ALREADY_FINISHED: (409, "This task has already finished."),
}


@router.post("/tasks/{task_id}/cancel", response_model=Cancelled, tags=["tasks"])
async def cancel_task(task_id: str, request: Request, holder: Caller) -> dict[str, Any]:
    """Stop a run (its person or an approver): the turn under way is aborted."""
    web = services(request)
    run = await visible_run(web.store, web.rules, holder, task_id, "cancel_task")
    outcome = await web.runs.cancel(run.id, user_id=holder.user_id)
    if outcome in CANCEL_ANSWERS:
        raise Refused(*CANCEL_ANSWERS[outcome])
    return {"task_id": run.id, "status": "cancelled"}


DECISION_ANSWERS = {
    DecisionOutcome.NOT_FOUND: (404, "This task offers no such action."),
    DecisionOutcome.NOT_AUTHORISED: (
        403,
        "Only the person who started this run or an approver can decide.",
    ),
    DecisionOutcome.ALREADY_DECIDED: (409, "This was already decided."),
    DecisionOutcome.RUN_NOT_WAITING: (409, "This run is no longer waiting for a decision."),
}


@router.post("/tasks/{task_id}/actions/{action_id}", response_model=Decided, tags=["tasks"])
async def decide_action(
    task_id: str,
    action_id: str,
    request: Request,
    holder: Caller,
    body: Decide | None = None,
) -> dict[str, Any]:
    """Choose one of the actions an `actions_offered` event lists (a verifier suggestion, or
    approving or denying a tool call): once, by the run's person or an approver."""
    web = services(request)
    run = await visible_run(web.store, web.rules, holder, task_id, "decide_action")
    action = await web.store.actions.get(action_id) if looks_like_id(action_id) else None
    if action is None or action.run_id != run.id:
        raise Refused(*DECISION_ANSWERS[DecisionOutcome.NOT_FOUND])
    decision = await web.runs.decide(
        action_id, user_id=holder.user_id, note=body.note if body else None
    )
    if decision.outcome != DecisionOutcome.APPROVED:
        raise Refused(*DECISION_ANSWERS[decision.outcome])
    return {"action_id": action_id, "outcome": "applied"}


# --- credentials -----------------------------------------------------------------------


async def _own(web: WebServices, holder: TokenHolder, user_id: str, asked: str) -> None:
    if user_id != holder.user_id:
        raise await refuse(web.store, holder, action=asked, subject=f"credentials:{user_id}")


@router.post("/credentials", status_code=201, response_model=StoredCredential, tags=["credentials"])
async def give_credential(body: GiveCredential, request: Request, holder: Caller) -> dict[str, Any]:
    """Store one's own key, encrypted; every run of one's waiting for it resumes, as it
    does when the key is typed into Slack's modal. The value is never shown again."""
    web = services(request)
    await _own(web, holder, body.user_id, "give_credential")
    provider = body.provider.strip()
    if provider not in web.runs.providers.names and provider not in await _asked_for(web, holder):
        names = ", ".join(web.runs.providers.names)
        raise Refused(422, f"There is no such provider. Known: {names}.")
    secret = body.value.strip()
    problem = check_secret(secret)
    if problem is not None:
        raise Refused(422, PROBLEMS[problem])
    resumed = await web.runs.keys.supply(
        workspace_id=holder.workspace_id, user_id=holder.user_id, provider=provider, secret=secret
    )
    return {"provider": provider, "resumed_tasks": resumed}


async def _asked_for(web: WebServices, holder: TokenHolder) -> set[str]:
    """Providers a run of the person's waits for (a tool's key nobody described)."""
    return await web.store.requests.pending_providers(
        workspace_id=holder.workspace_id, user_id=holder.user_id
    )


@router.get("/credentials/{user_id}", response_model=list[CredentialListed], tags=["credentials"])
async def list_credentials(
    user_id: UserId, request: Request, holder: Caller
) -> list[dict[str, Any]]:
    """One's stored keys: which providers and when, never a value."""
    web = services(request)
    await _own(web, holder, user_id, "list_credentials")
    stored = await web.runs.keys.listed(workspace_id=holder.workspace_id, user_id=holder.user_id)
    return [
        {
            "provider": info.provider,
            "created_at": info.created_at,
            "updated_at": info.updated_at,
            "last_used_at": info.last_used_at,
        }
        for info in stored
    ]


@router.delete("/credentials/{user_id}/{provider}", status_code=204, tags=["credentials"])
async def delete_credential(
    user_id: UserId, provider: ProviderName, request: Request, holder: Caller
) -> Response:
    """Delete one of one's stored keys (a run that needs it asks again)."""
    web = services(request)
    await _own(web, holder, user_id, "delete_credential")
    deleted = await web.runs.keys.delete(
        workspace_id=holder.workspace_id, user_id=holder.user_id, provider=provider
    )
    if not deleted:
        raise Refused(404, "No key is stored for this provider.")
    return Response(status_code=204)
