"""Hostile tenants against the platform's own machinery: deploys and the task queue.

Mallory (an ordinary user) tries to cancel Alice's deploy, and a task message made for another
platform (a second platform whose worker reached this broker, or anyone who can write to it) is
put on this platform's queue. Every attack asserts that it fails, that nothing changed (the
host's files, the deploy it aimed at), and that the attacker learned nothing from the answers.
"""

from __future__ import annotations

import time
from datetime import datetime

import pytest
from celery import Celery

from slipway import tasks
from slipway.db import make_engine, make_session_factory, session_scope
from slipway.models import App, Deploy
from tests.helpers import wait_until
from tests.integration.hostile import (
    Secrets,
    Tenant,
    alice,
    assert_no_leak,
    create_app,
    host_secrets,
    host_unchanged,
    mallory,
    planted,
    tarball,
)
from tests.integration.platform import Platform
from tests.integration.test_e2e_api import containers_of, source_of

__all__ = ["alice", "mallory", "planted"]  # fixtures, used by name

pytestmark = pytest.mark.slow

ANOTHER_PLATFORM = "0123456789ab"  # the shape of a platform id of another data directory
# What other test sessions on this host change meanwhile: their planted secrets, their
# platforms' gunicorn control sockets, and image builds' temporary root filesystems.
OTHER_SESSIONS = ("/root/slipway-hostile-", "/root/.gunicorn/", "/tmp/slipway-base-")


# ----------------------------------------------------------------------------- cancelling


def test_mallory_cannot_cancel_alices_deploy(
    running_platform: Platform, alice: Tenant, mallory: Tenant, planted: Secrets
) -> None:
    victim = create_app(running_platform, alice, "victim")
    shown: list[str] = []
    accepted = running_platform.api(
        "POST",
        f"/apps/{victim}/deploys",
        token=alice.token,
        data=source_of("never-ends"),
        headers={"Content-Type": "application/gzip"},
    )
    assert accepted.status_code == 202, accepted.text
    deploy_id = int(accepted.json()["id"])
    own = create_app(running_platform, mallory, "mine")
    try:
        wait_until(lambda: bool(containers_of(victim, "build")), 300, "alice's build never started")
        with host_unchanged(ignore=OTHER_SESSIONS):
            attempts = {
                "her app": f"/apps/{victim}/deploys/{deploy_id}/cancel",
                "via mallory's own app": f"/apps/{own}/deploys/{deploy_id}/cancel",
                "a missing app": f"/apps/nosuch{deploy_id}/deploys/{deploy_id}/cancel",
            }
            answers = {}
            for what, path in attempts.items():
                answer = running_platform.api("POST", path, token=mallory.token)
                shown.append(answer.text)
                answers[what] = answer
            # It fails, and looks the same as cancelling a deploy of an app that does not exist.
            assert {a.status_code for a in answers.values()} == {404}
            assert answers["her app"].json()["error"] == answers["a missing app"].json()[
                "error"
            ].replace(f"nosuch{deploy_id}", victim)
            # Under her own app, the id is simply not one of hers (as for any unused id).
            assert answers["via mallory's own app"].json()["error"] == (
                f"App {own!r} has no deploy {deploy_id}."
            )
        time.sleep(6)  # longer than a heartbeat: a cancel would have been noticed
        state = running_platform.api(
            "GET", f"/apps/{victim}/deploys/{deploy_id}", token=alice.token
        ).json()
        assert state["state"] == "building" and state["error"] is None
        assert len(containers_of(victim, "build")) == 1
        events = running_platform.api("GET", f"/apps/{victim}/events", token=alice.token)
        assert "deploy_cancelled" not in events.text
        assert_no_leak(shown, [*host_secrets(running_platform, planted), "still building"])
    finally:
        done = running_platform.api(
            "POST", f"/apps/{victim}/deploys/{deploy_id}/cancel", token=alice.token
        )
        assert done.status_code == 200, done.text
        wait_until(lambda: containers_of(victim, "build") == [], 60, "the build stayed")


