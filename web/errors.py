"""Every error the web server answers is JSON `{"error": "<what to do>"}`, and never quotes
what was sent: a body that failed validation may hold a key (`POST /credentials`), so the
problems name fields and rules, not values."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse, Response

from web.access import Refused

log = logging.getLogger(__name__)


def install_error_answers(app: FastAPI) -> None:
    app.add_exception_handler(Refused, _refused)
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(HTTPException, _http)
    app.add_exception_handler(Exception, _unexpected)


async def _refused(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Refused)
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    return JSONResponse({"error": exc.message}, status_code=exc.status, headers=headers)


async def _invalid(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    problems = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error.get("loc", ()) if part != "body") or "body"
        problems.append({"field": where, "problem": str(error.get("msg", "is invalid"))})
    first = problems[0] if problems else {"field": "body", "problem": "is invalid"}
    return JSONResponse(
        {"error": f"{first['field']}: {first['problem']}", "problems": problems},
        status_code=422,
    )


async def _http(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    messages = {404: "There is nothing here.", 405: "This method is not allowed here."}
    message = messages.get(exc.status_code) or str(exc.detail)
    return JSONResponse({"error": message}, status_code=exc.status_code, headers=exc.headers)


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return JSONResponse({"error": "Something went wrong on the server."}, status_code=500)
