"""The deploy pipeline with fakes: states, logs, volumes, the switch, and every failure path."""

from __future__ import annotations

import fcntl
import io
import shutil
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from slipway.adapters import Adapters
from slipway.config import Settings
from slipway.models import App, Deploy, Instance
from slipway.runtime.base import Mount
from slipway.services import apps, deploys, instances, layout, releases, users
from slipway.services.errors import Conflict, Invalid, TooLarge
from slipway.tasks import dispatch
from tests.fakes import (
    BuildingRuntime,
    FakeNodeReleases,
    FakeRouter,
    FakeVolumes,
    RecordingSender,
    fake_adapters,
    migrated_session,
)

# ----------------------------------------------------------------------------- fixtures


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    data = tmp_path / "data"
    data.mkdir()
    return Settings(
        data_dir=data,
        drain_grace=0,
        heartbeat_interval=0.2,
        start_timeout=1,
        deploy_lock_timeout=2,
        ca_bundle=tmp_path / "ca.crt",
    )


@pytest.fixture
def session(settings: Settings) -> Iterator[Session]:
    with migrated_session(settings) as session:
        yield session


@pytest.fixture
def sent() -> Iterator[RecordingSender]:
    sender = RecordingSender()
    previous = dispatch.set_sender(sender)
    yield sender
    dispatch.set_sender(previous)


@pytest.fixture
def adapters(tmp_path: Path) -> Adapters:
    adapters = fake_adapters(tmp_path)
    adapters.runtime = BuildingRuntime()
    return adapters


@pytest.fixture
def app(session: Session, settings: Settings) -> App:
    owner = users.create_user(session, "alice")
    app = apps.create_app(session, owner, "hello", settings)
    session.commit()
    return app


def source(files: dict[str, str]) -> io.BytesIO:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    buffer.seek(0)
    return buffer


STATIC = {"index.html": "<h1>hello</h1>"}


def deploy(
    session: Session, app: App, adapters: Adapters, settings: Settings, files: dict[str, str]
) -> Deploy:
    """Accept and run one deploy, as the API and then the worker would."""
    body = source(files)
    accepted = deploys.accept_tarball(
        session, app, body, len(body.getvalue()), settings, adapters.artifacts
    )
    session.commit()
    deploys.run_deploy(session, accepted.id, adapters, settings)
    session.refresh(accepted)
    return accepted


def live(session: Session, app: App) -> list[Instance]:
    query = select(Instance).where(Instance.app_id == app.id, Instance.state == "live")
    return list(session.scalars(query))


def runtime(adapters: Adapters) -> BuildingRuntime:
    assert isinstance(adapters.runtime, BuildingRuntime)
    return adapters.runtime


def router(adapters: Adapters) -> FakeRouter:
    assert isinstance(adapters.router, FakeRouter)
    return adapters.router


def volumes(adapters: Adapters) -> FakeVolumes:
    assert isinstance(adapters.volumes, FakeVolumes)
    return adapters.volumes


# ----------------------------------------------------------------------------- accepting


def test_accept_queues_after_commit(
    session: Session, app: App, adapters: Adapters, settings: Settings, sent: RecordingSender
) -> None:
    body = source(STATIC)
    accepted = deploys.accept_tarball(session, app, body, None, settings, adapters.artifacts)
    assert accepted.state == "queued" and sent.sent == []
    session.commit()
    assert sent.sent == [("slipway.deploy", (accepted.id,))]
    assert Path(accepted.source_path).is_file()
    assert "Source received: 1 files" in Path(accepted.log_path).read_text()


def test_oversized_and_malicious_uploads_leave_nothing(
    session: Session,
    app: App,
    adapters: Adapters,
    settings: Settings,
    sent: RecordingSender,
    tmp_path: Path,
) -> None:
    small = settings.with_overrides(max_upload_size=10)
    with pytest.raises(TooLarge, match="larger than the limit"):
        deploys.accept_tarball(session, app, source(STATIC), 5000, small, adapters.artifacts)
    with pytest.raises(TooLarge):
        deploys.accept_tarball(session, app, source(STATIC), None, small, adapters.artifacts)
    with pytest.raises(Invalid, match="leaves its directory"):
        body = source({"../../etc/cron.d/x": "boom"})
        deploys.accept_tarball(session, app, body, None, settings, adapters.artifacts)
    with pytest.raises(Invalid, match="not a valid .tar.gz"):
        deploys.accept_tarball(
            session, app, io.BytesIO(b"plain text"), None, settings, adapters.artifacts
        )
    session.commit()
    assert session.scalars(select(Deploy)).all() == []
    assert list((tmp_path / "artifacts" / "sources" / "hello").iterdir()) == []
    assert sent.sent == []


# ----------------------------------------------------------------------------- success


