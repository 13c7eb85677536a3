"""The image standard end to end, on the real engine and real loop volumes.

Each fixture app is built by its build image into a loopfile volume, packed into a slug, laid
out on an instance volume and run by its run image under supervisord, as the platform does it.
"""

from __future__ import annotations

import json
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from slipway.config import Settings
from slipway.runtime.base import (
    LABEL_APP,
    BuildResult,
    BuildSpec,
    InstanceSpec,
    Limits,
    Mount,
    RunningInstance,
)
from slipway.runtime.docker import DockerRuntime
from slipway.runtime.images import ImageBuilder, connect
from slipway.services import layout
from slipway.volumes.loopfile import LoopfileProvider
from tests.conftest import FIXTURES
from tests.helpers import scoped_runtime

pytestmark = pytest.mark.slow

APPS = FIXTURES / "apps"
VOLUME_SIZE = 512 * 1024**2
TEST_LABEL = {"io.slipway.test": "images"}
SUPERVISORCTL = ["supervisorctl", "-c", "/etc/supervisor/supervisord.conf"]
# Docker's embedded DNS server (127.0.0.11, as /proc/net/tcp spells it) in every container on a
# user-defined network such as slipway-apps: the engine's, not the image's.
DOCKER_DNS = "0B00007F:"


@pytest.fixture(scope="module")
def images() -> None:
    """The tree, built if missing (a no-op when `make test` built it already)."""
    settings = Settings()
    ImageBuilder(connect(), settings.images_dir, settings.image_prefix).build(say=lambda _: None)


@pytest.fixture(scope="module")
def build_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One per-app-style cache shared by this module's builds (npm and pip keep packages)."""
    cache = tmp_path_factory.mktemp("build-cache")
    layout.chown_tree(cache)
    return cache


@dataclass
class Harness:
    runtime: DockerRuntime
    volumes: LoopfileProvider
    cache: Path
    tmp: Path
    instances: list[str] = field(default_factory=list)
    volume_names: list[str] = field(default_factory=list)

    def volume(self, role: str) -> Path:
        name = f"t-{uuid.uuid4().hex[:10]}-{role}"
        self.volume_names.append(name)
        return self.volumes.create(name, VOLUME_SIZE).path

    def build(
        self, app: str, image: str, timeout: float = 600, command: list[str] | None = None
    ) -> tuple[BuildResult, list[str], Path]:
        """Run `build` (or `command`) on a fixture app: source in INPUT (read-only), the app left
        in OUTPUT."""
        source, output = self.volume("input"), self.volume("output")
        shutil.copytree(APPS / app, source, dirs_exist_ok=True)
        layout.chown_tree(source)
        mounts = [
            Mount(source, layout.BUILD_INPUT, read_only=True),
            Mount(output, layout.BUILD_OUTPUT),
            Mount(self.cache, layout.BUILD_CACHE),
        ]
        ca_bundle = Settings().ca_bundle
        if ca_bundle.is_file():
            mounts.append(Mount(ca_bundle, layout.CA_BUNDLE_TARGET, read_only=True))
        spec = BuildSpec(
            image=f"slipway/{image}:latest",
            name=f"slipway-test-build-{uuid.uuid4().hex[:10]}",
            mounts=mounts,
            env=layout.build_env(app, with_ca_bundle=ca_bundle.is_file()),
            command=command or ["build"],
            limits=Limits(memory=1024**3, pids=512),
            timeout=timeout,
            labels={**TEST_LABEL, LABEL_APP: app},
        )
        lines: list[str] = []
        result = self.runtime.run_build(spec, lines.append)
        return result, lines, output

    def run(self, output: Path, image: str, app: str) -> RunningInstance:
        """Pack OUTPUT into a slug, lay out an instance volume and start the run image."""
        slug = self.tmp / f"{uuid.uuid4().hex[:8]}{layout.SLUG_SUFFIX}"
        layout.pack_slug(output, slug)
        root = self.volume("instance")
        env = layout.run_env({"GREETING": "50% done"}, app, "i1", "web")
        layout.prepare_instance_volume(root, slug, "web", env)
        spec = InstanceSpec(
            image=f"slipway/{image}:latest",
            name=f"slipway-test-{app}-{uuid.uuid4().hex[:8]}",
            mounts=[Mount(root, layout.RUN_ROOT)],
            env={},
            limits=Limits(memory=512 * 1024**2, pids=256),
            port=layout.APP_PORT,
            labels={**TEST_LABEL, LABEL_APP: app},
        )
        instance = self.runtime.start_instance(spec)
        self.instances.append(instance.container_id)
        return instance

    def get(self, instance: RunningInstance, path: str = "/") -> requests.Response:
        if not self.runtime.wait_for_port(instance.host_port, timeout=60, health_path=path):
            logs = self.runtime.exec(instance.container_id, ["cat", layout.LOG_FILE]).output
            pytest.fail(f"the instance never answered on {path}; /mnt/log/app.log:\n{logs}")
        return requests.get(f"http://127.0.0.1:{instance.host_port}{path}", timeout=10)

    def close(self) -> None:
        for container_id in self.instances:
            self.runtime.stop(container_id, timeout=5)
        for name in self.volume_names:
            self.volumes.destroy(name)


