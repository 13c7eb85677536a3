"""Navi inside a real run-base container: a crashing program and an OOM-killed one leave files."""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import docker.errors
import pytest

from slipway.runtime.base import LABEL_APP, InstanceSpec, Limits, Mount
from slipway.services.layout import MOP_GID, MOP_UID, RUN_DIRS
from tests.helpers import scoped_runtime

MB = 1024**2
RUN_BASE = "slipway/run-base:latest"
IMAGE_WAIT = 15 * 60  # the images may still be building when the tests start
NOTE_WAIT = 60

pytestmark = pytest.mark.slow

CRASHER = """\
[program:web]
command=python3 -c "import sys, time; print('about to fail', flush=1); time.sleep(2); sys.exit(3)"
startsecs=1
startretries=1
autorestart=true
redirect_stderr=true
stdout_logfile=/mnt/log/app.log
"""
# Grows by 8 MB steps past the container's limit; the kernel's OOM killer ends it.
HOG = """\
[program:web]
command=python3 -c "import time; time.sleep(2); hog = [bytearray(8 << 20) for _ in range(64)]"
startsecs=1
startretries=1
autorestart=true
redirect_stderr=true
stdout_logfile=/mnt/log/app.log
"""


@pytest.fixture(scope="module")
def run_base() -> str:
    """The image, once `slipway server images build` has made it (bounded wait)."""
    client = docker.from_env()
    deadline = time.monotonic() + IMAGE_WAIT
    while True:
        try:
            client.images.get(RUN_BASE)
            return RUN_BASE
        except docker.errors.ImageNotFound:
            if time.monotonic() > deadline:
                pytest.fail(f"no image {RUN_BASE}: run `slipway server images build` first")
            time.sleep(10)


@pytest.fixture
def app() -> Iterator[str]:
    name = f"navi-{uuid.uuid4().hex[:10]}"
    yield name
    for c in docker.from_env().containers.list(all=True, filters={"label": f"{LABEL_APP}={name}"}):
        c.remove(force=True)


def volume(tmp_path: Path, program: str) -> Path:
    """A mop-owned /mnt laid out as the platform does, with the given supervisor.conf."""
    root = tmp_path / "mnt"
    root.mkdir()
    for name in RUN_DIRS:
        (root / name).mkdir()
    (root / "supervisor.conf").write_text(program)
    for path in [root, *root.iterdir()]:
        os.chown(path, MOP_UID, MOP_GID)
    return root


def start(image: str, app: str, root: Path, memory: int) -> str:
    spec = InstanceSpec(
        image=image,
        name=f"{app}-web-1",
        mounts=[Mount(root, "/mnt")],
        env={"SLIPWAY_APP": app, "SLIPWAY_INSTANCE": f"{app}-web-1"},
        limits=Limits(memory=memory, pids=64),
        port=5000,
        labels={LABEL_APP: app},
    )
    return scoped_runtime().start_instance(spec).container_id


def wait_for_note(root: Path, kind: str) -> dict[str, Any]:
    deadline = time.monotonic() + NOTE_WAIT
    while time.monotonic() < deadline:
        for path in sorted((root / "notifications").glob(f"*-{kind}.json")):
            return dict(json.loads(path.read_text()))
        time.sleep(0.5)
    navi_log = root / "log" / "navi.log"
    detail = navi_log.read_text() if navi_log.exists() else "no navi.log"
    raise AssertionError(f"no {kind} notification within {NOTE_WAIT}s; navi said: {detail}")


def test_a_crashing_program_leaves_a_crash_file(run_base: str, app: str, tmp_path: Path) -> None:
    root = volume(tmp_path, CRASHER)
    start(run_base, app, root, 128 * MB)

    note = wait_for_note(root, "crash")

    assert (note["app"], note["instance"], note["process"]) == (app, f"{app}-web-1", "web")
    assert note["state"] in ("EXITED", "BACKOFF", "FATAL")
    assert note.get("exit_status") == 3
    assert "about to fail" in note["log_tail"]
    assert note["oom_kills"] == 0
    leftovers = [p.name for p in (root / "notifications").iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_an_allocation_past_the_memory_limit_is_an_oom(
    run_base: str, app: str, tmp_path: Path
) -> None:
    root = volume(tmp_path, HOG)
    start(run_base, app, root, 96 * MB)

    note = wait_for_note(root, "oom")

    assert note["type"] == "oom" and note["process"] == "web"
    assert note["oom_kills"] >= 1
    assert note.get("signal") == "SIGKILL"
