"""Procfile process types, the release phase and app.json health checks on the real parts.

Docker, the built images, loop volumes and nginx, through the pipeline services (as
``test_pipeline.py`` does). The apps are static sites whose Procfile runs Python's own HTTP
server (in every run image) and a shell loop as the worker.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import requests
from sqlalchemy import select

from slipway.models import Event
from slipway.services import instances, releases
from slipway.services.routing import routes_from_db
from tests.integration import test_pipeline
from tests.integration.test_pipeline import REQUEST_TIMEOUT, Platform

platform = test_pipeline.platform  # the same fixture: one app on real Docker, volumes and nginx

pytestmark = pytest.mark.slow

WEB = "web: exec python3 -m http.server $PORT --bind 0.0.0.0\n"
WORKER = "worker: while true; do echo worker tick $SLIPWAY_INSTANCE; sleep 1; done\n"


def site(version: str, procfile: str, app_json: dict[str, object] | None = None) -> dict[str, str]:
    files = {"index.html": f"<h1>version {version}</h1>\n", "health": "ok\n", "Procfile": procfile}
    if app_json is not None:
        files["app.json"] = json.dumps(app_json)
    return files


def wait_for_line(path: Path, text: str, timeout: float = 20) -> str:
    deadline = time.monotonic() + timeout
    content = ""
    while time.monotonic() < deadline:
        content = path.read_text(errors="replace") if path.is_file() else ""
        if text in content:
            return content
        time.sleep(0.5)
    raise AssertionError(f"{text!r} not in {path}: {content[-500:]!r}")


def test_web_and_worker_scale_separately_and_only_web_is_routed(platform: Platform) -> None:
    files = site("one", WEB + WORKER, {"formation": {"worker": {"quantity": 1}}})
    done = platform.deploy(files)
    assert done.state == "succeeded", (done.error, Path(done.log_path).read_text())
    assert sorted(i.process_type for i in platform.live()) == ["web", "worker"]

    instances.scale(platform.session, platform.app, {"web": 2, "worker": 1})
    platform.session.commit()
    platform.run_rolls()
    live = platform.live()
    assert sorted(f"{i.process_type}.{i.index}" for i in live) == ["web.1", "web.2", "worker.1"]
    webs = [i for i in live if i.process_type == "web"]
    [worker] = [i for i in live if i.process_type == "worker"]
    for web in webs:
        direct = requests.get(f"http://127.0.0.1:{web.host_port}/", timeout=REQUEST_TIMEOUT)
        assert "version one" in direct.text
    assert "version one" in platform.via_router().text
    routes = {r.app: r.upstreams for r in routes_from_db(platform.session)}
    assert sorted(routes[platform.app.name]) == sorted(w.host_port or 0 for w in webs)

    volume = platform.adapters.volumes.get(worker.volume_name)
    assert volume is not None
    log = wait_for_line(volume.path / "log" / "app.log", "worker tick worker.1")
    assert "start worker (Procfile)" in log


def test_a_failing_release_phase_keeps_the_old_release_serving(platform: Platform) -> None:
    release_ok = "release: echo migrating for $SLIPWAY_APP\n"
    first = platform.deploy(site("one", WEB + release_ok))
    first_log = Path(first.log_path).read_text()
    assert first.state == "succeeded", (first.error, first_log)
    assert "Running the release phase of v1" in first_log and "migrating for" in first_log
    [old] = platform.live()

    failing = "release: echo migration v2 broke >&2; exit 3\n"
    second = platform.deploy(site("two", WEB + failing))
    assert second.state == "failed"
    assert second.error == "The release phase failed (exit code 3); the log says why."
    assert "migration v2 broke" in Path(second.log_path).read_text()
    assert [i.id for i in platform.live()] == [old.id]
    assert "version one" in platform.via_router().text
    assert [r.version for r in platform.app.releases] == [1]
    leftovers = platform.adapters.runtime.list(labels={"io.slipway.kind": "run"})
    assert [c for c in leftovers if c.labels.get("io.slipway.app") == platform.app.name] == []
    kinds = platform.session.scalars(select(Event.type).order_by(Event.id)).all()
    assert kinds == ["released", "deploy_succeeded", "deploy_failed"]


def test_a_failing_app_json_health_check_blocks_the_switch(platform: Platform) -> None:
    check = {"type": "startup", "path": "/health", "timeout": 3, "attempts": 2}
    first = platform.deploy(site("one", WEB, {"healthchecks": {"web": [check]}}))
    assert first.state == "succeeded", (first.error, Path(first.log_path).read_text())
    [old] = platform.live()

    missing = {**check, "path": "/not-there"}
    second = platform.deploy(site("two", WEB, {"healthchecks": {"web": [missing]}}))
    assert second.state == "failed"
    assert second.error == (
        "The new release did not pass its app.json health check GET /not-there (2 attempts of 3 s)."
    )
    assert [i.id for i in platform.live()] == [old.id]
    assert "version one" in platform.via_router().text
    assert platform.app.current_release is not None
    assert platform.app.current_release.version == 1


def test_the_release_health_checks_gate_a_config_change_too(platform: Platform) -> None:
    # The page comes from $SITE_DIR when set: a config change can make /health disappear.
    web = "web: exec python3 -m http.server $PORT --bind 0.0.0.0 --directory ${SITE_DIR:-.}\n"
    check = {"type": "startup", "path": "/health", "timeout": 2, "attempts": 2, "wait": 0}
    first = platform.deploy(site("one", web, {"healthchecks": {"web": [check]}}))
    assert first.state == "succeeded", (first.error, Path(first.log_path).read_text())
    [old] = platform.live()

    broken = releases.change_config(platform.session, platform.app, {"SITE_DIR": "/tmp"})
    platform.session.commit()
    assert broken is not None
    with pytest.raises(instances.StartFailed, match="app.json health check GET /health"):
        platform.run_rolls()
    platform.session.rollback()
    assert [i.id for i in platform.live()] == [old.id]
    assert "version one" in platform.via_router().text
    kinds = platform.session.scalars(select(Event.type).order_by(Event.id)).all()
    assert kinds[-1] == "deploy_failed"
