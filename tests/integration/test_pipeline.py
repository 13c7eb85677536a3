"""The deploy pipeline on the real parts: Docker, the built images, loop-mounted volumes, nginx.

One app per test, deployed through the services (the HTTP API is tested end to end elsewhere).
Traffic goes only to 127.0.0.1: the instance's published port and nginx on a free port.
"""

from __future__ import annotations

import io
import tarfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
from sqlalchemy import select
from sqlalchemy.orm import Session

from slipway.adapters import Adapters
from slipway.config import Settings
from slipway.models import App, Deploy, Instance
from slipway.router.nginx import NginxRouter
from slipway.services import apps, deploys, reconciler, releases, users
from slipway.services.artifacts import FilesystemArtifacts
from slipway.tasks import dispatch
from slipway.volumes.loopfile import LoopfileProvider
from tests.fakes import RecordingSender, migrated_session
from tests.helpers import free_port, scoped_runtime

pytestmark = pytest.mark.slow

REQUEST_TIMEOUT = 5


@dataclass
class Platform:
    settings: Settings
    session: Session
    adapters: Adapters
    sent: RecordingSender
    app: App
    router_port: int
    apps: list[App] = field(default_factory=list)

    def deploy(self, files: dict[str, str]) -> Deploy:
        body = tarball(files)
        accepted = deploys.accept_tarball(
            self.session, self.app, body, None, self.settings, self.adapters.artifacts
        )
        self.session.commit()
        deploys.run_deploy(self.session, accepted.id, self.adapters, self.settings)
        self.session.refresh(accepted)
        return accepted

    def run_rolls(self) -> None:
        for name, args in list(self.sent.sent):
            if name == "slipway.roll":
                app_id, release_id = args
                deploys.run_roll(self.session, app_id, release_id, self.adapters, self.settings)
        self.sent.sent.clear()

    def live(self) -> list[Instance]:
        query = select(Instance).where(Instance.app_id == self.app.id, Instance.state == "live")
        return list(self.session.scalars(query))

    def via_router(self, path: str = "/") -> requests.Response:
        return requests.get(
            f"http://127.0.0.1:{self.router_port}{path}",
            headers={"Host": f"{self.app.name}.localhost"},
            timeout=REQUEST_TIMEOUT,
        )


def tarball(files: dict[str, str]) -> io.BytesIO:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    buffer.seek(0)
    return buffer


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[Platform]:
    router_port = free_port()
    data = tmp_path / "data"
    settings = Settings(
        data_dir=data,
        router_bind=f"127.0.0.1:{router_port}",
        build_volume_size=64 * 1024**2,
        instance_volume_size=64 * 1024**2,
        build_timeout=300,
        start_timeout=20,
        drain_grace=1.0,
        heartbeat_interval=1.0,
    )
    adapters = Adapters(
        runtime=scoped_runtime(),
        volumes=LoopfileProvider(settings.volumes_dir),
        router=NginxRouter(settings),
        artifacts=FilesystemArtifacts(settings.artifacts_dir),
    )
    sender = RecordingSender()
    previous = dispatch.set_sender(sender)
    adapters.router.start()
    try:
        with migrated_session(settings) as session:
            owner = users.create_user(session, "alice")
            app = apps.create_app(session, owner, f"pipe{router_port}", settings)
            session.commit()
            yield Platform(settings, session, adapters, sender, app, router_port)
            _tear_down(session, adapters, app)
    finally:
        adapters.router.stop()
        dispatch.set_sender(previous)


def _tear_down(session: Session, adapters: Adapters, app: App) -> None:
    for container in adapters.runtime.list(labels={"io.slipway.app": app.name}):
        adapters.runtime.stop(container.container_id, timeout=2)
    for volume in adapters.volumes.list():
        adapters.volumes.destroy(volume.name)


SITE_V1 = {"index.html": "<h1>version one</h1>\n"}
SITE_V2 = {"index.html": "<h1>version two</h1>\n"}


def test_static_deploy_is_reachable_directly_and_through_nginx(platform: Platform) -> None:
    done = platform.deploy(SITE_V1)
    assert done.state == "succeeded", (done.error, Path(done.log_path).read_text())
    [web] = platform.live()
    direct = requests.get(f"http://127.0.0.1:{web.host_port}/", timeout=REQUEST_TIMEOUT)
    assert direct.status_code == 200 and "version one" in direct.text
    assert "version one" in platform.via_router().text
    by_path = requests.get(
        f"http://127.0.0.1:{platform.router_port}/{platform.app.name}/", timeout=REQUEST_TIMEOUT
    )
    assert "version one" in by_path.text
    log = Path(done.log_path).read_text()
    assert "-----> Static app detected" in log and "Build finished" in log
    assert platform.adapters.volumes.list() == [platform.adapters.volumes.get(web.volume_name)]


def test_redeploy_drops_no_request_and_rollback_restores(platform: Platform) -> None:
    assert platform.deploy(SITE_V1).state == "succeeded"
    failures: list[str] = []
    seen: set[str] = set()
    stop = threading.Event()

    def hammer() -> None:
        deadline = time.monotonic() + 240  # bounded even if the test above it hangs
        while not stop.is_set() and time.monotonic() < deadline:
            try:
                response = platform.via_router()
                if response.status_code != 200:
                    failures.append(f"{response.status_code}")
                seen.add("one" if "version one" in response.text else "two")
            except requests.RequestException as exc:
                failures.append(str(exc))
            time.sleep(0.02)

    loop = threading.Thread(target=hammer, daemon=True)
    loop.start()
    try:
        second = platform.deploy(SITE_V2)
        time.sleep(1)
    finally:
        stop.set()
        loop.join(timeout=30)
    assert second.state == "succeeded", second.error
    assert failures == [] and seen == {"one", "two"}
    assert "version two" in platform.via_router().text
    [web] = platform.live()
    assert web.release.version == 2

    releases.rollback(platform.session, platform.app, 1)
    platform.session.commit()
    platform.run_rolls()
    assert "version one" in platform.via_router().text
    assert [i.release.version for i in platform.live()] == [3]


def test_failing_build_and_silent_app_leave_the_old_release_serving(platform: Platform) -> None:
    assert platform.deploy(SITE_V1).state == "succeeded"
    [old] = platform.live()

    broken = platform.deploy({"package.json": "{ not json"})
    assert broken.state == "failed"
    assert broken.error is not None and broken.error.startswith("The build failed (exit code")
    assert "package.json is not valid JSON" in Path(broken.log_path).read_text()
    assert "version one" in platform.via_router().text

    silent = platform.deploy({**SITE_V2, "Procfile": "web: sleep 600\n"})
    assert silent.state == "failed"
    assert silent.error == "The new release did not listen on $PORT within 20 seconds."
    assert [i.id for i in platform.live()] == [old.id]
    assert "version one" in platform.via_router().text
    names = {v.name for v in platform.adapters.volumes.list()}
    assert names == {old.volume_name}  # the failed instance's and the builds' volumes are gone
    containers = platform.adapters.runtime.list(labels={"io.slipway.app": platform.app.name})
    assert [c.container_id for c in containers] == [old.container_id]


def test_reconciler_brings_back_a_removed_container(platform: Platform) -> None:
    assert platform.deploy(SITE_V1).state == "succeeded"
    [web] = platform.live()
    assert web.container_id
    platform.adapters.runtime.stop(web.container_id, timeout=2)
    report = reconciler.reconcile(platform.session, platform.adapters, platform.settings)
    assert report.restarted == [web.container_name]
    platform.session.refresh(web)
    assert web.state == "live"
    assert "version one" in platform.via_router().text
