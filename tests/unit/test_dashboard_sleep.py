"""Sleep on the dashboard: the sleeping state in the apps list and on the app's page, the
sleep settings form, and the button that puts an app to sleep (through the same services as
the API; the sleep domain is stood in for as in test_api_sleep)."""

# ruff: noqa: F811  # the fixtures imported from the other test modules are requested by name

from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.orm import Session

from slipway.models import App
from slipway.models.event import Event
from slipway.services.errors import Conflict
from tests.unit.test_api_sleep import FakeSleep, sleep  # noqa: F401  (fixtures are used by name)
from tests.unit.test_dashboard import Dash, dash, make_app  # noqa: F401


def set_app(dash: Dash, name: str = "hello", **values: object) -> None:
    def change(session: Session) -> None:
        app = session.scalars(select(App).where(App.name == name)).one()
        for key, value in values.items():
            setattr(app, key, value)

    dash.query(change)


def stored(dash: Dash, name: str = "hello") -> tuple[int | None, str, bool]:
    def read(session: Session) -> tuple[int | None, str, bool]:
        app = session.scalars(select(App).where(App.name == name)).one()
        return app.sleep_after, app.sleep_types, app.sleeping

    result: tuple[int | None, str, bool] = dash.query(read)
    return result


def test_the_apps_list_shows_a_sleeping_app_and_when_awake_ones_sleep(dash: Dash) -> None:
    make_app(dash, "hello", releases=1)
    make_app(dash, "other", releases=1)
    set_app(dash, "hello", sleeping=True)
    set_app(dash, "other", sleep_after=900)
    dash.sign_in()
    page = dash.client.get("/").get_data(as_text=True)
    row = page.split('data-app="hello"')[1].split("</tr>")[0]
    assert 'class="badge asleep" data-state="sleeping">sleeping<' in row
    assert "wakes on the next request" in row
    other = page.split('data-app="other"')[1].split("</tr>")[0]
    assert "sleeps after 15m idle" in other


def test_the_app_page_shows_the_setting_and_a_sleep_button(dash: Dash, sleep: FakeSleep) -> None:
    make_app(dash, "hello", releases=1)
    dash.sign_in()
    page = dash.client.get("/apps/hello").get_data(as_text=True)
    assert 'id="sleep"' in page and 'id="sleep-now"' in page
    default = r'id="sleep-after">never\s*<span class="muted small">\(platform default\)'
    assert re.search(default, page)

    response = dash.post("/apps/hello/sleep", follow_redirects=True)
    shown = response.get_data(as_text=True)
    assert "hello is sleeping: the next request wakes it." in shown
    assert sleep.calls == [("sleep", "hello", "requested")]
    assert stored(dash)[2] is True
    assert 'data-state="sleeping"' in shown.split('id="app-state"')[1][:200]
    assert 'id="sleep-now"' not in shown  # asleep already


def test_the_sleep_button_needs_the_csrf_token(dash: Dash, sleep: FakeSleep) -> None:
    make_app(dash, "hello", releases=1)
    dash.sign_in()
    assert dash.client.post("/apps/hello/sleep").status_code == 400
    assert sleep.calls == []


def test_a_refused_sleep_is_flashed_and_changes_nothing(dash: Dash, sleep: FakeSleep) -> None:
    make_app(dash, "hello", releases=1)
    sleep.refuse = Conflict("A deploy of hello is running; it cannot sleep now.")
    dash.sign_in()
    shown = dash.post("/apps/hello/sleep", follow_redirects=True).get_data(as_text=True)
    assert "A deploy of hello is running; it cannot sleep now." in shown
    assert stored(dash)[2] is False


def test_another_users_app_cannot_be_put_to_sleep(dash: Dash, sleep: FakeSleep) -> None:
    make_app(dash, "bobs", owner="bob", releases=1)
    dash.sign_in()
    dash.post("/apps/bobs/sleep")
    assert sleep.calls == []
    assert stored(dash, "bobs")[2] is False


def test_the_settings_form_sets_clears_and_refuses_with_a_reason(dash: Dash) -> None:
    make_app(dash, "hello", releases=1)
    dash.sign_in()
    form = {"sleep_after": "15m", "sleep_types": "worker, clock"}
    shown = dash.post("/apps/hello/sleep/settings", form, follow_redirects=True)
    assert "Sleep settings saved: hello sleeps after 15m idle." in shown.get_data(as_text=True)
    assert stored(dash) == (900, "worker,clock", False)
    page = dash.client.get("/apps/hello").get_data(as_text=True)
    assert 'name="sleep_after" type="text" placeholder="default" value="15m"' in page

    refused = dash.post("/apps/hello/sleep/settings", {"sleep_after": "5s", "sleep_types": ""})
    assert refused.status_code == 302
    page = dash.client.get(refused.location).get_data(as_text=True)
    assert "sleep_after is at least 10s (or never), not 5s." in page
    assert stored(dash) == (900, "worker,clock", False)

    cleared = dash.post("/apps/hello/sleep/settings", {"sleep_after": "", "sleep_types": ""})
    assert "never sleeps" in dash.client.get(cleared.location).get_data(as_text=True)
    assert stored(dash) == (None, "", False)


def test_a_sleeping_app_page_says_how_it_wakes(dash: Dash) -> None:
    make_app(dash, "hello", releases=1)
    set_app(dash, sleeping=True, sleep_types="worker")

    def add_events(session: Session) -> None:
        app = session.scalars(select(App).where(App.name == "hello")).one()
        session.add(Event(app_id=app.id, type="app_slept", message="idle for 15m"))
        session.add(Event(app_id=app.id, type="wake_failed", message="web.1 did not start"))
        for instance in app.instances:  # retired when it went to sleep
            session.delete(instance)

    dash.query(add_events)
    dash.sign_in()
    page = dash.client.get("/apps/hello").get_data(as_text=True)
    state = page.split('id="sleep-state"')[1].split("</p>")[0]
    assert "and its worker" in state and "The next request wakes it." in state
    assert 'id="sleep-now"' not in page
    assert "Sleeping: no instance runs until the next request wakes it." in page
    assert re.search(r'class="bad" data-event="wake_failed">\s*<strong>Wake failed</strong>', page)
    assert "<strong>Went to sleep</strong>" in page