def test_a_deploy_id_of_another_users_app_is_not_found_under_ones_own(
    running_platform: Platform, alice: Tenant, mallory: Tenant
) -> None:
    """Deploy ids are global: one of Mallory's, named under Alice's app, is not found."""
    theirs = create_app(running_platform, mallory, "theirs")
    hers = create_app(running_platform, alice, "hers")
    accepted = running_platform.api(
        "POST",
        f"/apps/{theirs}/deploys",
        token=mallory.token,
        data=tarball([("index.html", "<h1>m</h1>\n")]),
        headers={"Content-Type": "application/gzip"},
    )
    assert accepted.status_code == 202, accepted.text
    deploy_id = accepted.json()["id"]
    answer = running_platform.api(
        "POST", f"/apps/{hers}/deploys/{deploy_id}/cancel", token=alice.token
    )
    assert answer.status_code == 404
    assert answer.json()["error"] == f"App {hers!r} has no deploy {deploy_id}."
    state = running_platform.api("GET", f"/apps/{theirs}/deploys/{deploy_id}", token=mallory.token)
    assert state.json()["state"] != "cancelled"


# ----------------------------------------------------------------------------- the task queue


def queued_row(platform: Platform, app_name: str) -> int:
    """A queued deploy with no message: only a task sent by hand can start it."""
    engine = make_engine(platform.settings)
    try:
        with session_scope(make_session_factory(engine)) as session:
            app = session.query(App).filter(App.name == app_name).one()
            deploy = Deploy(
                app_id=app.id,
                state="queued",
                source_path=str(platform.data_dir / "artifacts" / "no-such-source.tar.gz"),
                source_kind="tarball",
            )
            session.add(deploy)
            session.flush()
            return deploy.id
    finally:
        engine.dispose()


def deploy_row(platform: Platform, deploy_id: int) -> tuple[str, datetime | None, str | None]:
    engine = make_engine(platform.settings)
    try:
        with session_scope(make_session_factory(engine)) as session:
            deploy = session.get(Deploy, deploy_id)
            assert deploy is not None
            return deploy.state, deploy.heartbeat_at, deploy.error
    finally:
        engine.dispose()


def send_by_hand(platform: Platform, deploy_id: int, headers: dict[str, str]) -> str:
    """Put a deploy task on this platform's own queue, as anyone who reaches its redis can."""
    sender = Celery("intruder")
    sender.conf.update(tasks.celery_config(platform.settings))
    try:
        return str(sender.send_task(tasks.DEPLOY_TASK, args=[deploy_id], headers=headers).id)
    finally:
        sender.close()


def test_a_task_for_another_platform_is_never_executed(
    running_platform: Platform, mallory: Tenant
) -> None:
    app = create_app(running_platform, mallory, "queue")
    worker_log = running_platform.data_dir / "control-plane" / "logs" / "worker.log"
    foreign, unnamed = queued_row(running_platform, app), queued_row(running_platform, app)
    with host_unchanged(ignore=OTHER_SESSIONS):
        sent = [
            send_by_hand(running_platform, foreign, {tasks.PLATFORM_HEADER: ANOTHER_PLATFORM}),
            send_by_hand(running_platform, unnamed, {tasks.PLATFORM_HEADER: ""}),
        ]
        for task_id in sent:
            wait_until(
                lambda task_id=task_id: (
                    f"dropped task slipway.deploy {task_id}"  # type: ignore[misc]
                    in worker_log.read_text()
                ),
                60,
                f"the worker never dropped task {task_id}",
            )
        for deploy_id in (foreign, unnamed):
            assert deploy_row(running_platform, deploy_id) == ("queued", None, None)
        assert containers_of(app) == []
    log = worker_log.read_text()
    assert f"sent for platform '{ANOTHER_PLATFORM}'" in log
    assert log.count(f"dropped task slipway.deploy {sent[0]}") == 1  # acknowledged: not redelivered

    # The same message naming this platform runs: the header is what stopped the others.
    send_by_hand(
        running_platform, foreign, {tasks.PLATFORM_HEADER: running_platform.settings.platform_id}
    )
    wait_until(lambda: deploy_row(running_platform, foreign)[0] == "failed", 120, "it never ran")
    assert deploy_row(running_platform, unnamed)[0] == "queued"
    running_platform.api("DELETE", f"/apps/{app}", token=mallory.token)