def test_deploy_builds_releases_starts_and_routes(
    session: Session, app: App, adapters: Adapters, settings: Settings, sent: RecordingSender
) -> None:
    settings.ca_bundle.write_text("CA")
    files = {**STATIC, "Procfile": "web: serve\nworker: work\n"}
    done = deploy(session, app, adapters, settings, files)

    assert done.state == "succeeded", done.error
    assert done.error is None and done.started_at and done.finished_at and done.heartbeat_at
    release = app.current_release
    assert release is not None and release.version == 1 and release.stack == "static"
    assert release.process_types == {"web": "serve", "worker": "work"}
    assert done.release_id == release.id

    [spec] = runtime(adapters).builds
    assert spec.image == "slipway/build-static:latest" and spec.timeout == settings.build_timeout
    assert spec.labels["io.slipway.deploy"] == str(done.id)
    assert spec.labels["io.slipway.platform"] == instances.platform_id(settings)
    targets = {m.target: m for m in spec.mounts}
    assert targets[layout.BUILD_INPUT].read_only and not targets[layout.BUILD_OUTPUT].read_only
    assert targets[layout.BUILD_CACHE].source == settings.cache_dir / "hello"
    assert targets[layout.CA_BUNDLE_TARGET].read_only

    [web] = live(session, app)
    assert web.process_type == "web" and web.host_port is not None
    assert router(adapters).routes[0].upstreams == [web.host_port]
    assert (volumes(adapters).volumes[web.volume_name].path / "app" / "index.html").is_file()
    assert set(volumes(adapters).volumes) == {web.volume_name}  # build volumes are gone

    text = Path(done.log_path).read_text()
    for line in ("-----> Unpacking", "building with slipway/build-static", "Released v1", "live"):
        assert line in text


def test_a_node_app_runs_on_the_release_it_asks_for_and_keeps_it(
    session: Session, app: App, adapters: Adapters, settings: Settings, sent: RecordingSender
) -> None:
    done = deploy(session, app, adapters, settings, {"package.json": '{"engines":{"node":"^22"}}'})
    assert done.state == "succeeded"
    log = Path(done.log_path).read_text()
    assert "-----> Node.js 22.12.0 (engines.node ^22 in package.json)" in log
    [instance] = live(session, app)
    assert instance.release.node_version == "22.12.0"
    home = Mount(settings.data_dir / "runtimes" / "node" / "22.12.0", "/opt/node", read_only=True)
    build, started = runtime(adapters).builds[-1], runtime(adapters).started[-1]
    for spec in (build, started):
        assert home in spec.mounts
        assert spec.env["PATH"].startswith("/opt/node/bin:")
    assert build.env["SLIPWAY_NODE_VERSION"] == "22.12.0"
    # A config change (and so a rollback) is a new release on the same Node.js, not fetched again.
    changed = releases.change_config(session, app, {"GREETING": "hi"})
    session.commit()
    assert changed is not None and changed.node_version == "22.12.0"
    assert isinstance(adapters.node_releases, FakeNodeReleases)
    assert adapters.node_releases.downloads == ["22.12.0"]
    # A host that lost it (a data dir restored without its runtimes) fetches it once more.
    shutil.rmtree(settings.data_dir / "runtimes")
    instances.roll(session, adapters, settings, app, changed, lambda _: None)
    assert adapters.node_releases.downloads == ["22.12.0", "22.12.0"]
    assert home in runtime(adapters).started[-1].mounts
    assert (settings.data_dir / "runtimes" / "node" / "22.12.0" / "bin" / "node").is_file()


def test_a_node_range_no_release_satisfies_fails_before_any_container(
    session: Session, app: App, adapters: Adapters, settings: Settings, sent: RecordingSender
) -> None:
    done = deploy(session, app, adapters, settings, {"package.json": '{"engines":{"node":"9"}}'})
    assert done.state == "failed"
    assert done.error == (
        "No Node.js release satisfies engines.node '9' in package.json; the newest of each "
        "line: 20.19.5, 22.12.0, 24.11.0, 25.2.1."
    )
    assert runtime(adapters).builds == [] and live(session, app) == []


def test_redeploy_switches_then_stops_the_old_instances(
    session: Session, app: App, adapters: Adapters, settings: Settings, sent: RecordingSender
) -> None:
    deploy(session, app, adapters, settings, STATIC)
    [old] = live(session, app)
    second = deploy(session, app, adapters, settings, {"index.html": "v2", "package.json": "{}"})
    assert second.state == "succeeded"
    [new] = live(session, app)
    assert new.id != old.id and new.release.version == 2 and new.release.stack == "node"
    assert router(adapters).routes[0].upstreams == [new.host_port]
    assert old.container_id in runtime(adapters).stopped
    assert session.get(Instance, old.id) is None
    assert old.volume_name in volumes(adapters).destroyed


def test_formation_starts_every_type_and_skips_unknown(
    session: Session, app: App, adapters: Adapters, settings: Settings, sent: RecordingSender
) -> None:
    app.formation = {"web": 2, "worker": 1, "clock": 1}
    session.commit()
    done = deploy(session, app, adapters, settings, {**STATIC, "Procfile": "worker: w\n"})
    names = sorted(f"{i.process_type}.{i.index}" for i in live(session, app))
    assert names == ["web.1", "web.2", "worker.1"]
    assert len(router(adapters).routes[0].upstreams) == 2
    assert "Skipping clock" in Path(done.log_path).read_text()


