"""The HTTP API through Flask's test client: a SQLite database, fake adapters, recorded tasks."""

from __future__ import annotations

import io
import tarfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from kombu.exceptions import OperationalError
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from slipway.adapters import Adapters
from slipway.config import Settings
from slipway.db import session_scope, upgrade_database
from slipway.models import App, Deploy, Instance, Release
from slipway.runtime.base import ContainerInfo, RuntimeUnavailable
from slipway.services import users
from slipway.tasks import dispatch
from slipway.webapp import create_app
from tests.fakes import FakeRouter, FakeRuntime, RecordingSender, fake_adapters


@dataclass
class Api:
    client: FlaskClient
    factory: sessionmaker[Session]
    adapters: Adapters
    sender: RecordingSender
    tokens: dict[str, str]

    def call(self, method: str, path: str, user: str | None = "alice", **kw: Any) -> Any:
        headers = kw.pop("headers", {})
        if user is not None:
            headers["Authorization"] = f"Bearer {self.tokens[user]}"
        return self.client.open(f"/api/v1{path}", method=method, headers=headers, **kw)

    def create(self, name: str, user: str = "alice") -> Any:
        response = self.call("POST", "/apps", user, json={"name": name})
        assert response.status_code == 201, response.get_json()
        return response.get_json()


@pytest.fixture
def api(settings: Settings, tmp_path: Path) -> Iterator[Api]:
    upgrade_database(settings)
    adapters = fake_adapters(tmp_path / "adapters")
    flask_app = create_app(settings, adapters)
    factory = flask_app.extensions["slipway"].session_factory
    tokens = {}
    with session_scope(factory) as session:
        for name, admin in (("alice", False), ("bob", False), ("root", True)):
            tokens[name] = users.create_token(session, users.create_user(session, name, admin))
    sender = RecordingSender()
    previous = dispatch.set_sender(sender)
    yield Api(flask_app.test_client(), factory, adapters, sender, tokens)
    dispatch.set_sender(previous)


