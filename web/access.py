"""Who a web request acts for, and what that person may see and do.

A request carries an API token as `Authorization: Bearer agt_...` (programs), or the
playground's session cookie, which holds a token too (the browser never sees it: HttpOnly).
Never in a URL: a token in a query string would land in proxies' and browsers' histories.
A cookie is only taken from the app's own pages (the `Origin` a browser sends must be this
server), so another site cannot act with it, over HTTP or a WebSocket.

A token acts for one person of one workspace. Their own runs they may read and drive; the
approvers (`APPROVERS`) of the same workspace may read and decide others' runs too, as the
buttons allow them in Slack. Credentials are only ever one's own. Every refusal of a valid
token is audited: who asked for what of whom.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from starlette.requests import HTTPConnection

from store import Store
from store.actions import may_decide
from store.records import Run
from store.tokens import TokenHolder
from store.work import looks_like_id

log = logging.getLogger(__name__)

SESSION_COOKIE = "autogen_session"


class Refused(Exception):
    """A request answered with an error: its HTTP status and a message for the caller."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(status, message)
        self.status = status
        self.message = message


def presented_token(connection: HTTPConnection) -> tuple[str | None, bool]:
    """The token a request presents, and whether it came in the session cookie."""
    header = connection.headers.get("authorization")
    if header is not None:
        scheme, _, value = header.partition(" ")
        return (value.strip() if scheme.lower() == "bearer" else None), False
    cookie = connection.cookies.get(SESSION_COOKIE)
    if cookie and same_origin(connection):
        return cookie, True
    return None, False


def same_origin(connection: HTTPConnection) -> bool:
    """Whether a browser's request comes from this server's own pages. Browsers send
    `Origin` on every cross-site request that could change something (and on WebSockets);
    a request without it did not come from another site's script."""
    origin = connection.headers.get("origin")
    if origin is None:
        return True
    host = connection.headers.get("host", "")
    return origin.split("://", 1)[-1].rstrip("/") == host


async def holder_of(store: Store, connection: HTTPConnection) -> TokenHolder:
    """Whom the request acts for; `Refused(401)` without a working token."""
    token, _from_cookie = presented_token(connection)
    holder = await store.tokens.holder(token) if token else None
    if holder is None:
        message = (
            "This needs an API token: send 'Authorization: Bearer <token>' "
            "(make one with `python -m store create-token --user ID`)."
            if token is None
            else "This API token is not valid (revoked, or never made here)."
        )
        raise Refused(401, message)
    return holder


@dataclass(frozen=True)
class Rules:
    """The approvers of `APPROVERS`, who may decide others' runs in their workspace."""

    approvers: frozenset[str]

    def may_see(self, holder: TokenHolder, run: Run) -> bool:
        return run.workspace_id == holder.workspace_id and may_decide(
            holder.user_id, requester_id=run.requester_id, approvers=self.approvers
        )


async def refuse(
    store: Store, holder: TokenHolder, *, action: str, subject: str, run_id: str | None = None
) -> Refused:
    """Audit a valid token's request about someone else's run or keys; the 403 to raise."""
    async with store.work() as work:
        work.audit(
            workspace_id=holder.workspace_id,
            actor_id=holder.user_id,
            action="api_refused",
            subject=subject,
            run_id=run_id,
            detail={"asked": action, "token": holder.token_id},
        )
    log.info("refused %s on %s for token %s", action, subject, holder.token_id)
    return Refused(403, "This belongs to someone else.")


async def visible_run(
    store: Store, rules: Rules, holder: TokenHolder, task_id: str, asked: str
) -> Run:
    """The run `task_id` if `holder` may see it: `Refused(404)` when there is none, and an
    audited `Refused(403)` when it is someone else's (`asked`: what was asked of it)."""
    run = await store.runs.get(task_id) if looks_like_id(task_id) else None
    if run is None:
        raise Refused(404, "There is no such task.")
    if not rules.may_see(holder, run):
        raise await refuse(store, holder, action=asked, subject=task_id, run_id=task_id)
    return run
