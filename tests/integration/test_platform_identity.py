"""Each platform's identity on a real host: its own broker keys, loud failures when a part it
needs cannot start, and a deploy no worker takes failing with a clear error."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis
from celery import Celery

from slipway import tasks
from tests.helpers import wait_until
from tests.integration.platform import (
    SLIPWAY,
    Platform,
    own_platform,
    platform_env,
)
from tests.integration.test_e2e_api import deploy, new_app, source_of, start_deploy

pytestmark = pytest.mark.slow

UP_TIMEOUT = 300


# ----------------------------------------------------------------------------- loud failures


@contextmanager
def unstarted_platform() -> Iterator[tuple[dict[str, str], Path]]:
    """The environment of a platform of its own (free ports, a fresh data dir), not started."""
    root = Path(tempfile.mkdtemp(prefix="slipway-test-"))
    data = root / "data"
    env = platform_env(data)
    try:
        yield env, data
    finally:
        subprocess.run([SLIPWAY, "server", "down"], env=env, capture_output=True, timeout=180)
        shutil.rmtree(root, ignore_errors=True)


def server_up(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SLIPWAY, "server", "up"], env=env, capture_output=True, text=True, timeout=UP_TIMEOUT
    )


def assert_not_up(
    result: subprocess.CompletedProcess[str], env: dict[str, str], data: Path
) -> None:
    """`up` failed, never said it was up, and left nothing of the platform running."""
    assert result.returncode != 0, result.stdout
    assert "Slipway is up" not in result.stdout
    status = subprocess.run(
        [SLIPWAY, "server", "status"], env=env, capture_output=True, text=True, timeout=60
    )
    assert status.returncode == 3 and "not running" in status.stdout, status.stdout
    assert not (data / "control-plane" / "supervisord.pid").exists()


def redis_port(env: dict[str, str]) -> int:
    port = urlsplit(env["SLIPWAY_REDIS_URL"]).port
    assert port is not None
    return port


def test_up_fails_loudly_when_its_redis_port_is_taken_by_a_plain_socket() -> None:
    with unstarted_platform() as (env, data), socket.socket() as squatter:
        port = redis_port(env)
        squatter.bind(("127.0.0.1", port))
        squatter.listen()

        result = server_up(env)

        assert (
            f"Error: redis could not start on 127.0.0.1:{port}: the address is in use. "
            "Set SLIPWAY_REDIS_URL to a free port."
        ) in result.stderr
        assert_not_up(result, env, data)


def test_up_fails_loudly_when_another_redis_holds_its_port(tmp_path: Path) -> None:
    with unstarted_platform() as (env, data):
        port = redis_port(env)
        other = subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""],
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
        )
        try:
            wait_until(lambda: _answers_ping(port), 20, "the other redis never answered")
            result = server_up(env)
            keys = redis.Redis(port=port).keys("*")
        finally:
            other.terminate()
            other.wait(timeout=30)

        assert f"redis could not start on 127.0.0.1:{port}: the address is in use." in result.stderr
        assert_not_up(result, env, data)
        assert keys == []  # nothing of ours reached the other platform's broker


def test_up_fails_loudly_when_the_api_address_is_taken() -> None:
    with unstarted_platform() as (env, data), socket.socket() as squatter:
        host, _, port = env["SLIPWAY_API_BIND"].rpartition(":")
        squatter.bind((host, int(port)))
        squatter.listen()

        result = server_up(env)

        assert (
            f"the API could not start on {host}:{port}: the address is in use. "
            "Set SLIPWAY_API_BIND to a free address."
        ) in result.stderr
        assert_not_up(result, env, data)


def test_up_fails_loudly_when_docker_does_not_answer() -> None:
    with unstarted_platform() as (env, data):
        nowhere = f"unix://{data.parent}/no-docker.sock"
        result = server_up(env | {"DOCKER_HOST": nowhere})

        assert (
            f"Docker could not be reached at {nowhere}: the engine does not answer. "
            "Start dockerd (`make docker`), or set DOCKER_HOST to the engine's socket."
        ) in result.stderr
        assert_not_up(result, env, data)


def _answers_ping(port: int) -> bool:
    try:
        return bool(redis.Redis(port=port, socket_timeout=1).ping())
    except redis.RedisError:
        return False


# ----------------------------------------------------------------------------- two platforms


def broker_keys(platform: Platform) -> list[str]:
    client = redis.Redis.from_url(platform.settings.redis_url)
    try:
        return [key.decode() for key in client.keys("*")]
    finally:
        client.close()


def test_two_platforms_on_one_host_each_run_only_their_own_tasks() -> None:
    with own_platform() as one, own_platform() as two:
        ids = one.settings.platform_id, two.settings.platform_id
        assert ids[0] != ids[1]
        # The same app name on both: each worker builds and runs its own platform's deploy.
        name = new_app(one, "twin")
        assert two.api("POST", "/apps", json={"name": name}).status_code == 201
        for platform in (one, two):
            assert deploy(platform, name, source_of("static"))["state"] == "succeeded"
            assert platform.http_get_app(name).status_code == 200
        for platform, own, other in ((one, *ids), (two, *reversed(ids))):
            keys = broker_keys(platform)
            assert keys and all(key.startswith(f"slipway.{own}:") for key in keys), keys
            assert not any(other in key for key in keys)
            conf = (platform.data_dir / "control-plane" / "supervisord.conf").read_text()
            assert f'SLIPWAY_DATA_DIR="{platform.data_dir}"' in conf

        # A message of platform one's, put on platform two's queue, is dropped by two's worker.
        accepted = _queued_deploy_without_a_worker(two, name)
        probe = Celery("probe")
        probe.conf.update(tasks.celery_config(two.settings))
        sent = probe.send_task(
            tasks.DEPLOY_TASK, args=[accepted], headers={tasks.PLATFORM_HEADER: ids[0]}
        )
        worker_log = two.data_dir / "control-plane" / "logs" / "worker.log"
        wait_until(
            lambda: f"dropped task slipway.deploy {sent.id}" in worker_log.read_text(),
            60,
            "the worker never dropped the foreign task",
        )
        shown = two.api("GET", f"/apps/{name}/deploys/{accepted}").json()
        assert shown["state"] == "queued" and shown["started_at"] is None
        assert (
            f"sent for platform '{ids[0]}', this is platform '{ids[1]}'" in worker_log.read_text()
        )


def _queued_deploy_without_a_worker(platform: Platform, app: str) -> int:
    """A deploy left queued: the worker is stopped while it is accepted, and its message is
    taken off the queue before the worker runs again."""
    conf = platform.data_dir / "control-plane" / "supervisord.conf"
    ctl = ["supervisorctl", "-c", str(conf)]
    subprocess.run([*ctl, "stop", "worker"], check=True, capture_output=True, timeout=120)
    try:
        accepted = start_deploy(platform, app, source_of("static"))
        assert accepted.status_code == 202, accepted.text
        queue = tasks.queue_name(platform.settings.platform_id)
        client = redis.Redis.from_url(platform.settings.redis_url)
        assert client.delete(f"{queue}:{queue}") == 1
        client.close()
    finally:
        subprocess.run([*ctl, "start", "worker"], check=True, capture_output=True, timeout=120)
    return int(accepted.json()["id"])


# ----------------------------------------------------------------------------- no worker


def test_a_deploy_no_worker_starts_fails_with_a_clear_error() -> None:
    with own_platform() as platform:
        app = new_app(platform, "lonely")
        conf = platform.data_dir / "control-plane" / "supervisord.conf"
        stop = ["supervisorctl", "-c", str(conf), "stop", "worker"]
        subprocess.run(stop, check=True, capture_output=True, timeout=120)
        accepted = start_deploy(platform, app, source_of("static"))
        assert accepted.status_code == 202, accepted.text
        deploy_id = accepted.json()["id"]
        time.sleep(3)

        # One reconciler pass of this platform, with a start timeout of 2 seconds.
        env = platform.env | {"SLIPWAY_DEPLOY_START_TIMEOUT": "2"}
        reconciled = subprocess.run(
            [SLIPWAY, "server", "reconcile"], env=env, capture_output=True, text=True, timeout=300
        )
        assert reconciled.returncode == 0, reconciled.stderr

        shown = platform.api("GET", f"/apps/{app}/deploys/{deploy_id}").json()
        assert shown["state"] == "failed"
        assert shown["error"] == (
            "No worker started this deploy within 2 seconds. Check that the platform's worker "
            "runs (`slipway server status`) and uses the same SLIPWAY_REDIS_URL and "
            "SLIPWAY_DATA_DIR as the API, then deploy again."
        )
        events = platform.api("GET", f"/apps/{app}/events").json()
        assert [e["data"].get("deploy_id") for e in events if e["type"] == "deploy_failed"] == [
            deploy_id
        ]
        log = platform.api("GET", f"/apps/{app}/deploys/{deploy_id}/log").text
        assert "No worker started this deploy" in log


def test_up_with_a_changed_setting_keeps_its_own_addresses() -> None:
    """A running platform's own redis, API and router hold their addresses: `up` with a new
    setting restarts the processes concerned instead of refusing its own ports."""
    with own_platform() as platform:
        platform.env["SLIPWAY_DEPLOY_START_TIMEOUT"] = "301"

        result = platform.server("up")

        assert result.returncode == 0, result.stderr
        assert "Slipway is up" in result.stdout
        conf = (platform.data_dir / "control-plane" / "supervisord.conf").read_text()
        assert 'SLIPWAY_DEPLOY_START_TIMEOUT="301"' in conf
        assert platform.api("GET", "/apps").status_code == 200