def tarball(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def release_app(api: Api, name: str, versions: int = 1, slug: Path | None = None) -> None:
    """Give an app releases v1..vN (the last one current) and one live instance."""
    with session_scope(api.factory) as session:
        app = session.scalars(select(App).where(App.name == name)).one()
        for version in range(1, versions + 1):
            release = Release(
                app=app,
                version=version,
                slug_path=str(slug or "/nowhere.tgz"),
                stack="static",
                config=dict(app.config),
                process_types={"web": "serve"},
                description=f"Deploy {version}",
            )
            app.current_release = release
        session.add(
            Instance(
                app=app,
                release=release,
                container_id=f"cid-{name}-web-1",
                container_name=f"{name}-web-1",
                volume_name=f"{name}-web-1",
                host_port=34567,
                state="live",
            )
        )


# ----------------------------------------------------------------------------- auth


def test_every_call_needs_a_valid_bearer_token(api: Api) -> None:
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic abc"}):
        response = api.call("GET", "/apps", user=None, headers=headers)
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert response.get_json()["error"].endswith(".")
    assert api.call("POST", "/apps", user=None, json={"name": "x"}).status_code == 401
    assert api.call("GET", "/apps").status_code == 200


def test_the_user_endpoint_says_who_the_token_is(api: Api) -> None:
    assert api.call("GET", "/user", "root").get_json() == {"username": "root", "is_admin": True}


def test_another_users_app_is_not_found_and_the_admin_sees_all(api: Api) -> None:
    api.create("alices")
    api.create("bobs", user="bob")
    for method, path in [
        ("GET", "/apps/bobs"),
        ("DELETE", "/apps/bobs"),
        ("GET", "/apps/bobs/config"),
        ("PATCH", "/apps/bobs/config"),
        ("GET", "/apps/bobs/releases"),
        ("POST", "/apps/bobs/scale"),
        ("GET", "/apps/bobs/deploys/1"),
    ]:
        response = api.call(method, path, json={"web": 1})
        assert response.status_code == 404, (method, path)
        assert response.get_json() == {"error": "There is no app named 'bobs'."}
    assert [a["name"] for a in api.call("GET", "/apps").get_json()] == ["alices"]
    assert [a["name"] for a in api.call("GET", "/apps", "root").get_json()] == ["alices", "bobs"]
    assert api.call("GET", "/apps/bobs", "root").status_code == 200


# ----------------------------------------------------------------------------- apps


def test_creating_an_app_answers_201_with_the_app(api: Api) -> None:
    app = api.create("hello")
    assert app["name"] == "hello"
    assert app["owner"] == "alice"
    assert app["url"] == "http://hello.localhost"
    assert app["state"] == "new"
    assert app["release"] is None
    assert app["instances"] == []
    assert app["formation"] == {"web": 1}


@pytest.mark.parametrize("name", ["Hello", "-x", "a_b", "x" * 64, "", 12])
def test_a_bad_name_is_422_with_a_clear_sentence(api: Api, name: object) -> None:
    response = api.call("POST", "/apps", json={"name": name})
    assert response.status_code == 422
    assert "An app name is a DNS label" in response.get_json()["error"]


def test_a_body_that_is_not_a_json_object_is_refused(api: Api) -> None:
    response = api.call("POST", "/apps", data="name=hello")
    assert response.status_code == 422
    assert "JSON object" in response.get_json()["error"]


def test_a_duplicate_name_is_409(api: Api) -> None:
    api.create("hello")
    response = api.call("POST", "/apps", "bob", json={"name": "hello"})
    assert response.status_code == 409
    assert response.get_json() == {"error": "An app named 'hello' already exists."}


def test_showing_an_app_lists_instances_with_state_and_port(api: Api) -> None:
    api.create("hello")
    release_app(api, "hello")
    app = api.call("GET", "/apps/hello").get_json()
    assert app["state"] == "running"
    assert app["release"]["version"] == 1
    assert [(i["state"], i["port"]) for i in app["instances"]] == [("live", 34567)]


def test_deleting_an_app_removes_it_and_its_route(api: Api) -> None:
    api.create("hello")
    api.create("other")
    runtime, router = api.adapters.runtime, api.adapters.router
    assert isinstance(runtime, FakeRuntime) and isinstance(router, FakeRouter)
    response = api.call("DELETE", "/apps/hello")
    assert response.status_code == 204
    assert response.data == b""
    assert [route.app for route in router.routes] == ["other"]
    assert api.call("GET", "/apps/hello").status_code == 404
    assert api.create("hello")["release"] is None  # the name is free again


# ----------------------------------------------------------------------------- deploys


def test_a_tarball_upload_queues_a_deploy_sent_after_commit(api: Api) -> None:
    api.create("hello")
    body = tarball({"index.html": b"<h1>hi</h1>"})
    response = api.call(
        "POST", "/apps/hello/deploys", data=body, headers={"Content-Type": "application/gzip"}
    )
    assert response.status_code == 202, response.get_json()
    deploy = response.get_json()
    assert deploy["state"] == "queued"
    assert api.sender.sent == [("slipway.deploy", (deploy["id"],))]

    shown = api.call("GET", f"/apps/hello/deploys/{deploy['id']}").get_json()
    assert shown["state"] == "queued" and shown["error"] is None
    listed = api.call("GET", "/apps/hello/deploys").get_json()
    assert [d["id"] for d in listed] == [deploy["id"]]
    assert api.call("GET", f"/apps/hello/deploys/{deploy['id'] + 1}").status_code == 404


def test_a_queued_deploy_is_cancelled_once_and_only_by_its_owner(api: Api) -> None:
    api.create("hello")
    body = tarball({"index.html": b"<h1>hi</h1>"})
    headers = {"Content-Type": "application/gzip"}
    deploy = api.call("POST", "/apps/hello/deploys", data=body, headers=headers).get_json()
    cancel = f"/apps/hello/deploys/{deploy['id']}/cancel"

    refused = api.call("POST", cancel, "bob")
    assert refused.status_code == 404 and "hello" in refused.get_json()["error"]
    assert api.call("GET", f"/apps/hello/deploys/{deploy['id']}").get_json()["state"] == "queued"

    cancelled = api.call("POST", cancel)
    assert cancelled.status_code == 200, cancelled.get_json()
    assert cancelled.get_json()["state"] == "cancelled"
    assert cancelled.get_json()["error"] == "Cancelled by alice."
    again = api.call("POST", cancel)
    assert again.status_code == 409
    assert again.get_json()["error"] == (
        f"Deploy {deploy['id']} already ended (cancelled); "
        "only a queued or running deploy can be cancelled."
    )
    assert api.call("POST", f"/apps/hello/deploys/{deploy['id'] + 1}/cancel").status_code == 404
    events = api.call("GET", "/apps/hello/events").get_json()
    assert [e["type"] for e in events] == ["deploy_cancelled"]


def test_an_upload_naming_its_commit_is_a_git_deploy_of_that_commit(api: Api) -> None:
    api.create("hello")
    sha = "3F1C2A9B0D4E" + "0" * 28
    body = tarball({"index.html": b"<h1>hi</h1>"})
    response = api.call("POST", "/apps/hello/deploys", data=body, headers={"X-Slipway-Commit": sha})
    assert response.status_code == 202, response.get_json()
    deploy = response.get_json()
    assert (deploy["source_kind"], deploy["commit"]) == ("git", sha.lower())
    with session_scope(api.factory) as session:
        stored = session.get_one(Deploy, deploy["id"])
        assert (stored.source_kind, stored.commit) == ("git", sha.lower())
        assert Path(stored.log_path).read_text() == "-----> Source received: 1 files (git)\n"
    assert api.sender.sent == [("slipway.deploy", (deploy["id"],))]


@pytest.mark.parametrize("commit", ["", "main", "3f1c2a9b", "g" * 40, "a" * 41, "a" * 64])
def test_a_commit_header_that_is_not_a_commit_id_is_refused(api: Api, commit: str) -> None:
    api.create("hello")
    body = tarball({"index.html": b"<h1>hi</h1>"})
    headers = {"X-Slipway-Commit": commit}
    response = api.call("POST", "/apps/hello/deploys", data=body, headers=headers)
    assert response.status_code == 422
    assert response.get_json()["error"] == (
        f"X-Slipway-Commit must be a full commit id (40 hex digits), not {commit!r}."
    )
    assert api.sender.sent == []
    with session_scope(api.factory) as session:
        assert session.scalars(select(Deploy)).all() == []


def test_a_path_traversal_archive_is_refused_and_nothing_is_queued(api: Api) -> None:
    api.create("hello")
    body = tarball({"../escape.txt": b"x"})
    response = api.call("POST", "/apps/hello/deploys", data=body)
    assert 400 <= response.status_code < 500
    assert response.get_json()["error"]
    assert api.sender.sent == []
    with session_scope(api.factory) as session:
        assert session.scalars(select(Deploy)).all() == []


def test_an_upload_over_the_limit_is_413(api: Api, settings: Settings, tmp_path: Path) -> None:
    small = settings.with_overrides(max_upload_size=1024)
    upgrade_database(small)
    client = create_app(small, fake_adapters(tmp_path / "small")).test_client()
    with session_scope(api.factory) as session:
        token = users.create_token(session, users.create_user(session, "carol"))
    headers = {"Authorization": f"Bearer {token}"}
    assert client.post("/api/v1/apps", json={"name": "big"}, headers=headers).status_code == 201
    response = client.post("/api/v1/apps/big/deploys", data=b"x" * 4096, headers=headers)
    assert response.status_code == 413
    assert "limit" in response.get_json()["error"]


def test_the_log_streams_until_the_deploy_ends(api: Api, tmp_path: Path) -> None:
    api.create("hello")
    log = tmp_path / "deploy.log"
    log.write_text("-----> first\n")
    with session_scope(api.factory) as session:
        app = session.scalars(select(App)).one()
        deploy = Deploy(app=app, state="building", source_path="/s", log_path=str(log))
        session.add(deploy)
    deploy_id = deploy.id

    def finish() -> None:
        time.sleep(0.7)
        with log.open("a") as handle:
            handle.write("-----> last\n")
        with session_scope(api.factory) as session:
            session.get_one(Deploy, deploy_id).state = "succeeded"

    writer = threading.Thread(target=finish)
    writer.start()
    started = time.monotonic()
    response = api.call("GET", f"/apps/hello/deploys/{deploy_id}/log")
    writer.join(timeout=10)
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    assert response.get_data(as_text=True) == "-----> first\n-----> last\n"
    assert time.monotonic() - started < 10


def test_the_log_of_a_finished_deploy_is_kept(api: Api, tmp_path: Path) -> None:
    api.create("hello")
    log = tmp_path / "done.log"
    log.write_text("built\n")
    with session_scope(api.factory) as session:
        app = session.scalars(select(App)).one()
        deploy = Deploy(app=app, state="failed", error="It broke.", source_path="/s")
        deploy.log_path = str(log)
        session.add(deploy)
    assert api.call("GET", f"/apps/hello/deploys/{deploy.id}/log").data == b"built\n"
    shown = api.call("GET", f"/apps/hello/deploys/{deploy.id}").get_json()
    assert (shown["state"], shown["error"]) == ("failed", "It broke.")


# ----------------------------------------------------------------------------- releases


def test_releases_are_listed_newest_first(api: Api) -> None:
    api.create("hello")
    release_app(api, "hello", versions=3)
    listed = api.call("GET", "/apps/hello/releases").get_json()
    assert [(r["version"], r["current"]) for r in listed] == [(3, True), (2, False), (1, False)]


def test_a_rollback_makes_a_new_release_and_rolls(api: Api, tmp_path: Path) -> None:
    api.create("hello")
    slug = tmp_path / "slug.tgz"
    slug.write_bytes(tarball({"index.html": b"v1"}))
    release_app(api, "hello", versions=2, slug=slug)
    response = api.call("POST", "/apps/hello/rollback", json={"version": 1})
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["version"] == 3
    assert api.sender.names() == ["slipway.roll"]
    bad = api.call("POST", "/apps/hello/rollback", json={"version": 9})
    assert bad.status_code == 404


# ----------------------------------------------------------------------------- config, scale


def test_config_changes_make_a_new_release_and_null_unsets(api: Api) -> None:
    api.create("hello")
    assert api.call("PATCH", "/apps/hello/config", json={"A": "1", "B": "2"}).status_code == 200
    release_app(api, "hello")
    response = api.call("PATCH", "/apps/hello/config", json={"B": None, "C": "3"})
    assert response.get_json() == {"A": "1", "C": "3"}
    assert api.call("GET", "/apps/hello/config").get_json() == {"A": "1", "C": "3"}
    versions = [r["version"] for r in api.call("GET", "/apps/hello/releases").get_json()]
    assert versions == [2, 1]
    assert api.sender.names() == ["slipway.roll"]


def test_a_bad_config_change_is_422(api: Api) -> None:
    api.create("hello")
    response = api.call("PATCH", "/apps/hello/config", json={"PORT": "1"})
    assert response.status_code == 422
    assert "set by the platform" in response.get_json()["error"]


def test_scaling_records_the_formation(api: Api) -> None:
    api.create("hello")
    response = api.call("POST", "/apps/hello/scale", json={"web": 3})
    assert response.status_code == 200
    assert response.get_json()["web"] == 3
    assert api.call("GET", "/apps/hello").get_json()["formation"] == {"web": 3}
    assert api.call("POST", "/apps/hello/scale", json={"web": -1}).status_code == 422


# ----------------------------------------------------------------------------- errors


def test_unknown_endpoints_and_methods_answer_json(api: Api) -> None:
    missing = api.call("GET", "/nothing-here")
    assert missing.status_code == 404
    assert missing.get_json() == {"error": "There is no such API endpoint."}
    wrong = api.call("PUT", "/apps")
    assert wrong.status_code == 405
    assert "method" in wrong.get_json()["error"]


def test_a_broker_that_is_down_is_503(api: Api) -> None:
    api.create("hello")
    release_app(api, "hello")

    def refuse(task_name: str, args: tuple[Any, ...]) -> None:
        raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    dispatch.set_sender(refuse)
    response = api.call("PATCH", "/apps/hello/config", json={"A": "1"})
    assert response.status_code == 503
    assert "Redis" in response.get_json()["error"]


def test_a_container_engine_that_is_down_is_503(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    api.create("hello")

    def down(labels: dict[str, str] | None = None) -> list[ContainerInfo]:
        raise RuntimeUnavailable("The Docker engine cannot be reached; is dockerd running?")

    monkeypatch.setattr(api.adapters.runtime, "list", down)
    response = api.call("DELETE", "/apps/hello")
    assert response.status_code == 503
    assert (
        response.get_json()["error"] == "The Docker engine cannot be reached; is dockerd running?"
    )
    assert api.call("GET", "/apps/hello").status_code == 200  # nothing was deleted


def test_app_settings_change_and_memory_applies_to_running_instances(api: Api) -> None:
    api.create("hello")
    release_app(api, "hello")
    body = {"memory": "256M", "health_check_path": "/health", "deploy_branch": "production"}
    response = api.call("PATCH", "/apps/hello", json=body)
    assert response.status_code == 200, response.get_json()
    app = response.get_json()
    assert (app["memory"], app["health_check_path"], app["deploy_branch"]) == (
        256 * 1024**2,
        "/health",
        "production",
    )
    runtime = api.adapters.runtime
    assert isinstance(runtime, FakeRuntime)
    assert {cid: limits.memory for cid, limits in runtime.limits.items()} == {
        "cid-hello-web-1": 256 * 1024**2
    }
    cleared = api.call("PATCH", "/apps/hello", json={"health_check_path": None}).get_json()
    assert cleared["health_check_path"] is None and cleared["memory"] == 256 * 1024**2


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"memory": "lots"}, "not a size"),
        ({"memory": "1M"}, "at least 32M"),
        ({"health_check_path": "health"}, "starting with '/'"),
        ({"deploy_branch": "../main"}, "not a valid git branch"),
        ({"owner": "bob"}, "Unknown app setting 'owner'"),
    ],
)
def test_bad_app_settings_are_422_and_change_nothing(
    api: Api, body: dict[str, object], words: str
) -> None:
    api.create("hello")
    response = api.call("PATCH", "/apps/hello", json=body)
    assert response.status_code == 422
    assert words in response.get_json()["error"]
    app = api.call("GET", "/apps/hello").get_json()
    assert (app["health_check_path"], app["deploy_branch"]) == (None, "main")


