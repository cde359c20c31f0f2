"""What the web routes need, kept on the FastAPI app's state (no globals)."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import HTTPConnection

from runner.manager import RunManager
from store import Store
from store.settings import Settings
from web.access import Rules
from web.feed import RunFeed
from web.login import LoginCodes


@dataclass(frozen=True)
class WebServices:
    settings: Settings
    runs: RunManager
    feed: RunFeed
    logins: LoginCodes

    @property
    def store(self) -> Store:
        return self.runs.store

    @property
    def rules(self) -> Rules:
        return Rules(frozenset(self.settings.approvers))


def services(connection: HTTPConnection) -> WebServices:
    return connection.app.state.services
