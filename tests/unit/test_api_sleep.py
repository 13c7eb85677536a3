"""Sleep through the API: the sleep_after and sleep_types settings, the app's sleeping state,
and POST /apps/<app>/sleep and /wake: their statuses and answers with a stand-in for the sleep
domain (whose own tests are in test_sleep*.py), and a sleep through the real one with fake
adapters."""

# ruff: noqa: F811  # the fixtures imported from the other test modules are requested by name

from __future__ import annotations

import sys
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

import slipway.services
from slipway.config import Settings
from slipway.db import session_scope
from slipway.models import App, Instance
from slipway.models.event import Event
from slipway.services import apps
from slipway.services.deploys import app_lock
from slipway.services.errors import Conflict, Invalid, SlipwayError
from tests.unit.test_api import Api, api, release_app  # noqa: F401  (fixtures are used by name)
from tests.unit.test_api_app_fork import deployed_with_space

PLATFORM_SLEEP_AFTER = 1800


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """A platform whose apps sleep after 30 minutes unless they say otherwise."""
    data = tmp_path / "data"
    data.mkdir()
    return Settings(data_dir=data, sleep_after=PLATFORM_SLEEP_AFTER, drain_grace=0)


class WakeFailed(SlipwayError):
    pass


@dataclass
class FakeSleep:
    """Stands in for services.sleep: records its calls, refuses as told, flips App.sleeping."""

    calls: list[tuple[str, str, str]] = field(default_factory=list)
    refuse: SlipwayError | None = None

    def put_to_sleep(
        self, session: Session, adapters: Any, settings: Settings, app: App, reason: str
    ) -> None:
        self.calls.append(("sleep", app.name, reason))
        if self.refuse is not None:
            raise self.refuse
        app.sleeping = True
        session.flush()

    def wake(self, session: Session, adapters: Any, settings: Settings, name: str) -> list[int]:
        self.calls.append(("wake", name, ""))
        if self.refuse is not None:
            raise self.refuse
        app = session.scalars(select(App).where(App.name == name)).one()
        app.sleeping = False
        session.flush()
        return [34567]


@pytest.fixture
def sleep(monkeypatch: pytest.MonkeyPatch) -> FakeSleep:
    fake = FakeSleep()
    module = types.ModuleType("slipway.services.sleep")
    module.put_to_sleep = fake.put_to_sleep  # type: ignore[attr-defined]
    module.wake = fake.wake  # type: ignore[attr-defined]
    module.WakeFailed = WakeFailed  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "slipway.services.sleep", module)
    monkeypatch.setattr(slipway.services, "sleep", module, raising=False)
    return fake


def set_sleeping(api: Api, name: str, sleeping: bool = True) -> None:
    with session_scope(api.factory) as session:
        session.scalars(select(App).where(App.name == name)).one().sleeping = sleeping


# ----------------------------------------------------------------------------- settings


def test_a_new_app_follows_the_platforms_sleep_after(api: Api) -> None:
    app = api.create("hello")
    assert (app["sleep_after"], app["sleep_after_source"]) == (PLATFORM_SLEEP_AFTER, "platform")
    assert (app["sleep_types"], app["sleeping"]) == ([], False)


@pytest.mark.parametrize(
    ("value", "seconds", "source"),
    [
        ("15m", 900, "app"),
        ("90s", 90, "app"),
        ("2h", 7200, "app"),
        (600, 600, "app"),
        ("never", 0, "app"),
        (0, 0, "app"),
        (None, PLATFORM_SLEEP_AFTER, "platform"),
        ("default", PLATFORM_SLEEP_AFTER, "platform"),
    ],
)
def test_sleep_after_takes_a_duration_seconds_never_or_default(
    api: Api, value: object, seconds: int, source: str
) -> None:
    api.create("hello")
    api.call("PATCH", "/apps/hello", json={"sleep_after": "5m"})
    response = api.call("PATCH", "/apps/hello", json={"sleep_after": value})
    assert response.status_code == 200, response.get_json()
    app = response.get_json()
    assert (app["sleep_after"], app["sleep_after_source"]) == (seconds, source)
    shown = api.call("GET", "/apps/hello").get_json()
    assert (shown["sleep_after"], shown["sleep_after_source"]) == (seconds, source)


