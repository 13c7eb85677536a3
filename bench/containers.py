"""Run-image containers started by the benchmark itself, without the platform in between.

They follow the instance layout (``services/layout.py``) so the comparison is fair: the same
image, the same slug, the same /mnt tree. Every one carries the managed label and mounts from
the benchmark's data dir, so the platform fixture's clean-up removes any that are left.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import docker
import requests
from sqlalchemy import select

from slipway.db import make_engine, make_session_factory, session_scope
from slipway.models import App, Release
from slipway.runtime.base import LABEL_KIND, LABEL_MANAGED, MOP_USER
from slipway.services import layout
from slipway.services.stacks import run_image
from tests.integration.platform import Platform

PORT_KEY = f"{layout.APP_PORT}/tcp"
POLL = 0.02


@dataclass(frozen=True)
class Slug:
    path: Path
    stack: str


def latest_slug(platform: Platform, app: str) -> Slug:
    """The slug of the app's newest release, read from the platform's database."""
    engine = make_engine(platform.settings)
    try:
        with session_scope(make_session_factory(engine)) as session:
            query = (
                select(Release.slug_path, Release.stack)
                .join(App, App.id == Release.app_id)
                .where(App.name == app)
                .order_by(Release.version.desc())
            )
            row = session.execute(query).first()
    finally:
        engine.dispose()
    if row is None:
        raise RuntimeError(f"app {app} has no release")
    return Slug(Path(row[0]), row[1])


def prepare_mnt(platform: Platform, slug: Slug, name: str) -> Path:
    """A fresh /mnt tree (slug in app/, supervisor.conf) under the benchmark's data dir."""
    root = platform.data_dir / "bench" / name
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    env = layout.run_env({}, name, "web.1", "web")
    layout.prepare_instance_volume(root, slug.path, "web", env)
    return root


def start(
    client: docker.DockerClient,
    image: str,
    mnt: Path,
    name: str,
    command: list[str] | None = None,
    bare: bool = False,
) -> tuple[object, int]:
    """``docker run`` of the run image with /mnt bound; ``bare`` skips the image's init (tini)."""
    extra: dict[str, object] = {}
    if bare:
        extra["entrypoint"] = []
        extra["environment"] = layout.run_env({}, name, "web.1", "web")
    container = client.containers.run(
        image,
        command=command,
        name=name,
        detach=True,
        user=MOP_USER,
        working_dir=f"{layout.RUN_ROOT}/app",
        mounts=[docker.types.Mount(layout.RUN_ROOT, str(mnt), type="bind")],
        tmpfs={"/tmp": "size=64m,mode=1777"},
        ports={PORT_KEY: ("127.0.0.1", None)},
        labels={LABEL_MANAGED: "true", LABEL_KIND: "bench"},
        **extra,
    )
    container.reload()
    bindings = (container.attrs["NetworkSettings"]["Ports"] or {}).get(PORT_KEY) or []
    if not bindings:
        container.remove(force=True)
        raise RuntimeError(f"container {name} published no port (did it exit at once?)")
    return container, int(bindings[0]["HostPort"])


def wait_http(port: int, timeout: float) -> bool:
    """Poll http://127.0.0.1:port/ every 20 ms until it answers 200."""
    deadline = time.monotonic() + timeout
    with requests.Session() as http:
        http.trust_env = False
        while time.monotonic() < deadline:
            try:
                if http.get(f"http://127.0.0.1:{port}/", timeout=1).status_code == 200:
                    return True
            except requests.RequestException:
                pass
            time.sleep(POLL)
    return False


def remove(container: object) -> None:
    container.remove(force=True)  # type: ignore[attr-defined]


def raw_docker_run(platform: Platform, slug: Slug, name: str, timeout: float = 60) -> float:
    """Seconds from ``docker run`` of the run image (supervisord, as an instance) to a 200."""
    mnt = prepare_mnt(platform, slug, name)
    client = docker.from_env()
    try:
        started = time.monotonic()
        container, port = start(client, run_image(platform.settings, slug.stack), mnt, name)
        try:
            if not wait_http(port, timeout):
                raise RuntimeError(f"the raw container {name} did not answer in {timeout:.0f} s")
            return time.monotonic() - started
        finally:
            remove(container)
    finally:
        client.close()
        shutil.rmtree(mnt, ignore_errors=True)