# ----------------------------------------------------------------------------- failures


def test_failing_build_keeps_the_old_release(
    session: Session, app: App, adapters: Adapters, settings: Settings, sent: RecordingSender
) -> None:
    deploy(session, app, adapters, settings, STATIC)
    [old] = live(session, app)
    routes_before = router(adapters).routes
    runtime(adapters).build_exit_code = 2
    failed = deploy(session, app, adapters, settings, STATIC)
    assert failed.state == "failed"
    assert failed.error == "The build failed (exit code 2); the log says why."
    assert [i.id for i in live(session, app)] == [old.id]
    assert router(adapters).routes == routes_before
    assert app.current_release is not None and app.current_release.version == 1
    assert set(volumes(adapters).volumes) == {old.volume_name}
    assert "Deploy failed: The build failed" in Path(failed.log_path).read_text()


def test_build_timeout_is_one_clear_sentence(
    session: Session, app: App, adapters: Adapters, settings: Settings, sent: RecordingSender
) -> None:
    runtime(adapters).build_timed_out = True
    failed = deploy(session, app, adapters, settings, STATIC)
    assert failed.error == "The build took longer than 900 seconds and was stopped."
    assert volumes(adapters).volumes == {}


def test_app_that_never_listens_keeps_the_old_release(
    session: Session, app: App, adapters: Adapters, settings: Settings, sent: RecordingSender
) -> None:
    deploy(session, app, adapters, settings, STATIC)
    [old] = live(session, app)
    runtime(adapters).dead_releases = {"2"}
    failed = deploy(session, app, adapters, settings, STATIC)
    assert failed.state == "failed"
    assert failed.error == "The new release did not listen on $PORT within 1 seconds."
    assert [i.id for i in live(session, app)] == [old.id]
    assert session.scalars(select(Instance)).all() == [old]
    assert router(adapters).routes[0].upstreams == [old.host_port]
    assert app.current_release is not None and app.current_release.version == 1
    assert set(runtime(adapters).containers) == {old.container_id}
    assert set(volumes(adapters).volumes) == {old.volume_name}
    log = Path(failed.log_path).read_text()
    assert "app crashed: cannot find module" in log  # the new instance's last lines


def test_health_check_path_is_in_the_error(
    session: Session, app: App, adapters: Adapters, settings: Settings, sent: RecordingSender
) -> None:
    app.health_check_path = "/health"
    session.commit()
    runtime(adapters).ports_live = False
    failed = deploy(session, app, adapters, settings, STATIC)
    assert failed.error == (
        "The new release did not listen on $PORT and answer /health within 1 seconds."
    )


def test_router_failure_keeps_the_old_release(
    session: Session, app: App, adapters: Adapters, settings: Settings, sent: RecordingSender
) -> None:
    deploy(session, app, adapters, settings, STATIC)
    [old] = live(session, app)

    def broken(routes: object) -> None:
        raise RuntimeError("nginx -t failed")

    router(adapters).apply = broken  # type: ignore[method-assign]
    failed = deploy(session, app, adapters, settings, STATIC)
    assert failed.error == "The router could not be updated: nginx -t failed"
    assert [i.id for i in live(session, app)] == [old.id]
    assert app.current_release is not None and app.current_release.version == 1


def test_internal_error_still_ends_failed(
    session: Session, app: App, adapters: Adapters, settings: Settings, sent: RecordingSender
) -> None:
    def boom(*args: object) -> None:
        raise OSError("disk on fire")

    volumes(adapters).create = boom  # type: ignore[method-assign,assignment]
    failed = deploy(session, app, adapters, settings, STATIC)
    assert failed.state == "failed"
    assert failed.error == "The deploy stopped because of an internal error: disk on fire"


def test_only_queued_deploys_run(
    session: Session, app: App, adapters: Adapters, settings: Settings, sent: RecordingSender
) -> None:
    done = deploy(session, app, adapters, settings, STATIC)
    deploys.run_deploy(session, done.id, adapters, settings)  # a redelivered task
    deploys.run_deploy(session, 12345, adapters, settings)
    assert len(runtime(adapters).builds) == 1


def test_one_deploy_per_app_at_a_time(
    session: Session, app: App, adapters: Adapters, settings: Settings, sent: RecordingSender
) -> None:
    lock = deploys.lock_path(settings, app.id)
    lock.parent.mkdir(parents=True)
    with lock.open("a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(Conflict, match="still running after 0 seconds"):
            with deploys.app_lock(settings, app.id, timeout=0.2):
                pass
        waiting = deploy(session, app, adapters, settings, STATIC)
        assert waiting.state == "failed" and "still running" in (waiting.error or "")
        assert runtime(adapters).builds == []
    with deploys.app_lock(settings, app.id, timeout=0.2):
        pass