def test_sleep_types_take_a_list_or_a_comma_string_and_empty_clears(api: Api) -> None:
    api.create("hello")
    listed = api.call("PATCH", "/apps/hello", json={"sleep_types": ["worker", "clock", "worker"]})
    assert listed.get_json()["sleep_types"] == ["worker", "clock"]
    comma = api.call("PATCH", "/apps/hello", json={"sleep_types": " mailer , worker"})
    assert comma.get_json()["sleep_types"] == ["mailer", "worker"]
    cleared = api.call("PATCH", "/apps/hello", json={"sleep_types": ""})
    assert cleared.get_json()["sleep_types"] == []


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"sleep_after": "5s"}, "sleep_after is at least 10s (or never), not 5s."),
        ({"sleep_after": 9}, "at least 10s"),
        ({"sleep_after": "soon"}, "not a duration: 'soon'"),
        ({"sleep_after": -60}, "a number of seconds, never, or default"),
        ({"sleep_after": True}, "a number of seconds, never, or default"),
        ({"sleep_after": 1.5}, "a number of seconds, never, or default"),
        ({"sleep_types": ["web"]}, "web always sleeps"),
        ({"sleep_types": "worker,web"}, "web always sleeps"),
        ({"sleep_types": ["release"]}, "'release' is not a process type"),
        ({"sleep_types": ["no spaces"]}, "'no spaces' is not a process type"),
        ({"sleep_types": 3}, "sleep_types is a list of process types"),
        ({"sleep_types": [f"w{n:028d}" for n in range(9)]}, "at most 255 characters"),
    ],
)
def test_bad_sleep_settings_are_422_in_one_sentence_and_change_nothing(
    api: Api, body: dict[str, object], words: str
) -> None:
    api.create("hello")
    response = api.call("PATCH", "/apps/hello", json=body)
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert words in error and error.endswith(".") and error.count(". ") == 0, error
    app = api.call("GET", "/apps/hello").get_json()
    assert (app["sleep_after_source"], app["sleep_types"]) == ("platform", [])


def test_the_view_follows_the_platform_setting_until_the_app_has_its_own(
    settings: Settings,
) -> None:
    app = App(name="hello", sleep_after=None, sleep_types="worker", sleeping=False)
    never = settings.with_overrides(sleep_after=0)
    assert apps.sleep_view(app, never)["sleep_after"] == 0
    app.sleep_after = 120
    assert apps.sleep_view(app, never) == {
        "sleep_after": 120,
        "sleep_after_source": "app",
        "sleep_types": ["worker"],
        "sleeping": False,
    }


def test_a_fork_takes_the_sleep_settings_and_starts_awake(api: Api) -> None:
    deployed_with_space(api)
    settings = {"sleep_after": "10m", "sleep_types": ["worker"]}
    assert api.call("PATCH", "/apps/hello", json=settings).status_code == 200
    set_sleeping(api, "hello")
    fork = api.call("POST", "/apps/hello/fork", json={"name": "hello-pr1"})
    assert fork.status_code == 201, fork.get_json()
    made = fork.get_json()
    assert (made["sleep_after"], made["sleep_after_source"]) == (600, "app")
    assert (made["sleep_types"], made["sleeping"]) == (["worker"], False)


# ----------------------------------------------------------------------------- state


def test_a_sleeping_app_shows_the_state_sleeping_everywhere(api: Api) -> None:
    api.create("hello")
    release_app(api, "hello")
    set_sleeping(api, "hello")
    shown = api.call("GET", "/apps/hello").get_json()
    assert (shown["state"], shown["sleeping"]) == ("sleeping", True)
    assert [a["state"] for a in api.call("GET", "/apps").get_json()] == ["sleeping"]
    listed = api.call("GET", "/apps/hello/processes").get_json()
    assert (listed["sleeping"], listed["sleep_after"]) == (True, PLATFORM_SLEEP_AFTER)


def test_a_deploy_of_a_sleeping_app_shows_deploying(api: Api) -> None:
    api.create("hello")
    release_app(api, "hello")
    set_sleeping(api, "hello")
    with session_scope(api.factory) as session:
        app = session.scalars(select(App).where(App.name == "hello")).one()
        assert apps.app_state(app, [], deploying=True) == "deploying"
        assert apps.app_state(app, [], deploying=False) == "sleeping"


