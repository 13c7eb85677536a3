"""Apps written for Heroku or Dokku run unchanged: they live at /app, named after their app.

``/app`` is a link to ``/mnt/app`` in every image (made in the base rootfs): the build's OUTPUT,
a release phase's and an instance's unpacked slug, and a one-off run's all sit there.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from slipway.runtime.base import LABEL_APP, BuildSpec, Limits, Mount
from slipway.services.layout import BUILD_OUTPUT, MOP_GID, MOP_UID
from tests.helpers import scoped_runtime, wait_until
from tests.integration.platform import Platform
from tests.integration.test_e2e_api import (
    answers,
    containers_of,
    deploy,
    log_of,
    new_app,
    tar_files,
)
from tests.integration.test_processes_api import slipway

pytestmark = pytest.mark.slow

MB = 1024**2
PROCFILE = (
    "web: cd /app && exec python3 -m http.server $PORT --bind 0.0.0.0\n"
    "release: touch /app/release.test && ls /app/release.test\n"
)


@pytest.mark.parametrize("image", ["slipway/build-base:latest", "slipway/run-base:latest"])
def test_app_is_the_mounted_app_directory_under_a_read_only_root(
    image: str, tmp_path: Path
) -> None:
    output = tmp_path / "output"
    output.mkdir()
    os.chown(output, MOP_UID, MOP_GID)
    app = f"test-{uuid.uuid4().hex[:10]}"
    spec = BuildSpec(
        image=image,
        name=f"{app}-build",
        mounts=[Mount(output, BUILD_OUTPUT)],
        env={},
        limits=Limits(memory=128 * MB, pids=64),
        timeout=120,
        labels={LABEL_APP: app},
        command=["sh", "-c", "cd /app && touch made-at-app && pwd -P && touch /made-at-root"],
    )
    lines: list[str] = []
    result = scoped_runtime().run_build(spec, lines.append)
    assert result.exit_code != 0  # the root filesystem stays read-only
    # stdout and stderr arrive through separate pipes, so their order is not fixed
    assert BUILD_OUTPUT in lines, lines
    assert any("Read-only file system" in line for line in lines), lines
    assert (output / "made-at-app").is_file()
    assert (output / "made-at-app").stat().st_uid == MOP_UID


def test_a_heroku_style_app_lives_at_app_in_its_release_phase_instances_and_runs(
    running_platform: Platform, tmp_path: Path
) -> None:
    platform = running_platform
    app = new_app(platform, "heroku")
    source = tar_files({"index.html": "<h1>served from /app</h1>\n", "Procfile": PROCFILE})

    done = deploy(platform, app, source)

    log = log_of(platform, app, done["id"])
    assert done["state"] == "succeeded", log
    assert "Running the release phase" in log
    assert "/app/release.test" in [line.strip() for line in log.splitlines()]
    wait_until(answers(platform, app, "served from /app"), 60, "the web process never answered")
    [instance] = containers_of(app, "instance")
    assert instance.attrs["Config"]["Hostname"] == app

    script = "cd /app && touch x && ls x index.html && pwd -P && hostname"
    ran = slipway(platform, tmp_path, "run", "-a", app, script)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.splitlines() == ["index.html", "x", "/mnt/app", app]
    platform.api("DELETE", f"/apps/{app}")