def test_an_admin_creates_users_whose_tokens_see_only_their_apps(api: Api) -> None:
    made = api.call("POST", "/users", "root", json={"username": "carol"})
    assert made.status_code == 201, made.get_json()
    carol = made.get_json()
    assert (carol["username"], carol["is_admin"]) == ("carol", False)
    assert carol["token"].startswith("slw_")
    headers = {"Authorization": f"Bearer {carol['token']}"}
    assert api.call("GET", "/user", None, headers=dict(headers)).get_json()["username"] == "carol"
    api.create("alices")
    assert api.call("GET", "/apps", None, headers=dict(headers)).get_json() == []
    assert api.call("GET", "/apps/alices", None, headers=dict(headers)).status_code == 404
    listed = [u["username"] for u in api.call("GET", "/users", "root").get_json()]
    assert listed == ["alice", "bob", "carol", "root"]
    again = api.call("POST", "/users", "root", json={"username": "carol"})
    assert again.status_code == 409


def test_only_an_admin_manages_users(api: Api) -> None:
    refused = api.call("POST", "/users", "alice", json={"username": "mallory"})
    assert refused.status_code == 403
    assert "Only an admin" in refused.get_json()["error"]
    assert api.call("GET", "/users", "alice").status_code == 403
    bad = api.call("POST", "/users", "root", json={"username": "Not A Name"})
    assert bad.status_code == 422


