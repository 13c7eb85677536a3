"""The dashboard through Flask's test client: sign-in, CSRF, and forms calling the services."""

from __future__ import annotations

import io
import re
import stat
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from kombu.exceptions import OperationalError as BrokerUnavailable
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.test import TestResponse

from slipway.adapters import Adapters
from slipway.config import Settings
from slipway.dashboard import security
from slipway.db import session_scope, upgrade_database
from slipway.models import App, Deploy, Instance, Release
from slipway.models.event import Event
from slipway.models.webhook import Webhook
from slipway.services import sessions, users
from slipway.tasks import dispatch
from slipway.webapp import create_app
from tests.fakes import RecordingSender, fake_adapters

PASSWORD = "correct horse battery"


@dataclass
class Dash:
    client: FlaskClient
    factory: sessionmaker[Session]
    sender: RecordingSender
    tokens: dict[str, str]
    settings: Settings
    adapters: Adapters

    def csrf(self) -> str:
        """The CSRF token of the client's session (any signed-in page carries it)."""
        page = self.client.get("/signin" if not self.signed_in() else "/")
        found = re.search(r'name="csrf_token" value="([^"]+)"', page.get_data(as_text=True))
        assert found, "no CSRF field on the page"
        return found.group(1)

    def signed_in(self) -> bool:
        with self.client.session_transaction() as session:
            return security.SESSION_KEY in session

    def post(self, path: str, data: dict[str, Any] | None = None, **kw: Any) -> TestResponse:
        return self.client.post(path, data={"csrf_token": self.csrf(), **(data or {})}, **kw)

    def sign_in(self, username: str = "alice") -> None:
        response = self.post("/signin", {"method": "token", "token": self.tokens[username]})
        assert response.status_code == 302, response.get_data(as_text=True)

    def query(self, fn: Any) -> Any:
        with session_scope(self.factory) as session:
            return fn(session)


@pytest.fixture
def dash(settings: Settings, tmp_path: Path) -> Iterator[Dash]:
    settings = settings.with_overrides(
        logs_follow_limit=1,  # a followed log ends quickly
        webhook_allowed_networks=("127.0.0.1/32",),  # an operator's trusted receivers
    )
    upgrade_database(settings)
    adapters = fake_adapters(tmp_path / "adapters")
    flask_app = create_app(settings, adapters)
    factory = flask_app.extensions["slipway"].session_factory
    tokens = {}
    with session_scope(factory) as session:
        for name, admin in (("alice", False), ("bob", False), ("admin", True)):
            tokens[name] = users.create_token(session, users.create_user(session, name, admin))
        sessions.set_password(session, "alice", PASSWORD)
    sender = RecordingSender()
    previous = dispatch.set_sender(sender)
    yield Dash(flask_app.test_client(), factory, sender, tokens, settings, adapters)
    dispatch.set_sender(previous)


