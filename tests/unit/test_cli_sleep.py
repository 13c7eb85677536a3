"""`slipway apps:update --sleep-after/--sleep-types`, `apps:info`, `ps`, `ps:sleep` and
`ps:wake` against the fake API of test_cli."""

# ruff: noqa: F811  # the fixtures imported from the other test modules are requested by name

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.test_cli import FakeApi, api, run  # noqa: F401  (fixtures are used by name)


def app_view(**changes: Any) -> dict[str, Any]:
    view = {
        "name": "hello",
        "url": "http://hello.localhost",
        "state": "running",
        "release": {"version": 3},
        "deploy_branch": "main",
        "deploy_strategy": "rolling",
        "sleep_after": 900,
        "sleep_after_source": "app",
        "sleep_types": [],
        "sleeping": False,
        "instances": [],
        "created_at": "2026-11-28T12:00:00",
    }
    return {**view, **changes}


def field_lines(output: str) -> dict[str, str]:
    found = {}
    for line in output.splitlines():
        key, sep, value = line.partition(":")
        if sep and " " not in key:
            found[key] = value.strip()
    return found


@pytest.mark.parametrize(
    ("args", "sent"),
    [
        (["--sleep-after", "15m"], {"sleep_after": "15m"}),
        (["--sleep-after", "never"], {"sleep_after": "never"}),
        (["--sleep-after", "default"], {"sleep_after": None}),
        (["--sleep-types", "worker, clock"], {"sleep_types": ["worker", "clock"]}),
        (["--sleep-types", ""], {"sleep_types": []}),
    ],
)
def test_apps_update_sends_the_sleep_settings(
    api: FakeApi, args: list[str], sent: dict[str, Any]
) -> None:
    api.on("PATCH", "/apps/hello", (200, app_view()))
    result = run("apps:update", "-a", "hello", *args)
    assert result.exit_code == 0, result.output
    assert api.last("PATCH", "/apps/hello").json() == sent
    assert field_lines(result.output)["sleep_after"] == "15m"


def test_apps_update_shows_a_refused_setting_as_its_sentence(api: FakeApi) -> None:
    refusal = {"error": "sleep_after is at least 10s (or never), not 5s."}
    api.on("PATCH", "/apps/hello", (422, refusal))
    result = run("apps:update", "-a", "hello", "--sleep-after", "5s")
    assert result.exit_code == 1
    assert "sleep_after is at least 10s (or never), not 5s." in result.output


def test_apps_update_help_explains_sleep_with_examples(api: FakeApi) -> None:
    shown = run("apps:update", "--help").output
    assert "--sleep-after DURATION" in shown and "--sleep-types TYPES" in shown
    assert "slipway apps:update -a hello --sleep-after 15m" in shown


def test_apps_info_shows_the_sleep_setting_and_its_source(api: FakeApi) -> None:
    view = app_view(state="sleeping", sleeping=True, sleep_after=1800)
    api.on("GET", "/apps/hello", (200, dict(view, sleep_after_source="platform")))
    fields = field_lines(run("apps:info", "-a", "hello").output)
    assert fields["state"] == "sleeping"
    assert fields["sleep_after"] == "30m (platform default)"
    assert fields["sleep_types"] == "-"

    never = app_view(sleep_after=0, sleep_types=["worker", "clock"])
    api.on("GET", "/apps/hello", (200, never))
    fields = field_lines(run("apps:info", "-a", "hello").output)
    assert (fields["sleep_after"], fields["sleep_types"]) == ("never", "worker, clock")


def test_apps_info_of_an_older_api_has_no_sleep_lines(api: FakeApi) -> None:
    old = {k: v for k, v in app_view().items() if not k.startswith("sleep")}
    api.on("GET", "/apps/hello", (200, old))
    result = run("apps:info", "-a", "hello")
    assert result.exit_code == 0, result.output
    assert "sleep" not in result.output


def processes(**sleep: Any) -> dict[str, Any]:
    process = {"name": "worker.1", "state": "RUNNING", "pid": 7, "uptime": "5s", "release": 3}
    return {"formation": {"web": 1, "worker": 1}, "processes": [process], **sleep}


def test_ps_says_a_sleeping_app_wakes_on_the_next_request(api: FakeApi) -> None:
    asleep = processes(sleeping=True, sleep_after=900, sleep_types=["worker"])
    api.on("GET", "/apps/hello/processes", (200, dict(asleep, processes=[])))
    lines = run("ps", "-a", "hello").output.splitlines()
    assert lines == [
        "Formation: web=1 worker=1",
        "State: sleeping (web, worker stopped); the next request wakes it.",
        "No processes.",
    ]


def test_ps_says_when_an_awake_app_sleeps_and_nothing_when_it_never_does(api: FakeApi) -> None:
    api.on("GET", "/apps/hello/processes", (200, processes(sleeping=False, sleep_after=900)))
    lines = run("ps", "-a", "hello").output.splitlines()
    assert lines[1] == "Sleeps after 15m without a request."
    worker = processes(sleeping=False, sleep_after=7200, sleep_types=["worker"])
    api.on("GET", "/apps/hello/processes", (200, worker))
    lines = run("ps", "-a", "hello").output.splitlines()
    assert lines[1] == "Sleeps after 2h without a request (web with worker)."
    api.on("GET", "/apps/hello/processes", (200, processes(sleeping=False, sleep_after=0)))
    lines = run("ps", "-a", "hello").output.splitlines()
    assert lines[0] == "Formation: web=1 worker=1"
    assert lines[1].split()[0] == "NAME"


def test_ps_sleep_posts_and_says_how_the_app_wakes(api: FakeApi) -> None:
    api.on("POST", "/apps/hello/sleep", (200, app_view(state="sleeping", sleeping=True)))
    result = run("ps:sleep", "-a", "hello")
    assert result.exit_code == 0, result.output
    assert api.last("POST", "/apps/hello/sleep").method == "POST"
    assert result.output.strip() == (
        "hello is sleeping: the next request wakes it (or `slipway ps:wake -a hello`)."
    )


def test_ps_sleep_refused_while_a_deploy_runs_says_so(api: FakeApi) -> None:
    refusal = {"error": "A deploy of hello is running; it cannot sleep now."}
    api.on("POST", "/apps/hello/sleep", (409, refusal))
    result = run("ps:sleep", "-a", "hello")
    assert result.exit_code == 1
    assert "A deploy of hello is running; it cannot sleep now." in result.output


def test_ps_wake_lists_the_live_instances_or_the_reason_it_failed(api: FakeApi) -> None:
    live = [{"process_type": "web", "index": 1, "state": "live"}]
    api.on("POST", "/apps/hello/wake", (200, app_view(instances=live)))
    result = run("ps:wake", "-a", "hello")
    assert (result.exit_code, result.output.strip()) == (0, "hello is awake: web.1 live.")

    failed = {"error": "hello could not start: web.1 did not answer on its port."}
    api.on("POST", "/apps/hello/wake", (503, failed))
    result = run("ps:wake", "-a", "hello")
    assert result.exit_code == 1
    assert failed["error"] in result.output


def test_ps_help_lists_sleep_and_wake(api: FakeApi) -> None:
    shown = run("ps", "--help").output
    assert "sleep" in shown.split("Commands:")[1] and "wake" in shown.split("Commands:")[1]
    assert "The next request wakes it." in run("ps:sleep", "--help").output