@pytest.fixture
def harness(images: None, build_cache: Path, tmp_path: Path) -> Iterator[Harness]:
    h = Harness(scoped_runtime(), LoopfileProvider(tmp_path / "volumes"), build_cache, tmp_path)
    try:
        yield h
    finally:
        h.close()


def _last(lines: list[str]) -> str:
    return next((line for line in reversed(lines) if line.strip()), "")


def _assert_built(result: BuildResult, lines: list[str]) -> None:
    assert result.ok, "the build failed:\n" + "\n".join(lines[-30:])
    assert any(line.startswith("-----> ") for line in lines)
    assert _last(lines) == "-----> Build finished"


# -- the three languages ----------------------------------------------------------------------


def test_node_app_builds_and_answers(harness: Harness) -> None:
    result, lines, output = harness.build("node", "build-node")
    _assert_built(result, lines)
    assert any("npm ci" in line for line in lines)
    assert (output / "dist" / "greeting.txt").is_file()  # npm run build ran
    assert (output / "node_modules" / "ms").is_dir()
    assert (output / "node_modules" / "express").is_dir()
    for dev_only in ("is-number", "eslint"):  # dev dependencies are pruned
        assert not (output / "node_modules" / dev_only).exists()

    reply = harness.get(harness.run(output, "run-node", "node"))
    assert reply.status_code == 200
    assert "hello from a built node app" in reply.text


# -- node: build scripts and the build cache ---------------------------------------------------

# `npm run other` as npm itself runs it at the top (not under our runner, which it would inherit
# from), after the same preparation as `build`.
NPM_RUN_OTHER = [
    "bash",
    "-c",
    'cp -r "$INPUT"/. "$OUTPUT" && cd "$OUTPUT" && export npm_config_cache="$CACHE/npm" '
    "&& npm run other",
]
# What differs between two runs of a script whatever runs it: the container, the calling shell,
# the script itself.
RUN_SPECIFIC = {"HOSTNAME", "SHLVL", "_", "OLDPWD", "npm_lifecycle_event", "npm_lifecycle_script"}


def _env(output: Path, script: str) -> dict[str, str]:
    env: dict[str, str] = json.loads((output / "dist" / f"env-{script}.json").read_text())
    return env


def _tree(root: Path) -> dict[str, tuple[int, bytes]]:
    """Every entry under root: its mode and its content (a link's target, nothing for a dir)."""
    entries: dict[str, tuple[int, bytes]] = {}
    for path in sorted(root.rglob("*")):
        mode = path.lstat().st_mode
        if path.is_symlink():
            content = str(path.readlink()).encode()
        elif path.is_file():
            content = path.read_bytes()
        else:
            content = b""
        entries[path.relative_to(root).as_posix()] = (mode, content)
    return entries


def test_node_build_scripts_run_in_order_as_npm_runs_them(harness: Harness) -> None:
    result, lines, output = harness.build("node-scripts", "build-node")
    _assert_built(result, lines)
    dist = output / "dist"
    # prebuild, build (which runs `npm run other` inside), postbuild.
    assert (dist / "order.txt").read_text().split() == ["prebuild", "build", "other", "postbuild"]
    for script in ("prebuild", "build", "other", "postbuild"):
        assert f"> slipway-fixture-node-scripts@2.3.4 {script}" in lines
    assert (dist / "semver.txt").read_text() == "1.2.3\n"  # a dev dependency's bin is on PATH
    assert (output / "node_modules" / "ms").is_dir()
    assert not (output / "node_modules" / "semver").exists()

    env = _env(output, "build")
    assert env["npm_lifecycle_event"] == "build"
    assert env["npm_lifecycle_script"].startswith("node step.js build && npm run other")
    assert env["npm_command"] == "run-script"
    assert env["npm_package_name"] == "slipway-fixture-node-scripts"
    assert env["npm_package_version"] == "2.3.4"
    assert env["npm_package_config_greeting"] == "hello"
    assert env["npm_package_json"] == f"{layout.BUILD_OUTPUT}/package.json"
    assert env["npm_config_cache"] == f"{layout.BUILD_CACHE}/npm"
    assert env["npm_config_user_agent"].startswith("npm/9.")
    assert env["npm_execpath"].endswith("/bin/npm-cli.js")
    assert env["npm_node_execpath"] == env["NODE"] == "/usr/bin/node"
    assert env["INIT_CWD"] == env["npm_config_local_prefix"] == layout.BUILD_OUTPUT
    assert env["PATH"].startswith(f"{layout.BUILD_OUTPUT}/node_modules/.bin:")
    assert env["npm_config_legacy_peer_deps"] == "true"  # from the app's .npmrc
    assert env["npm_config_init_author_name"] == "node-scripts"  # ${APP} expanded
    assert _env(output, "other")["npm_lifecycle_event"] == "other"