def test_anyone_makes_another_token_for_themselves(api: Api) -> None:
    made = api.call("POST", "/user/tokens", "bob", json={"name": "ci"})
    assert made.status_code == 201
    token = made.get_json()["token"]
    me = api.call("GET", "/user", None, headers={"Authorization": f"Bearer {token}"})
    assert me.get_json()["username"] == "bob"
    assert api.call("POST", "/user/tokens", "bob").status_code == 201  # no body: no name


# ----------------------------------------------------------------------------- users and tokens


def test_tokens_are_listed_without_secrets_and_a_revoked_one_is_refused_at_once(api: Api) -> None:
    made = api.call("POST", "/user/tokens", json={"name": "ci"}).get_json()
    listed = api.call("GET", "/user/tokens").get_json()
    assert [t["name"] for t in listed] == ["", "ci"]
    assert made["token"] not in str(listed) and api.tokens["alice"] not in str(listed)
    assert set(listed[0]) == {"id", "name", "user", "created_at", "last_used_at"}
    assert listed[0]["last_used_at"] is not None  # the token of these very calls
    ci = listed[1]["id"]
    ci_call = {"Authorization": f"Bearer {made['token']}"}
    assert api.client.get("/api/v1/apps", headers=ci_call).status_code == 200
    assert api.call("DELETE", f"/user/tokens/{ci}").status_code == 204
    refused = api.client.get("/api/v1/apps", headers=ci_call)
    assert refused.status_code == 401 and refused.get_json()["error"]
    assert [t["name"] for t in api.call("GET", "/user/tokens").get_json()] == [""]


