"""Modals in the fake workspace: ``views.open``, ``views.push`` and ``views.update``.

``ViewsMixin`` checks each modal with the Block Kit rules, refuses a trigger_id used twice
and a stale ``hash``, and stores views the way Slack echoes them back (ids, hash, defaults).
"""

from __future__ import annotations

from typing import Any

from tests.fakes.block_kit_rules import find_block_problems, find_view_problems
from tests.fakes.slack_emulator_base import EmulatorBase
from tests.fakes.slack_records import JsonDict
from tests.fakes.slack_wire import ApiError

__all__ = ["ViewsMixin"]


class ViewsMixin(EmulatorBase):
    """The ``views.*`` methods of ``SlackApiEmulator``."""

    def _views_open(self, params: JsonDict) -> JsonDict:
        stored = self._open_view("views.open", params)
        self.views_opened.append(stored)
        return {"view": stored}

    def _views_push(self, params: JsonDict) -> JsonDict:
        stored = self._open_view("views.push", params)
        self.views_pushed.append(stored)
        return {"view": stored}

    def _open_view(self, method: str, params: JsonDict) -> JsonDict:
        """Shared by open and push: a fresh trigger, a valid modal, a new view id."""
        self._require(params, "trigger_id", "view")
        trigger = str(params["trigger_id"])
        self._check_view(method, params["view"])
        if trigger in self._used_triggers:
            self._problem(method, "trigger_exchanged", [f"trigger_id {trigger} was already used"])
            raise ApiError("trigger_exchanged")
        self._used_triggers.add(trigger)
        view_id = f"V{next(self._view_counter):04d}"
        stored = self._stored_view(params["view"], view_id, version=1)
        self.views[view_id] = stored
        return stored

    def _views_publish(self, params: JsonDict) -> JsonDict:
        """A user's Home tab: a `home` view, up to 100 blocks, replaced whole each time."""
        self._require(params, "user_id", "view")
        view = params["view"]
        if not isinstance(view, dict) or view.get("type") != "home":
            self._problem("views.publish", "invalid_arguments", ["view.type must be home"])
            raise ApiError("invalid_arguments")
        problems = find_block_problems(view.get("blocks"), "modal")  # a Home allows 100 too
        if problems:
            self._problem("views.publish", "invalid_blocks", problems)
            raise ApiError("invalid_blocks")
        user = str(params["user_id"])
        previous = self.home_views.get(user)
        view_id = previous["id"] if previous else f"V{next(self._view_counter):04d}"
        stored = {**view, "id": view_id, "team_id": self.team_id, "app_id": self.app_id}
        self.home_views[user] = stored
        self.views[view_id] = stored
        return {"view": stored}

    def _views_update(self, params: JsonDict) -> JsonDict:
        self._require(params, "view")
        current = self._find_view(params)
        expected_hash = params.get("hash")
        if expected_hash and expected_hash != current["hash"]:
            raise ApiError("hash_conflict")
        self._check_view("views.update", params["view"])
        version = int(current["hash"].rsplit("-", 1)[1]) + 1
        stored = self._stored_view(params["view"], current["id"], version=version)
        self.views[current["id"]] = stored
        return {"view": stored}

    def _find_view(self, params: JsonDict) -> JsonDict:
        view_id = params.get("view_id")
        external_id = params.get("external_id")
        for view in self.views.values():
            if (view_id and view["id"] == view_id) or (
                external_id and view.get("external_id") == external_id
            ):
                return view
        raise ApiError("not_found")

    def _check_view(self, method: str, view: Any) -> None:
        reasons = find_view_problems(view)
        if reasons:
            self._problem(method, "invalid_arguments", reasons)
            raise ApiError("invalid_arguments", [f"[ERROR] {r}" for r in reasons])

    def _stored_view(self, view: JsonDict, view_id: str, *, version: int) -> JsonDict:
        """The view as Slack echoes it back, with the ids and defaults it fills in."""
        return {
            "callback_id": "",
            "private_metadata": "",
            "external_id": "",
            "clear_on_close": False,
            "notify_on_close": False,
            "submit": None,
            "close": None,
            **view,
            "id": view_id,
            "team_id": self.team_id,
            "app_id": self.app_id,
            "bot_id": self.bot_id,
            "app_installed_team_id": self.team_id,
            "hash": f"{view_id}-{version}",
            "root_view_id": view_id,
            "previous_view_id": None,
            "state": {"values": {}},
        }