def test_node_build_script_gets_the_environment_npm_gives_it(harness: Harness) -> None:
    result, lines, ours = harness.build("node-scripts", "build-node")
    _assert_built(result, lines)
    result, lines, theirs = harness.build("node-scripts", "build-node", command=NPM_RUN_OTHER)
    assert result.ok, "\n".join(lines[-20:])

    def comparable(env: dict[str, str]) -> dict[str, str]:
        return {key: value for key, value in env.items() if key not in RUN_SPECIFIC}

    assert comparable(_env(ours, "build")) == comparable(_env(theirs, "other"))


def _empty_cache(harness: Harness, tmp_path: Path) -> None:
    """Give the harness's builds a build cache of their own, empty (and mop's)."""
    harness.cache = tmp_path / "cache"
    harness.cache.mkdir()
    layout.chown_tree(harness.cache)


def test_second_node_build_with_the_same_lockfile_comes_from_the_cache(
    harness: Harness, tmp_path: Path
) -> None:
    _empty_cache(harness, tmp_path)  # the first build has to run npm

    result, first_lines, first = harness.build("node", "build-node")
    _assert_built(result, first_lines)
    assert "-----> Installing dependencies (npm ci)" in first_lines
    assert "-----> Pruning dev dependencies" in first_lines

    result, lines, second = harness.build("node", "build-node")
    _assert_built(result, lines)
    steps = [line for line in lines if line.startswith("-----> ")]
    assert steps[2:] == [
        "-----> Installing dependencies (unchanged lockfile: node_modules from the build cache)",
        "-----> Running npm run build",
        "-----> Pruning dev dependencies (from the build cache)",
        "-----> Build finished",
    ]
    assert (second / "dist" / "greeting.txt").is_file()
    # Replaying the cached prune leaves exactly what npm prune left.
    assert _tree(second / "node_modules") == _tree(first / "node_modules")

    # Another lockfile: its node_modules replace the first one's in the cache.
    keys = sorted(p.name for p in (harness.cache / "node_modules").iterdir())
    assert len(keys) == 1
    result, lines, _ = harness.build("node-scripts", "build-node")
    _assert_built(result, lines)
    new_keys = sorted(p.name for p in (harness.cache / "node_modules").iterdir())
    assert len(new_keys) == 1 and new_keys != keys


def test_python_app_builds_and_answers(harness: Harness) -> None:
    result, lines, output = harness.build("python", "build-python")
    _assert_built(result, lines)
    assert (output / ".venv" / "bin" / "python").exists()

    instance = harness.run(output, "run-python", "python")
    reply = harness.get(instance)
    assert reply.status_code == 200
    assert reply.text == "hello from flask in python\n"
    log = harness.runtime.exec(instance.container_id, ["cat", layout.LOG_FILE]).output
    assert "gunicorn wsgi:app" in log


def test_second_python_build_with_the_same_requirements_comes_from_the_cache(
    harness: Harness, tmp_path: Path
) -> None:
    _empty_cache(harness, tmp_path)  # the first build has to run pip

    result, first_lines, first = harness.build("python", "build-python")
    _assert_built(result, first_lines)
    assert "-----> Installing requirements.txt" in first_lines

    result, lines, second = harness.build("python", "build-python")
    _assert_built(result, lines)
    assert (
        "-----> Installing requirements.txt (unchanged: the virtualenv from the build cache)"
        in lines
    )
    assert _tree(second / ".venv") == _tree(first / ".venv")
    instance = harness.run(second, "run-python", "python")
    assert harness.get(instance).text == "hello from flask in python\n"


def test_static_site_serves_public_only(harness: Harness) -> None:
    result, lines, output = harness.build("static", "build-static")
    _assert_built(result, lines)
    assert (output / "index.html").is_file()
    assert not (output / "README.txt").exists()

    instance = harness.run(output, "run-static", "static")
    reply = harness.get(instance)
    assert reply.status_code == 200
    assert "hello from a static site" in reply.text
    assert harness.get(instance, "/index.html").status_code == 200
    missing = requests.get(f"http://127.0.0.1:{instance.host_port}/README.txt", timeout=10)
    assert missing.status_code == 404


# -- failing builds ---------------------------------------------------------------------------