def test_a_user_cannot_see_or_revoke_another_users_tokens_but_an_admin_can(api: Api) -> None:
    bobs = api.call("GET", "/user/tokens", user="bob").get_json()[0]["id"]
    assert api.call("DELETE", f"/user/tokens/{bobs}").status_code == 404
    assert api.call("GET", "/user/tokens?user=bob").status_code == 403
    assert api.call("GET", "/user/tokens?user=bob", user="root").get_json()[0]["id"] == bobs
    assert api.call("GET", "/apps", user="bob").status_code == 200
    assert api.call("DELETE", f"/user/tokens/{bobs}", user="root").status_code == 204
    assert api.call("GET", "/apps", user="bob").status_code == 401


def test_deleting_a_user_needs_an_admin_and_force_for_a_user_with_apps(api: Api) -> None:
    api.create("alices")
    assert api.call("DELETE", "/users/bob", user="alice").status_code == 403
    refused = api.call("DELETE", "/users/alice", user="root")
    assert refused.status_code == 409 and "alices" in refused.get_json()["error"]
    assert api.call("GET", "/apps").status_code == 200
    deleted = api.call("DELETE", "/users/alice?force=1", user="root")
    assert deleted.status_code == 200 and deleted.get_json()["destroyed_apps"] == ["alices"]
    assert api.call("GET", "/apps").status_code == 401  # alice's token went with her
    assert api.call("GET", "/apps/alices", user="root").status_code == 404
    assert api.call("DELETE", "/users/alice", user="root").status_code == 404


def test_an_admin_cannot_delete_themselves_or_the_last_admin(api: Api) -> None:
    refused = api.call("DELETE", "/users/root", user="root")
    assert refused.status_code == 409 and "yourself" in refused.get_json()["error"]
    made = api.call("POST", "/users", user="root", json={"username": "ops", "is_admin": True})
    api.tokens["ops"] = made.get_json()["token"]
    assert api.call("DELETE", "/users/root", user="ops").status_code == 200
    last = api.call("DELETE", "/users/ops", user="ops")
    assert last.status_code == 409
