"""The playground's page and its sign-in: the web front end, served with no build step.

Local mode (no Slack settings): `/login?code=...`, the link the app prints once, trades a
one-time code for an API token of the local person, kept in an HttpOnly, SameSite=Strict
cookie. With Slack configured the page asks for an API token instead (`POST /session`),
so nobody reaches a workspace's runs without one. `PLAYGROUND=off` serves no page.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse
from pydantic import BaseModel, Field

from store.tokens import LOCAL_WORKSPACE
from web.access import SESSION_COOKIE, Refused, holder_of, same_origin
from web.context import services
from web.login import LOCAL_USER

STATIC = Path(__file__).parent / "static"
SESSION_DAYS = 30
SIGN_IN_LABEL = "playground sign-in"  # the tokens the sign-in link makes, one per browser
PAGE_POLICY = (
    "default-src 'self'; connect-src 'self' ws: wss:; style-src 'self'; script-src 'self'; "
    "img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": PAGE_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",  # the login link's code never leaves in a Referer
    "Cache-Control": "no-store",
}
ASSETS = {"app.js": "text/javascript", "style.css": "text/css"}
DEAD_LINK = """<!doctype html><html lang="en"><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign-in link used</title><body><h1>This sign-in link no longer works</h1>
<p>Each link works once, for an hour. Stop the app and run <code>make run</code> again for a
new one, or sign in with an API token on <a href="/">the playground</a>.</p></body></html>"""

router = APIRouter(include_in_schema=False)


class SignIn(BaseModel):
    token: str = Field(min_length=1, max_length=200)


def _set_session(request: Request, response: Response, token: str) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=SESSION_DAYS * 86400,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )


@router.get("/")
async def page() -> Response:
    return FileResponse(STATIC / "index.html", media_type="text/html", headers=PAGE_HEADERS)


@router.get("/static/{name}")
async def asset(name: str) -> Response:
    if name not in ASSETS:
        raise Refused(404, "There is nothing here.")
    return FileResponse(STATIC / name, media_type=ASSETS[name], headers=PAGE_HEADERS)


@router.get("/login")
async def login(request: Request, code: str = "") -> Response:
    """The printed link: a one-time code for a session cookie, then the page (the code
    leaves the address bar at once)."""
    web = services(request)
    if not web.settings.local_mode or not code or not web.logins.redeem(code[:100]):
        return HTMLResponse(DEAD_LINK, status_code=400, headers=PAGE_HEADERS)
    _token_id, token = await web.store.tokens.create(
        user_id=LOCAL_USER, workspace_id=LOCAL_WORKSPACE, label=SIGN_IN_LABEL
    )
    response = RedirectResponse("/", status_code=303, headers=PAGE_HEADERS)
    _set_session(request, response, token)
    return response


@router.get("/session")
async def session(request: Request) -> dict[str, Any]:
    """Who the page acts for, and what it can offer (teams, providers)."""
    web = services(request)
    holder = await holder_of(web.store, request)
    return {
        "user_id": holder.user_id,
        "workspace_id": holder.workspace_id,
        "local": web.settings.local_mode,
        "teams": [{"name": n, "description": d} for n, d in web.runs.teams.listing],
        "providers": [
            {"name": p.name, "title": p.title, "hint": p.hint}
            for p in (web.runs.providers.get(name) for name in web.runs.providers.names)
        ],
    }


@router.post("/session", status_code=204)
async def sign_in(body: SignIn, request: Request) -> Response:
    """Sign the page in with an API token (kept in the HttpOnly cookie from now on)."""
    if not same_origin(request):
        raise Refused(403, "Sign in from the playground's own page.")
    web = services(request)
    if await web.store.tokens.holder(body.token.strip()) is None:
        raise Refused(401, "This API token is not valid (revoked, or never made here).")
    response = Response(status_code=204)
    _set_session(request, response, body.token.strip())
    return response


@router.delete("/session", status_code=204)
async def sign_out(request: Request) -> Response:
    """Forget the session; a token the sign-in link made for this browser is revoked too
    (a pasted API token is the person's own: it keeps working elsewhere)."""
    if not same_origin(request):
        raise Refused(403, "Sign out from the playground's own page.")
    store = services(request).store
    holder = await store.tokens.holder(request.cookies.get(SESSION_COOKIE))
    if holder is not None and holder.label == SIGN_IN_LABEL:
        await store.tokens.revoke(holder.token_id)
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    return response
