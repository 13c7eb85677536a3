"""`slipway events` and `slipway webhooks` against the small fake API of ``test_cli``."""

from __future__ import annotations

from tests.unit import test_cli
from tests.unit.test_cli import FakeApi, run

api = test_cli.api  # the same fixture: a real local HTTP server standing in for the API

EVENT = {
    "id": 7,
    "app": "hello",
    "type": "crash",
    "message": "Process web of slipway-hello-3 crashed (exit status 1).",
    "instance_id": 3,
    "data": {},
    "created_at": "2025-01-02T03:04:05+00:00",
}
HOOK = {"id": 3, "url": "https://example.com/hook", "events": ["crash", "oom"], "created_at": "t"}


def test_events_table_json_limit_and_types(api: FakeApi) -> None:
    api.on("GET", "/apps/hello/events", (200, [EVENT]))
    table = run("events", "-a", "hello", "--limit", "5", "--type", "crash,oom")
    assert table.exit_code == 0, table.output
    assert "TYPE" in table.output and "crashed (exit status 1)" in table.output
    assert api.last("GET", "/apps/hello/events").query == {"limit": ["5"], "type": ["crash,oom"]}
    as_json = run("events", "-a", "hello", "--json")
    assert '"type": "crash"' in as_json.output
    assert api.last("GET", "/apps/hello/events").query == {"limit": ["20"]}


def test_events_refuses_a_silly_limit_and_shows_api_errors(api: FakeApi) -> None:
    assert run("events", "-a", "hello", "--limit", "0").exit_code == 2
    api.on("GET", "/apps/nope/events", (404, {"error": "There is no app named 'nope'."}))
    missing = run("events", "-a", "nope")
    assert missing.exit_code == 1 and "There is no app named 'nope'." in missing.output


def test_webhooks_add_prints_a_generated_secret_once(api: FakeApi) -> None:
    api.on("POST", "/apps/hello/webhooks", (201, {**HOOK, "secret": "generated-secret"}))
    added = run("webhooks:add", "https://example.com/hook", "-a", "hello", "--events", "crash,oom")
    assert added.exit_code == 0, added.output
    assert api.last("POST", "/apps/hello/webhooks").json() == {
        "url": "https://example.com/hook",
        "events": ["crash", "oom"],
    }
    assert "Added webhook 3" in added.output and "generated-secret" in added.output

    given = run("webhooks", "add", "https://example.com/hook", "-a", "hello", "--secret", "mine")
    assert api.last("POST", "/apps/hello/webhooks").json()["secret"] == "mine"
    assert "generated-secret" not in given.output  # the user's own secret is not echoed


def test_webhooks_list_remove_and_deliveries(api: FakeApi) -> None:
    api.on("GET", "/apps/hello/webhooks", (200, [HOOK]))
    listed = run("webhooks", "-a", "hello")
    assert listed.exit_code == 0 and "https://example.com/hook" in listed.output
    assert "crash, oom" in listed.output

    api.on("DELETE", "/apps/hello/webhooks/3", (204, None))
    removed = run("webhooks:remove", "3", "-a", "hello")
    assert removed.exit_code == 0 and "Removed webhook 3." in removed.output
    assert api.last("DELETE", "/apps/hello/webhooks/3").method == "DELETE"

    attempt = {"status_code": 500, "duration_ms": 12, "error": None, "created_at": "t"}
    delivery = {
        "id": 9,
        "event_id": 7,
        "event_type": "crash",
        "state": "retrying",
        "attempts": 1,
        "created_at": "t",
        "attempt_log": [attempt],
    }
    api.on("GET", "/apps/hello/webhooks/3/deliveries", (200, [delivery]))
    shown = run("webhooks:deliveries", "3", "-a", "hello")
    assert shown.exit_code == 0, shown.output
    assert "retrying" in shown.output and "500" in shown.output
    assert run("webhooks:deliveries", "x", "-a", "hello").exit_code == 2


def test_help_has_examples() -> None:
    for command in (["events"], ["webhooks"], ["webhooks", "add"], ["webhooks:deliveries"]):
        result = run(*command, "--help")
        assert result.exit_code == 0 and "Example" in result.output, command
