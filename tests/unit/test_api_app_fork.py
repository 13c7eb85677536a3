"""POST /apps/<app>/fork and DELETE /apps/<app>?delete_spaces=1 through the test client, and
`slipway apps:fork` / `apps:destroy --delete-spaces` against a fake API."""

# ruff: noqa: F811  # the fixtures imported from the other test modules are requested by name

from __future__ import annotations

import json

from sqlalchemy import select

from slipway.db import session_scope
from slipway.models import App, Release, Space
from slipway.services import spaces
from tests.unit.test_api import Api, api, release_app  # noqa: F401  (fixtures are used by name)
from tests.unit.test_cli import FakeApi, run
from tests.unit.test_cli import api as cli_api  # noqa: F401

MB = 1024**2


def deployed_with_space(api: Api, name: str = "hello") -> None:
    """An app with a current release whose slug is in the artifact store, and a space in
    slot ``data``."""
    api.create(name)
    slug = api.adapters.artifacts.new_slug_path(name)
    slug.write_bytes(b"slug bytes")
    release_app(api, name, slug=slug)
    with session_scope(api.factory) as session:
        app = session.scalars(select(App).where(App.name == name)).one()
        space = spaces.create_space(session, api.adapters, app.owner, f"{name}-data", 64 * MB)
        spaces.attach_space(session, space, app, "data")


def test_fork_answers_the_new_app_with_what_was_forked(api: Api) -> None:
    deployed_with_space(api)

    response = api.call("POST", "/apps/hello/fork", json={"name": "hello-pr1"})

    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["name"] == "hello-pr1" and body["owner"] == "alice"
    assert body["url"].startswith("http://hello-pr1.")
    assert body["forked_from"] == {"app": "hello", "version": 1}
    assert body["forked_release"] == 1
    assert body["forked_spaces"] == [
        {"slot": "data", "source": "hello-data", "space": "hello-pr1-data"}
    ]
    rolls = [args for name, args in api.sender.sent if name == "slipway.roll"]
    with session_scope(api.factory) as session:
        new = session.scalars(select(App).where(App.name == "hello-pr1")).one()
        release = session.scalars(select(Release).where(Release.app_id == new.id)).one()
        assert rolls == [(new.id, release.id)]
        assert open(release.slug_path, "rb").read() == b"slug bytes"


def test_fork_refusals_are_one_sentence(api: Api) -> None:
    api.create("empty")
    deployed_with_space(api)
    cases = [
        ("/apps/empty/fork", {"name": "x"}, 409, "has no release yet"),
        ("/apps/hello/fork", {"name": "empty"}, 409, "already exists"),
        ("/apps/hello/fork", {"name": "Not OK"}, 422, "not a valid app name"),
        ("/apps/hello/fork", {}, 422, "not a valid app name"),
        ("/apps/nope/fork", {"name": "x"}, 404, "There is no app named 'nope'"),
    ]
    for path, body, status, sentence in cases:
        response = api.call("POST", path, json=body)
        assert response.status_code == status, (path, body, response.get_json())
        assert sentence in response.get_json()["error"]
    # Another user cannot see (so cannot fork) alice's app.
    assert api.call("POST", "/apps/hello/fork", user="bob", json={"name": "b"}).status_code == 404
    with session_scope(api.factory) as session:
        assert sorted(session.scalars(select(App.name))) == ["empty", "hello"]
        assert list(session.scalars(select(Space.name))) == ["hello-data"]


def test_delete_keeps_spaces_or_deletes_them_when_asked(api: Api) -> None:
    deployed_with_space(api, "one")
    deployed_with_space(api, "two")
    api.create("plain")

    assert api.call("DELETE", "/apps/plain").status_code == 204  # no spaces: as before
    kept = api.call("DELETE", "/apps/one")
    assert kept.status_code == 200
    assert kept.get_json() == {"name": "one", "spaces_kept": ["one-data"], "spaces_deleted": []}
    deleted = api.call("DELETE", "/apps/two?delete_spaces=1")
    assert deleted.status_code == 200
    assert deleted.get_json() == {"name": "two", "spaces_kept": [], "spaces_deleted": ["two-data"]}
    with session_scope(api.factory) as session:
        assert list(session.scalars(select(Space.name))) == ["one-data"]
        assert list(session.scalars(select(App.name))) == []


# ----------------------------------------------------------------------------- the CLI


def test_cli_fork_prints_what_was_forked_and_waits_for_the_url(cli_api: FakeApi) -> None:
    made = {
        "name": "hello-pr1",
        "url": "http://hello-pr1.test",
        "forked_from": {"app": "hello", "version": 7},
        "forked_release": 1,
        "forked_spaces": [{"slot": "data", "source": "hello-data", "space": "hello-pr1-data"}],
    }
    cli_api.on("POST", "/apps/hello/fork", (201, made))
    views = iter([{"release": None}, {"release": {"version": 1}, "url": "http://hello-pr1.test"}])
    cli_api.on("GET", "/apps/hello-pr1", lambda seen: (200, next(views)))
    cli_api.on("GET", "/apps/hello-pr1/events", (200, []))

    result = run("apps:fork", "hello", "hello-pr1")

    assert result.exit_code == 0, result.output
    assert cli_api.last("POST", "/apps/hello/fork").json() == {"name": "hello-pr1"}
    assert "Forked hello v7 into hello-pr1." in result.output
    assert "Space hello-data forked into hello-pr1-data (slot data)." in result.output
    assert "v1 is live" in result.output and "hello-pr1: http://hello-pr1.test" in result.output


def test_cli_fork_no_wait_json_and_a_refusal(cli_api: FakeApi) -> None:
    cli_api.on("POST", "/apps/hello/fork", (201, {"name": "b", "forked_release": 1}))
    result = run("apps", "fork", "hello", "b", "--no-wait", "--json")
    assert result.exit_code == 0 and json.loads(result.output)["name"] == "b"
    assert not [s for s in cli_api.seen if s.method == "GET"]
    cli_api.on("POST", "/apps/new/fork", (409, {"error": "The app new has no release yet."}))
    refused = run("apps:fork", "new", "c")
    assert refused.exit_code == 1 and "The app new has no release yet." in refused.output


def test_cli_destroy_lists_the_spaces_kept_or_deleted(cli_api: FakeApi) -> None:
    cli_api.on(
        "DELETE",
        "/apps/hello",
        lambda seen: (
            200,
            {"spaces_kept": [], "spaces_deleted": ["hello-data"]}
            if seen.query.get("delete_spaces") == ["1"]
            else {"spaces_kept": ["hello-data"], "spaces_deleted": []},
        ),
    )
    kept = run("apps:destroy", "-a", "hello", "--confirm", "hello")
    assert kept.exit_code == 0, kept.output
    assert "Kept spaces: hello-data" in kept.output and "Deleted" not in kept.output
    deleted = run("apps:destroy", "-a", "hello", "--confirm", "hello", "--delete-spaces")
    assert deleted.exit_code == 0, deleted.output
    assert "Deleted spaces: hello-data." in deleted.output and "Kept" not in deleted.output
    cli_api.on("DELETE", "/apps/plain", (204, None))
    plain = run("apps:destroy", "-a", "plain", "--confirm", "plain")
    assert plain.exit_code == 0 and plain.output == "Destroyed plain.\n"