def tarball(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def make_app(dash: Dash, name: str = "hello", owner: str = "alice", releases: int = 0) -> None:
    """An app with releases v1..vN (slugs on disk, the last current) and one live instance."""

    def create(session: Session) -> None:
        user = session.scalars(select(users.User).where(users.User.username == owner)).one()
        app = App(name=name, owner=user, config={"SECRET": "s3cr3t-value"})
        session.add(app)
        session.flush()
        for version in range(1, releases + 1):
            slug = dash.settings.data_dir / f"{name}-v{version}.tar.gz"
            slug.write_bytes(tarball({"index.html": b"hi"}))
            release = Release(
                app_id=app.id,
                version=version,
                slug_path=str(slug),
                stack="static",
                config=dict(app.config),
                process_types={"web": "serve"},
                description=f"Deploy {version}",
            )
            session.add(release)
            session.flush()
            app.current_release_id = release.id
        if releases:
            session.add(
                Instance(
                    app_id=app.id,
                    release_id=app.current_release_id,
                    container_name=f"slipway-{name}-web-1",
                    container_id=f"container-of-{name}",
                    volume_name=f"{name}-web-1",
                    host_port=20001,
                    state="live",
                )
            )

    dash.query(create)


# ---------------------------------------------------------------------------------------------
# Signing in
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/apps/new", "/apps/hello", "/account/password"])
def test_signed_out_visitors_are_sent_to_sign_in(dash: Dash, path: str) -> None:
    response = dash.client.get(path)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/signin?next=")
    assert path in response.headers["Location"].replace("%2F", "/")


def test_sign_in_with_password_then_sign_out(dash: Dash) -> None:
    response = dash.post("/signin?next=/apps/new", {"username": "alice", "password": PASSWORD})
    assert response.status_code == 302
    assert response.headers["Location"] == "/apps/new"
    assert "Apps" in dash.client.get("/").get_data(as_text=True)
    dash.post("/signout")
    assert dash.client.get("/").status_code == 302


def test_wrong_password_is_refused_with_a_message(dash: Dash) -> None:
    response = dash.post("/signin", {"username": "alice", "password": "wrong password"})
    assert response.status_code == 401
    assert "do not match" in response.get_data(as_text=True)
    assert not dash.signed_in()


def test_unknown_token_is_refused(dash: Dash) -> None:
    response = dash.post("/signin", {"method": "token", "token": "slw_nope"})
    assert response.status_code == 401
    assert "token is not valid" in response.get_data(as_text=True)


def copy_of_cookie(dash: Dash) -> FlaskClient:
    """A second browser holding a copy of the first one's session cookie."""
    cookie = dash.client.get_cookie("slipway_session")
    assert cookie is not None
    thief = dash.client.application.test_client()
    thief.set_cookie("slipway_session", cookie.value)
    return thief


def test_a_copied_cookie_stops_working_at_sign_out(dash: Dash) -> None:
    dash.sign_in("alice")
    thief = copy_of_cookie(dash)
    assert thief.get("/").status_code == 200  # the copy works while the session lives
    dash.post("/signout")
    assert thief.get("/").status_code == 302
    assert thief.get("/").headers["Location"].startswith("/signin")


def test_a_password_change_ends_the_users_other_sessions_but_not_this_one(dash: Dash) -> None:
    dash.post("/signin", {"username": "alice", "password": PASSWORD})
    elsewhere = dash.client.application.test_client()
    page = elsewhere.get("/signin").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token is not None
    signed = elsewhere.post(
        "/signin", data={"csrf_token": token.group(1), "username": "alice", "password": PASSWORD}
    )
    assert signed.status_code == 302 and elsewhere.get("/").status_code == 200
    new = "another horse battery"
    changed = dash.post("/account/password", {"current": PASSWORD, "new": new, "confirm": new})
    assert changed.status_code == 302
    assert dash.client.get("/").status_code == 200
    assert elsewhere.get("/").status_code == 302


def test_revoking_the_token_a_session_started_with_ends_the_session(dash: Dash) -> None:
    dash.sign_in("alice")
    assert dash.client.get("/").status_code == 200

    def revoke(session: Session) -> None:
        alice = session.scalars(select(users.User).filter_by(username="alice")).one()
        (token,) = users.list_tokens(session, alice)
        users.revoke_token(session, alice, token.id)

    dash.query(revoke)
    assert dash.client.get("/").status_code == 302


def test_deleting_a_user_ends_their_sessions(dash: Dash) -> None:
    dash.sign_in("bob")
    dash.query(lambda s: s.delete(s.scalars(select(users.User).filter_by(username="bob")).one()))
    assert dash.client.get("/").status_code == 302


def test_sign_in_is_throttled_per_username_without_telling_whether_it_exists(dash: Dash) -> None:
    for _ in range(sessions.MAX_FAILURES_PER_USERNAME):
        assert dash.post("/signin", {"username": "alice", "password": "nope"}).status_code == 401
    for name, password in (("alice", PASSWORD), ("alice", "nope")):
        refused = dash.post("/signin", {"username": name, "password": password})
        assert refused.status_code == 429 and "Too many failed sign-ins" in refused.text
        assert not dash.signed_in()
    for _ in range(sessions.MAX_FAILURES_PER_USERNAME):
        dash.post("/signin", {"username": "nobody", "password": "nope"})
    unknown = dash.post("/signin", {"username": "nobody", "password": "nope"})
    assert unknown.status_code == 429 and unknown.text == refused.text.replace("alice", "nobody")
    dash.post("/signin", {"username": "bob", "password": "nope"})  # another name still tries
    assert dash.post("/signin", {"username": "bob", "password": "nope"}).status_code == 401


def test_sign_in_is_throttled_per_address(dash: Dash) -> None:
    for n in range(sessions.MAX_FAILURES_PER_ADDRESS):
        dash.post("/signin", {"username": f"user{n}", "password": "nope"})
    refused = dash.post("/signin", {"method": "token", "token": dash.tokens["alice"]})
    assert refused.status_code == 429 and not dash.signed_in()
    other = dash.client.application.test_client()
    page = other.get("/signin", environ_base={"REMOTE_ADDR": "10.0.0.9"}).text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert csrf is not None
    fine = other.post(
        "/signin",
        data={"csrf_token": csrf.group(1), "method": "token", "token": dash.tokens["alice"]},
        environ_base={"REMOTE_ADDR": "10.0.0.9"},
    )
    assert fine.status_code == 302


def test_admin_signs_in_with_the_admin_token_and_sees_every_app(dash: Dash) -> None:
    make_app(dash, "alices", owner="alice")
    make_app(dash, "bobs", owner="bob")
    dash.sign_in("admin")
    page = dash.client.get("/").get_data(as_text=True)
    assert "alices" in page and "bobs" in page


def test_next_never_leaves_the_site(dash: Dash) -> None:
    response = dash.post(
        "/signin?next=//evil.example/x", {"username": "alice", "password": PASSWORD}
    )
    assert response.headers["Location"] == "/"


def test_session_cookie_is_httponly_and_samesite(dash: Dash) -> None:
    response = dash.post("/signin", {"username": "alice", "password": PASSWORD})
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("slipway_session=")
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie


def test_secret_key_is_kept_in_the_data_dir_with_mode_0600(dash: Dash) -> None:
    key_file = dash.settings.data_dir / "dashboard-secret-key"
    assert key_file.is_file()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    # A second app on the same data dir signs with the same key.
    again = create_app(dash.settings, fake_adapters(dash.settings.data_dir / "other"))
    assert again.config["SECRET_KEY"] == key_file.read_text().strip()


def test_change_password_then_sign_in_with_it(dash: Dash) -> None:
    dash.sign_in("bob")  # bob has no password yet: no current one is asked
    response = dash.post(
        "/account/password", {"new": "a new password", "confirm": "a new password"}
    )
    assert response.status_code == 302
    dash.post("/signout")
    response = dash.post("/signin", {"username": "bob", "password": "a new password"})
    assert response.status_code == 302 and dash.signed_in()


def test_change_password_needs_the_current_one(dash: Dash) -> None:
    dash.sign_in("alice")
    response = dash.post(
        "/account/password",
        {"current": "not it", "new": "another password", "confirm": "another password"},
        follow_redirects=True,
    )
    assert "current password is not right" in response.get_data(as_text=True)
    assert dash.query(lambda s: sessions.authenticate_password(s, "alice", PASSWORD).username)


# ---------------------------------------------------------------------------------------------
# CSRF
# ---------------------------------------------------------------------------------------------


def test_a_form_without_the_csrf_token_is_rejected(dash: Dash) -> None:
    dash.sign_in()
    response = dash.client.post("/apps/new", data={"name": "sneaky"})
    assert response.status_code == 400
    assert dash.query(lambda s: s.scalar(select(App).where(App.name == "sneaky"))) is None


def test_a_form_with_a_wrong_csrf_token_is_rejected(dash: Dash) -> None:
    dash.sign_in()
    response = dash.client.post("/apps/new", data={"name": "sneaky", "csrf_token": "forged"})
    assert response.status_code == 400


def test_sign_in_itself_needs_the_csrf_token(dash: Dash) -> None:
    response = dash.client.post("/signin", data={"username": "alice", "password": PASSWORD})
    assert response.status_code == 400
    assert not dash.signed_in()


# ---------------------------------------------------------------------------------------------
# Pages and forms
# ---------------------------------------------------------------------------------------------


def test_empty_apps_list_explains_what_to_do(dash: Dash) -> None:
    dash.sign_in()
    page = dash.client.get("/").get_data(as_text=True)
    assert "No apps yet" in page


def test_create_app_from_the_form(dash: Dash) -> None:
    dash.sign_in()
    response = dash.post("/apps/new", {"name": "hello"})
    assert response.headers["Location"] == "/apps/hello"
    page = dash.client.get("/apps/hello").get_data(as_text=True)
    assert "Nothing is released yet" in page
    assert "No deploys yet" in page


def test_create_app_with_a_bad_name_shows_why(dash: Dash) -> None:
    dash.sign_in()
    response = dash.post("/apps/new", {"name": "Bad Name"}, follow_redirects=True)
    assert "is not a valid app name" in response.get_data(as_text=True)


def test_another_users_app_is_not_found(dash: Dash) -> None:
    make_app(dash, "bobs", owner="bob")
    dash.sign_in("alice")
    response = dash.client.get("/apps/bobs")
    assert response.status_code == 404
    assert "There is no app named" in response.get_data(as_text=True)


def test_apps_list_shows_release_instances_and_a_recent_crash(dash: Dash) -> None:
    make_app(dash, "hello", releases=2)

    def crash(session: Session) -> None:
        app = session.scalars(select(App).where(App.name == "hello")).one()
        session.add(Event(app_id=app.id, type="crash", message="web.1 exited with status 1"))

    dash.query(crash)
    dash.sign_in()
    page = dash.client.get("/").get_data(as_text=True)
    assert "v2" in page
    assert "1 / 1 live" in page
    assert "crashed recently" in page
    assert "http://hello.localhost" in page


def test_config_values_are_hidden_until_asked(dash: Dash) -> None:
    make_app(dash, "hello", releases=1)
    dash.sign_in()
    assert "s3cr3t-value" not in dash.client.get("/apps/hello").get_data(as_text=True)
    shown = dash.client.get("/apps/hello?reveal=config").get_data(as_text=True)
    assert "s3cr3t-value" in shown


def test_set_config_makes_a_release_through_the_service(dash: Dash) -> None:
    make_app(dash, "hello", releases=1)
    dash.sign_in()
    response = dash.post("/apps/hello/config", {"key": "GREETING", "value": "hi there"})
    assert response.status_code == 302
    app = dash.query(lambda s: s.scalars(select(App).where(App.name == "hello")).one())
    assert app.config["GREETING"] == "hi there"
    assert dash.query(lambda s: s.scalar(select(Release.version).order_by(Release.id.desc()))) == 2
    assert dash.sender.names() == ["slipway.roll"]


def test_unset_config(dash: Dash) -> None:
    make_app(dash, "hello", releases=1)
    dash.sign_in()
    dash.post("/apps/hello/config/unset", {"key": "SECRET"})
    app = dash.query(lambda s: s.scalars(select(App).where(App.name == "hello")).one())
    assert "SECRET" not in app.config


def test_reserved_config_key_is_refused_and_nothing_changes(dash: Dash) -> None:
    make_app(dash, "hello", releases=1)
    dash.sign_in()
    response = dash.post("/apps/hello/config", {"key": "PORT", "value": "1"}, follow_redirects=True)
    assert "set by the platform" in response.get_data(as_text=True)
    assert dash.sender.sent == []


def test_rollback_button_makes_a_new_release(dash: Dash) -> None:
    make_app(dash, "hello", releases=2)
    dash.sign_in()
    page = dash.client.get("/apps/hello").get_data(as_text=True)
    assert "Roll back to v1" in page
    response = dash.post("/apps/hello/rollback", {"version": "1"}, follow_redirects=True)
    assert "Rolling back to v1: release v3" in response.get_data(as_text=True)
    assert dash.sender.names() == ["slipway.roll"]


def test_task_queue_down_is_said_plainly(dash: Dash) -> None:
    make_app(dash, "hello", releases=2)
    dash.sign_in()

    def broker_down(task_name: str, args: tuple[Any, ...]) -> None:
        raise BrokerUnavailable("connection refused")

    dispatch.set_sender(broker_down)
    response = dash.post("/apps/hello/rollback", {"version": "1"}, follow_redirects=True)
    assert response.status_code == 200
    assert "task queue (Redis) cannot be reached" in response.get_data(as_text=True)


def test_scale_form_records_the_formation(dash: Dash) -> None:
    make_app(dash, "hello", releases=1)
    dash.sign_in()
    dash.post("/apps/hello/scale", {"count-web": "3"})
    app = dash.query(lambda s: s.scalars(select(App).where(App.name == "hello")).one())
    assert app.formation == {"web": 3}


def test_scale_with_a_bad_count_says_why(dash: Dash) -> None:
    make_app(dash, "hello", releases=1)
    dash.sign_in()
    response = dash.post("/apps/hello/scale", {"count-web": "lots"}, follow_redirects=True)
    assert "must be a whole number" in response.get_data(as_text=True)


def test_upload_a_tarball_queues_a_deploy(dash: Dash) -> None:
    make_app(dash, "hello")
    dash.sign_in()
    source = tarball({"index.html": b"<h1>hello</h1>"})
    response = dash.post(
        "/apps/hello/deploys",
        {"source": (io.BytesIO(source), "site.tar.gz")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 302
    deploy = dash.query(lambda s: s.scalars(select(Deploy)).one())
    assert response.headers["Location"] == f"/apps/hello/deploys/{deploy.id}"
    assert deploy.state == "queued"
    assert dash.sender.names() == ["slipway.deploy"]
    page = dash.client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Deploy #" in page and "data-stream" in page


def test_a_running_deploy_has_a_cancel_button_that_cancels_it(dash: Dash) -> None:
    make_app(dash, "hello")
    dash.sign_in()
    source = tarball({"index.html": b"<h1>hello</h1>"})
    queued = dash.post(
        "/apps/hello/deploys",
        {"source": (io.BytesIO(source), "site.tar.gz")},
        content_type="multipart/form-data",
    ).headers["Location"]
    page = dash.client.get(queued).get_data(as_text=True)
    assert "Cancel deploy" in page and f'action="{queued}/cancel"' in page

    response = dash.post(f"{queued}/cancel", follow_redirects=True)
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "is cancelled" in page and "Cancelled by alice." in page
    assert "Cancel deploy" not in page
    assert dash.query(lambda s: s.scalars(select(Deploy)).one()).state == "cancelled"


def test_upload_of_something_else_is_refused(dash: Dash) -> None:
    make_app(dash, "hello")
    dash.sign_in()
    response = dash.post(
        "/apps/hello/deploys",
        {"source": (io.BytesIO(b"not a tarball"), "notes.txt")},
        content_type="multipart/form-data",
        follow_redirects=True,
    )
    assert response.status_code == 200
    assert 'class="flash error"' in response.get_data(as_text=True)
    assert dash.query(lambda s: s.scalars(select(Deploy)).first()) is None


def test_webhook_add_and_delete(dash: Dash) -> None:
    make_app(dash, "hello")
    dash.sign_in()
    dash.post("/apps/hello/webhooks", {"url": "http://127.0.0.1:9/hook", "events": "crash"})
    hook = dash.query(lambda s: s.scalars(select(Webhook)).one())
    assert hook.events == ["crash"]
    assert "127.0.0.1:9/hook" in dash.client.get("/apps/hello").get_data(as_text=True)
    dash.post(f"/apps/hello/webhooks/{hook.id}/delete")
    assert dash.query(lambda s: s.scalars(select(Webhook)).first()) is None


def test_delete_app_needs_its_name_typed(dash: Dash) -> None:
    make_app(dash, "hello")
    dash.sign_in()
    response = dash.post("/apps/hello/delete", {"confirm": "nope"}, follow_redirects=True)
    assert "to confirm deleting it" in response.get_data(as_text=True)
    dash.post("/apps/hello/delete", {"confirm": "hello"})
    assert dash.query(lambda s: s.scalar(select(App).where(App.name == "hello"))) is None


def test_build_log_streams_as_server_sent_events(dash: Dash) -> None:
    make_app(dash, "hello")
    log = dash.settings.data_dir / "deploy.log"
    log.write_text("-----> Building\nstep one\n")

    def finished_deploy(session: Session) -> int:
        app = session.scalars(select(App).where(App.name == "hello")).one()
        deploy = Deploy(app_id=app.id, state="failed", source_path="x", log_path=str(log))
        session.add(deploy)
        session.flush()
        return deploy.id

    deploy_id = dash.query(finished_deploy)
    dash.sign_in()
    response = dash.client.get(f"/apps/hello/deploys/{deploy_id}/events")
    assert response.mimetype == "text/event-stream"
    body = response.get_data(as_text=True)
    assert "event: log\nid: 25\ndata: -----> Building\ndata: step one\n\n" in body
    assert body.endswith("event: end\ndata: failed\n\n")
    resumed = dash.client.get(
        f"/apps/hello/deploys/{deploy_id}/events", headers={"Last-Event-ID": "25"}
    )
    assert "step one" not in resumed.get_data(as_text=True)


def test_static_files_are_served_without_signing_in(dash: Dash) -> None:
    response = dash.client.get("/dashboard-static/dashboard.css")
    assert response.status_code == 200
    response.close()


def test_instances_show_buttons_and_stop_goes_through_process_control(dash: Dash) -> None:
    make_app(dash, "hello", releases=1)
    dash.sign_in()
    page = dash.client.get("/apps/hello").get_data(as_text=True)
    assert 'data-instance="web.1"' in page
    assert 'data-action="restart"' in page
    response = dash.post("/apps/hello/processes/web.1/stop", follow_redirects=True)
    assert "web.1 is stopped." in response.get_data(as_text=True)
    instance = dash.query(lambda s: s.scalars(select(Instance)).one())
    assert instance.state == "stopped"
    routes = dash.adapters.router.routes  # type: ignore[attr-defined]
    assert [route.upstreams for route in routes] == [[]]  # out of the router
    dash.post("/apps/hello/processes/web.1/start")
    assert dash.query(lambda s: s.scalars(select(Instance)).one()).state == "live"


def test_unknown_instance_says_which_exist(dash: Dash) -> None:
    make_app(dash, "hello", releases=1)
    dash.sign_in()
    response = dash.post("/apps/hello/processes/web.7/restart", follow_redirects=True)
    assert "no instance &#39;web.7&#39; (there are: web.1)" in response.get_data(as_text=True)


def test_app_logs_show_on_the_page_and_stream(dash: Dash) -> None:
    make_app(dash, "hello", releases=1)
    volume = dash.adapters.volumes.create("hello-web-1", 1024**2)
    (volume.path / "log").mkdir()
    (volume.path / "log" / "app.log").write_text("listening on 5000\nGET / 200\n")
    dash.sign_in()
    page = dash.client.get("/apps/hello").get_data(as_text=True)
    assert "web.1 | listening on 5000" in page
    body = dash.client.get("/apps/hello/logs/events").get_data(as_text=True)
    assert "event: log\ndata: web.1 | GET / 200\n\n" in body


def test_timeline_has_crashes_deploys_and_releases_newest_first(dash: Dash) -> None:
    make_app(dash, "hello", releases=1)

    def happen(session: Session) -> None:
        app = session.scalars(select(App).where(App.name == "hello")).one()
        session.add(Deploy(app_id=app.id, state="failed", source_path="x", error="Build broke."))
        session.flush()
        session.add(Event(app_id=app.id, type="oom", message="web.1 ran out of memory"))

    dash.query(happen)
    dash.sign_in()
    page = dash.client.get("/apps/hello").get_data(as_text=True)
    events = re.findall(r'data-event="([a-z_]+)"', page)
    assert events == ["oom", "deploy_failed", "released"]
    assert "Build broke." in page and "v1: Deploy 1" in page
