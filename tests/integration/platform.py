"""A whole running platform for tests: ``slipway server up`` on free ports, in a dir of its own.

It runs the very start-up code of ``make up`` (the ``slipway server up`` command, with the
settings given as environment variables) so the tests see what a user gets. Ports, the data
directory and thus the supervisord socket are the test's own: a running ``make up`` is never
touched.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import requests

from slipway.config import Settings
from tests.helpers import free_port

SLIPWAY = str(Path(sys.executable).parent / "slipway")
UP_TIMEOUT = 300
# Webhook receivers of the tests listen here, the one loopback address the test platforms trust
# (SLIPWAY_WEBHOOK_ALLOWED_NETWORKS): every other inward address stays refused, as in production.
WEBHOOK_RECEIVER_HOST = "127.0.0.2"
DOWN_TIMEOUT = 180


@dataclass
class Platform:
    api_url: str
    router_url: str
    router_port: int
    admin_token: str
    data_dir: Path
    settings: Settings
    env: dict[str, str]
    http: requests.Session = field(default_factory=requests.Session)

    def __post_init__(self) -> None:
        self.http.trust_env = False  # loopback only: never through a proxy from the environment

    def api(self, method: str, path: str, token: str | None = None, **kw: Any) -> requests.Response:
        """Call the API (``path`` like ``/apps``) with the admin token unless another is given."""
        url = self.api_url + (path if path.startswith("/api/") else "/api/v1" + path)
        headers = {"Authorization": f"Bearer {token or self.admin_token}"} | kw.pop("headers", {})
        kw.setdefault("timeout", 60)
        return self.http.request(method, url, headers=headers, **kw)

    def http_get_app(self, app: str, path: str = "/", by: str = "host", **kw: Any):  # noqa: ANN201
        """GET through the router, by Host header ``<app>.localhost`` or by path ``/<app>/...``."""
        kw.setdefault("timeout", 30)
        kw.setdefault("allow_redirects", False)
        if by == "host":
            headers = {"Host": f"{app}.{self.settings.domain}"} | kw.pop("headers", {})
            return self.http.get(self.router_url + path, headers=headers, **kw)
        return self.http.get(f"{self.router_url}/{app}{path}", **kw)

    def server(self, *args: str, timeout: float = UP_TIMEOUT) -> subprocess.CompletedProcess[str]:
        """Run ``slipway server <args>`` against this platform."""
        return subprocess.run(
            [SLIPWAY, "server", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


def platform_env(data_dir: Path) -> dict[str, str]:
    """The environment of a platform of its own: free ports, this data dir, loop-file volumes.

    Other SLIPWAY_* variables of the test run pass through; a few get test-sized defaults.
    """
    api_port, router_port, redis_port = free_port(), free_port(), free_port()
    wake_port = free_port()
    test_defaults = {
        "SLIPWAY_MAX_UPLOAD_SIZE": "20M",  # an oversized upload stays cheap to send
        "SLIPWAY_START_TIMEOUT": "30",  # an app that never listens fails sooner
        "SLIPWAY_WEBHOOK_ALLOWED_NETWORKS": f"{WEBHOOK_RECEIVER_HOST}/32",
    }
    return (
        test_defaults
        | dict(os.environ)
        | {
            "SLIPWAY_DATA_DIR": str(data_dir),
            "SLIPWAY_API_BIND": f"127.0.0.1:{api_port}",
            "SLIPWAY_ROUTER_BIND": f"127.0.0.1:{router_port}",
            "SLIPWAY_WAKE_BIND": f"127.0.0.1:{wake_port}",
            "SLIPWAY_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
            "SLIPWAY_DOMAIN": "localhost",
            "SLIPWAY_VOLUME_PROVIDER": "loopfile",
        }
    )


def settings_of(env: dict[str, str]) -> Settings:
    """The settings the platform's processes read from that environment."""
    with mock.patch.dict(os.environ, env, clear=True):
        return Settings.from_env()


def start_platform(data_dir: Path, extra_env: dict[str, str] | None = None) -> Platform:
    """``slipway server up`` in a fresh environment; a failure fails the test with the logs."""
    env = platform_env(data_dir) | (extra_env or {})
    settings = settings_of(env)
    platform = Platform(
        api_url=f"http://{settings.api_bind}",
        router_url=f"http://{settings.router_bind}",
        router_port=int(settings.router_bind.rpartition(":")[2]),
        admin_token="",
        data_dir=data_dir,
        settings=settings,
        env=env,
    )
    result = platform.server("up")
    if result.returncode != 0:
        stop_platform(platform)
        pytest.fail(f"slipway server up failed:\n{result.stdout}\n{result.stderr}{_logs(data_dir)}")
    platform.admin_token = (data_dir / "admin-token").read_text().strip()
    return platform


def stop_platform(platform: Platform) -> None:
    """``slipway server down``, then remove this platform's containers and volumes."""
    with contextlib.suppress(subprocess.TimeoutExpired):
        platform.server("down", timeout=DOWN_TIMEOUT)
    remove_containers_of(platform.data_dir)
    release_volumes_of(platform.settings)


def remove_containers_of(data_dir: Path) -> None:
    """Remove every Slipway container that mounts something from this data dir."""
    import docker

    from slipway.runtime.base import LABEL_MANAGED

    client = docker.from_env()
    try:
        for container in client.containers.list(all=True, filters={"label": LABEL_MANAGED}):
            sources = [m.get("Source", "") for m in container.attrs.get("Mounts", [])]
            if any(s.startswith(str(data_dir) + "/") for s in sources):
                with contextlib.suppress(docker.errors.APIError):
                    container.remove(force=True)
    finally:
        client.close()


def release_volumes_of(settings: Settings) -> None:
    """Destroy the platform's volumes, unmount its spaces and their pool, then anything still
    mounted under the data dir."""
    from slipway.volumes import get_volume_provider

    with contextlib.suppress(Exception):
        provider = get_volume_provider(settings)
        for volume in provider.list():
            with contextlib.suppress(Exception):
                provider.destroy(volume.name)
    if settings.spaces_provider == "btrfs":
        from slipway.volumes.btrfs_spaces import BtrfsSpaces

        with contextlib.suppress(Exception):
            BtrfsSpaces(settings.spaces_dir, settings.spaces_pool_size).unmount_all()
    prefix = str(settings.data_dir) + "/"
    mounted = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()]
    for target in sorted((m for m in mounted if m.startswith(prefix)), reverse=True):
        subprocess.run(["umount", "-l", target], capture_output=True, timeout=30, check=False)


def _logs(data_dir: Path, lines: int = 30) -> str:
    out = []
    for log in sorted((data_dir / "control-plane" / "logs").glob("*.log")):
        tail = log.read_text(errors="replace").splitlines()[-lines:]
        out.append(f"\n--- {log.name}\n" + "\n".join(tail))
    return "".join(out)


@contextlib.contextmanager
def own_platform(extra_env: dict[str, str] | None = None) -> Iterator[Platform]:
    """A platform in a temp dir of its own, outside pytest's base temp dir.

    pytest deletes old base temp dirs when another session starts; a platform (its database,
    volumes and sockets) must not vanish under a long run while other test sessions start.
    """
    root = Path(tempfile.mkdtemp(prefix="slipway-test-"))
    platform = start_platform(root / "data", extra_env)
    try:
        yield platform
    finally:
        stop_platform(platform)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def running_platform() -> Iterator[Platform]:
    """One platform for the whole test session, stopped and cleaned up at the end."""
    with own_platform() as platform:
        yield platform