# ----------------------------------------------------------------------------- sleep and wake


def test_post_sleep_puts_the_app_to_sleep_as_requested(api: Api, sleep: FakeSleep) -> None:
    api.create("hello")
    release_app(api, "hello")
    response = api.call("POST", "/apps/hello/sleep")
    assert response.status_code == 200, response.get_json()
    assert (response.get_json()["state"], response.get_json()["sleeping"]) == ("sleeping", True)
    assert sleep.calls == [("sleep", "hello", "requested")]
    assert api.call("GET", "/apps/hello").get_json()["sleeping"] is True  # committed


def test_only_the_owner_or_an_admin_puts_an_app_to_sleep(api: Api, sleep: FakeSleep) -> None:
    api.create("hello")
    release_app(api, "hello")
    assert api.call("POST", "/apps/hello/sleep", user=None).status_code == 401
    response = api.call("POST", "/apps/hello/sleep", "bob")
    assert response.status_code == 404
    assert response.get_json() == {"error": "There is no app named 'hello'."}
    assert api.call("POST", "/apps/hello/wake", "bob").status_code == 404
    assert sleep.calls == []
    assert api.call("POST", "/apps/hello/sleep", "root").status_code == 200


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (Conflict("A deploy of hello is running; it cannot sleep now."), 409),
        (Invalid("hello runs worker, which does not sleep."), 422),
    ],
)
def test_a_refused_sleep_says_why_and_changes_nothing(
    api: Api, sleep: FakeSleep, error: SlipwayError, status: int
) -> None:
    api.create("hello")
    release_app(api, "hello")
    sleep.refuse = error
    response = api.call("POST", "/apps/hello/sleep")
    assert (response.status_code, response.get_json()) == (status, {"error": str(error)})
    assert api.call("GET", "/apps/hello").get_json()["sleeping"] is False


def test_post_wake_wakes_the_app_and_a_failed_wake_is_503_with_the_reason(
    api: Api, sleep: FakeSleep
) -> None:
    api.create("hello")
    release_app(api, "hello")
    set_sleeping(api, "hello")
    response = api.call("POST", "/apps/hello/wake")
    assert response.status_code == 200, response.get_json()
    assert (response.get_json()["state"], response.get_json()["sleeping"]) == ("running", False)
    assert sleep.calls == [("wake", "hello", "")]

    reason = "hello could not start: web.1 did not answer on its port."
    sleep.refuse = WakeFailed(reason)
    failed = api.call("POST", "/apps/hello/wake")
    assert (failed.status_code, failed.get_json()) == (503, {"error": reason})


# ----------------------------------------------------------------------------- the real domain


def test_a_requested_sleep_retires_web_and_records_why(api: Api) -> None:
    api.create("hello")
    release_app(api, "hello")
    response = api.call("POST", "/apps/hello/sleep")
    assert response.status_code == 200, response.get_json()
    app = response.get_json()
    assert (app["state"], app["sleeping"], app["instances"]) == ("sleeping", True, [])
    with session_scope(api.factory) as session:
        assert session.scalars(select(Instance)).all() == []
        events = session.scalars(select(Event).where(Event.type == "app_slept")).all()
        assert [e.message for e in events] == ["hello went to sleep: requested."]
    again = api.call("POST", "/apps/hello/sleep")  # asleep already: the same answer
    assert (again.status_code, again.get_json()["state"]) == (200, "sleeping")


def test_a_sleep_is_refused_for_an_app_that_cannot_sleep_or_is_deploying(
    api: Api, settings: Settings
) -> None:
    api.create("new")
    refused = api.call("POST", "/apps/new/sleep")
    assert refused.status_code == 422
    assert refused.get_json() == {
        "error": "new has no release yet; there is nothing to put to sleep."
    }
    api.create("hello")
    release_app(api, "hello")
    with session_scope(api.factory) as session:
        app_id = session.scalars(select(App.id).where(App.name == "hello")).one()
    with app_lock(settings, app_id, timeout=0):
        busy = api.call("POST", "/apps/hello/sleep")
    assert busy.status_code == 409
    assert busy.get_json() == {"error": "A deploy of hello is running; it cannot sleep now."}
    assert api.call("GET", "/apps/hello").get_json()["state"] == "running"
