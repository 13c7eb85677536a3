"""``/api/v1/spaces`` and ``/api/v1/apps/<app>/spaces`` through Flask's test client, on the fake
space provider: every answer, and bad input that gets one sentence and changes nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from slipway.config import Settings
from slipway.db import session_scope
from slipway.models import Space
from slipway.services.releases import ROLL_TASK
from tests.fakes import FakeSpaces
from tests.unit import test_api
from tests.unit.test_api import Api, release_app

G = 1024**3


@pytest.fixture
def api(settings: Settings, tmp_path: Path) -> Iterator[Api]:
    yield from test_api.api.__wrapped__(settings, tmp_path)  # type: ignore[attr-defined]


def ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.get_json()
    return response.get_json()


def error(response: Any, status: int) -> str:
    assert response.status_code == status, response.get_json()
    message: str = response.get_json()["error"]
    return message


def space_count(api: Api) -> int:
    with session_scope(api.factory) as session:
        return session.scalar(select(func.count()).select_from(Space)) or 0


def tree(api: Api, name: str) -> Any:
    assert isinstance(api.adapters.space_provider, FakeSpaces)
    with session_scope(api.factory) as session:
        key = session.scalars(select(Space).where(Space.name == name)).one().key
    return api.adapters.space_provider.tree(key)


def test_create_list_show_checkpoint_and_fork(api: Api) -> None:
    created = ok(api.call("POST", "/spaces", json={"name": "db", "size": "1G"}), 201)
    assert (created["name"], created["size"], created["used"], created["state"]) == (
        "db",
        G,
        0,
        "ready",
    )
    assert created["copies"] is True  # the fake copies, as the directory provider does
    (tree(api, "db") / "file").write_bytes(b"x" * 100)
    checkpoint = ok(api.call("POST", "/spaces/db/checkpoints", json={"name": "v1"}), 201)
    assert checkpoint["name"] == "v1"
    forked = ok(api.call("POST", "/spaces/fork", json={"source": "db@v1", "name": "db-v1"}), 201)
    assert (forked["origin"], forked["used"]) == ("fork of db@v1", 100)
    ok(api.call("POST", "/spaces/fork", json={"source": "db", "name": "db-now"}), 201)

    listed = ok(api.call("GET", "/spaces"))
    assert [s["name"] for s in listed] == ["db", "db-now", "db-v1"]
    shown = ok(api.call("GET", "/spaces/db"))
    assert [c["name"] for c in shown["checkpoints"]] == ["v1"]
    assert shown["used"] == 100
    assert ok(api.call("GET", "/spaces", user="bob")) == []
    assert error(api.call("GET", "/spaces/db", user="bob"), 404) == "There is no space named 'db'."
    assert len(ok(api.call("GET", "/spaces", user="root"))) == 3


def test_bad_input_gets_one_sentence_and_changes_nothing(api: Api) -> None:
    ok(api.call("POST", "/spaces", json={"name": "db"}), 201)  # the default size
    assert ok(api.call("GET", "/spaces/db"))["size"] == G
    bad_name = error(api.call("POST", "/spaces", json={"name": "Bad_Name", "size": "1G"}), 422)
    assert bad_name.startswith("'Bad_Name' is not a valid space name.")
    small = error(api.call("POST", "/spaces", json={"name": "tiny", "size": "1M"}), 422)
    assert small == "A space's size is at least 32M, such as 512M or 1G, not '1M'."
    taken = error(api.call("POST", "/spaces", json={"name": "db", "size": "1G"}), 409)
    assert taken == "A space named 'db' already exists."
    missing = error(api.call("POST", "/spaces/fork", json={"source": "db@v9", "name": "x"}), 404)
    assert missing == "The space db has no checkpoint named 'v9'."
    ok(api.call("POST", "/spaces/db/checkpoints", json={"name": "v1"}), 201)
    again = error(api.call("POST", "/spaces/db/checkpoints", json={"name": "v1"}), 409)
    assert again == "The space db already has a checkpoint named 'v1'."
    assert space_count(api) == 1
    assert [c["name"] for c in ok(api.call("GET", "/spaces/db"))["checkpoints"]] == ["v1"]


def test_attach_rolls_the_app_and_delete_waits_for_detach(api: Api) -> None:
    api.create("blog")
    release_app(api, "blog")
    ok(api.call("POST", "/spaces", json={"name": "db", "size": "64M"}), 201)
    attached = ok(
        api.call("POST", "/spaces/db/attach", json={"app": "blog", "slot": "data"}),
        201,
    )
    assert attached == {
        "space": "db",
        "app": "blog",
        "slot": "data",
        "process_types": [],
        "mount": "/spaces/data/tree",
        "release": 2,
    }
    assert api.sender.names() == [ROLL_TASK]
    taken = error(api.call("POST", "/spaces/db/attach", json={"app": "blog", "slot": "data"}), 409)
    assert taken.startswith("The app blog already has the space db in slot data;")
    on_app = ok(api.call("GET", "/apps/blog/spaces"))
    assert [(s["space"], s["slot"], s["size"], s["used"]) for s in on_app] == [
        ("db", "data", 64 * 1024**2, 0)
    ]
    assert ok(api.call("GET", "/spaces/db"))["attachments"] == [
        {"app": "blog", "slot": "data", "process_types": []}
    ]

    refused = error(api.call("DELETE", "/spaces/db"), 409)
    assert refused == (
        "The space db is attached to app blog in slot data; detach it first or use --force."
    )
    detached = ok(api.call("DELETE", "/apps/blog/spaces/data"))
    assert (detached["space"], detached["release"]) == ("db", 3)
    assert error(api.call("DELETE", "/apps/blog/spaces/data"), 404) == (
        "The app blog has no space in slot data."
    )
    assert ok(api.call("DELETE", "/spaces/db")) == {"deleted": "db", "detached": []}
    assert space_count(api) == 0


def test_force_deletes_an_attached_space_and_another_user_cannot_attach(api: Api) -> None:
    api.create("blog")
    ok(api.call("POST", "/spaces", json={"name": "db", "size": "64M"}), 201)
    ok(api.call("POST", "/spaces", json={"name": "bobs", "size": "64M"}, user="bob"), 201)
    assert error(
        api.call("POST", "/spaces/bobs/attach", json={"app": "blog", "slot": "x"}, user="bob"),
        404,
    ) == ("There is no app named 'blog'.")
    attached = ok(
        api.call(
            "POST",
            "/spaces/db/attach",
            json={"app": "blog", "slot": "data", "process_types": ["web"]},
        ),
        201,
    )
    assert attached["release"] is None  # no release yet: the first deploy mounts it
    deleted = ok(api.call("DELETE", "/spaces/db?force=1"))
    assert [(d["app"], d["slot"]) for d in deleted["detached"]] == [("blog", "data")]
    assert ok(api.call("GET", "/apps/blog/spaces")) == []