def test_missing_dependency_fails_with_a_clear_last_line(harness: Harness) -> None:
    result, lines, _ = harness.build("node-missing-dep", "build-node")
    assert not result.ok and not result.timed_out
    last = _last(lines)
    assert last.startswith("error: installing the dependencies with npm install failed")
    assert "slipway-fixture-no-such-package-7c1e9a" in last


def test_node_version_the_image_lacks_is_a_clear_error(harness: Harness) -> None:
    result, lines, _ = harness.build("node-wrong-engine", "build-node")
    assert not result.ok
    last = _last(lines)
    assert last.startswith("error: package.json asks for Node.js >=99 (engines.node)")
    assert "this image has Node.js 18." in last


def test_node_package_json_that_is_not_json_is_a_clear_error(harness: Harness) -> None:
    result, lines, _ = harness.build("node-bad-json", "build-node")
    assert not result.ok and not result.timed_out
    assert _last(lines).startswith("error: package.json is not valid JSON (")


def test_failing_node_build_script_fails_the_build_with_its_exit_code(harness: Harness) -> None:
    result, lines, output = harness.build("node-build-fails", "build-node")
    assert not result.ok and not result.timed_out
    assert "the build breaks here" in lines
    why = "the build script failed (exit code 3): echo 'the build breaks here' && exit 3"
    assert f"       {why}" in lines
    assert _last(lines) == "error: npm run build failed (exit code 3)"
    # prebuild ran before; postbuild never ran after the failure.
    assert (output / "dist" / "prebuild-ran").exists()
    assert not (output / "dist" / "postbuild-ran").exists()


def test_python_version_the_image_lacks_is_a_clear_error(harness: Harness) -> None:
    result, lines, _ = harness.build("python-wrong-version", "build-python")
    assert not result.ok
    assert _last(lines).startswith(
        "error: .python-version asks for Python 3.99 but this image has Python 3."
    )


def test_build_past_its_time_limit_is_timed_out(harness: Harness) -> None:
    started = time.monotonic()
    result, lines, _ = harness.build("never-ends", "build-node", timeout=8)
    assert result.timed_out and result.exit_code is None and not result.ok
    assert time.monotonic() - started < 60
    assert any("Running npm run build" in line for line in lines)


def test_build_writing_outside_output_fails(harness: Harness) -> None:
    result, lines, output = harness.build("writes-outside", "build-node")
    assert not result.ok and not result.timed_out
    last = _last(lines)
    assert last.startswith("error: npm run build failed")
    assert "read-only file system" in last.lower() or "erofs" in last.lower()
    assert not (output / "escaped.txt").exists()


# -- the run image's supervisord --------------------------------------------------------------


def test_supervisorctl_status_shows_the_program_running(harness: Harness) -> None:
    result, lines, output = harness.build("static", "build-static")
    _assert_built(result, lines)
    instance = harness.run(output, "run-static", "static")
    assert harness.get(instance).status_code == 200

    # supervisord calls a program RUNNING once it has stayed up for startsecs (1 s).
    states: dict[str, str] = {}
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        status = harness.runtime.exec(instance.container_id, SUPERVISORCTL + ["status"])
        states = dict(line.split()[:2] for line in status.output.splitlines() if line.strip())
        if states.get("web") == "RUNNING" and states.get("navi") == "RUNNING":
            break
        time.sleep(0.5)
    assert states.get("web") == "RUNNING", states
    assert states.get("navi") == "RUNNING", states
    # The control socket is a unix socket on the volume; supervisord listens on no TCP port.
    tcp = harness.runtime.exec(instance.container_id, ["cat", "/proc/net/tcp", "/proc/net/tcp6"])
    listening = [
        row.split()[1]
        for row in tcp.output.splitlines()[1:]
        if row.split()[3:4] == ["0A"] and not row.split()[1].startswith(DOCKER_DNS)
    ]
    assert all(entry.endswith(f":{layout.APP_PORT:04X}") for entry in listening), listening


def test_orphaned_children_leave_no_zombies(harness: Harness) -> None:
    result, lines, output = harness.build("orphans", "build-python")
    _assert_built(result, lines)
    instance = harness.run(output, "run-python", "orphans")
    assert harness.get(instance).status_code == 200
    made = harness.runtime.exec(instance.container_id, ["cat", "/mnt/tmp/orphans-made"])
    assert made.output.strip() == "20"

    zombies: list[str] = []
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        time.sleep(1)  # the orphans live 0.5 s; give PID 1 time to reap the last ones
        stat = harness.runtime.exec(
            instance.container_id, ["sh", "-c", "cat /proc/[0-9]*/stat 2>/dev/null"]
        )
        zombies = [row for row in stat.output.splitlines() if row.split(") ", 1)[-1][:1] == "Z"]
        if not zombies:
            break
    assert zombies == []
