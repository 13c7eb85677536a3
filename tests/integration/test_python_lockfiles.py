"""Python apps installed from uv.lock, poetry.lock and Pipfile.lock, on a running platform.

The uv and pipenv locks are made here, by the very tool versions the build image installs (run in
a throwaway container of that image): they name the package index, which the fixtures do not.
The fixture's poetry.lock names only files and hashes, so it is kept as Poetry 2 wrote it.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from slipway.services import layout
from tests.helpers import wait_until
from tests.integration.platform import Platform
from tests.integration.test_e2e_api import (
    FIXTURE_APPS,
    answers,
    deploy,
    log_of,
    new_app,
    tar_dir,
)

pytestmark = pytest.mark.slow

BUILD_SCRIPT = Path(__file__).resolve().parents[2] / "images" / "build-python" / "bin" / "build"
LOCK_TIMEOUT = 300

# Installs uv and pipenv as the build does ($1, $2: their versions) and locks both apps.
LOCKING = """\
set -eu
cd /tmp
python3 -m pip install --quiet --no-cache-dir --only-binary :all: --target /tmp/uv "uv==$1"
python3 -m venv /tmp/pipenv
/tmp/pipenv/bin/pip install --quiet --no-cache-dir "pipenv==$2"
cd /apps/python-uv && UV_PYTHON_DOWNLOADS=never /tmp/uv/bin/uv lock --no-progress
cd /apps/python-pipenv
PIPENV_VERBOSITY=-1 PIPENV_IGNORE_VIRTUALENVS=1 /tmp/pipenv/bin/pipenv lock
"""


def build_alone(platform: Platform, source: Path, cache: Path, network: str) -> tuple[int, str]:
    """Run build-python's `build` on ``source`` as the platform does (read-only root, mop, INPUT
    read-only, the CA bundle), on the ``network`` given: its exit code and output."""
    output = Path(tempfile.mkdtemp(dir=cache.parent, prefix="output-"))
    layout.chown_tree(output)
    volumes = {
        str(source): {"bind": layout.BUILD_INPUT, "mode": "ro"},
        str(output): {"bind": layout.BUILD_OUTPUT, "mode": "rw"},
        str(cache): {"bind": layout.BUILD_CACHE, "mode": "rw"},
    }
    ca_bundle = platform.settings.ca_bundle
    if ca_bundle.is_file():
        volumes[str(ca_bundle)] = {"bind": layout.CA_BUNDLE_TARGET, "mode": "ro"}
    client = docker.from_env(timeout=LOCK_TIMEOUT)
    try:
        container = client.containers.run(
            f"{platform.settings.image_prefix}build-python:latest",
            ["build"],
            volumes=volumes,
            environment=layout.build_env("alone", with_ca_bundle=ca_bundle.is_file()),
            network_mode=network,
            read_only=True,
            tmpfs={"/tmp": "exec"},
            user=f"{layout.MOP_UID}:{layout.MOP_GID}",
            detach=True,
        )
        try:
            code = container.wait(timeout=LOCK_TIMEOUT)["StatusCode"]
            return code, container.logs().decode()
        finally:
            container.remove(force=True)
    finally:
        client.close()


def tool_version(name: str) -> str:
    found = re.search(rf"^{name}_VERSION=(\S+)", BUILD_SCRIPT.read_text(), re.MULTILINE)
    assert found, f"{BUILD_SCRIPT} names no {name} version"
    return found.group(1)


@pytest.fixture(scope="module")
def locked(running_platform: Platform, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory of the three apps, each with its lock file."""
    apps = tmp_path_factory.mktemp("locked")
    for tool in ("uv", "poetry", "pipenv"):
        shutil.copytree(FIXTURE_APPS / f"python-{tool}", apps / f"python-{tool}")
    for path in [apps, *apps.rglob("*")]:
        path.chmod(0o777 if path.is_dir() else 0o666)  # the container's mop writes the locks
    volumes = {str(apps): {"bind": "/apps", "mode": "rw"}}
    environment = {"HOME": "/tmp/home"}
    ca_bundle = running_platform.settings.ca_bundle
    if ca_bundle.is_file():  # as builds get it (layout.build_env)
        volumes[str(ca_bundle)] = {"bind": layout.CA_BUNDLE_TARGET, "mode": "ro"}
        environment |= {
            name: value
            for name, value in layout.build_env("lock").items()
            if name in {"SSL_CERT_FILE", "PIP_CERT", "REQUESTS_CA_BUNDLE"}
        }
    client = docker.from_env(timeout=LOCK_TIMEOUT)
    try:
        client.containers.run(
            f"{running_platform.settings.image_prefix}build-python:latest",
            ["bash", "-c", LOCKING, "locking", tool_version("UV"), tool_version("PIPENV")],
            volumes=volumes,
            environment=environment,
            remove=True,
        )
    finally:
        client.close()
    assert (apps / "python-uv" / "uv.lock").is_file()
    assert (apps / "python-pipenv" / "Pipfile.lock").is_file()
    return apps


@pytest.fixture
def app(running_platform: Platform) -> Iterator[str]:
    name = new_app(running_platform, "lock")
    yield name
    running_platform.api("DELETE", f"/apps/{name}")


@pytest.mark.parametrize(
    ("tool", "lock", "answer"),
    [
        # requires-python >=3.11 alone: the newest Python offered
        ("uv", "uv.lock", "uv app: six 1.17.0 without idna on 3.14."),
        ("poetry", "poetry.lock", "poetry app: idna 3.10 without six on 3.13."),  # .python-version
        ("pipenv", "Pipfile.lock", "pipenv app: six 1.17.0 without idna on 3.11."),  # no version
    ],
)
def test_an_app_is_installed_from_its_lock_without_its_dev_packages(
    running_platform: Platform, locked: Path, app: str, tool: str, lock: str, answer: str
) -> None:
    done = deploy(running_platform, app, tar_dir(locked / f"python-{tool}"))

    log = log_of(running_platform, app, done["id"])
    assert done["state"] == "succeeded", log
    version = tool_version(tool.upper())
    assert f"-----> Installing from {lock} with {tool} {version}" in log
    assert f"fetching {tool} {version}" in log  # a new app's build cache is empty
    wait_until(answers(running_platform, app, answer), 60, f"the app never said {answer!r}")


def test_a_redeploy_with_the_same_lock_unpacks_the_virtualenv_from_the_build_cache(
    running_platform: Platform, locked: Path, app: str
) -> None:
    source = tar_dir(locked / "python-uv")
    first = deploy(running_platform, app, source)
    assert first["state"] == "succeeded", log_of(running_platform, app, first["id"])

    again = deploy(running_platform, app, source)

    log = log_of(running_platform, app, again["id"])
    assert again["state"] == "succeeded", log
    assert "-----> Installing uv.lock (unchanged: the virtualenv from the build cache)" in log
    assert "Installing from uv.lock" not in log  # neither uv nor the index was asked
    wait_until(answers(running_platform, app, "uv app: six 1.17.0"), 60, "v2 never answered")


STALE = {
    "uv": ("pyproject.toml", '"six==1.17.0"', '"six==1.17.0", "idna==3.10"'),
    "poetry": ("pyproject.toml", '"idna==3.10"', '"idna==3.10", "six==1.17.0"'),
    "pipenv": ("Pipfile", "[dev-packages]", 'idna = "==3.10"\n\n[dev-packages]'),
}


@pytest.mark.parametrize(
    ("tool", "lock", "manifest"),
    [
        ("uv", "uv.lock", "pyproject.toml"),
        ("poetry", "poetry.lock", "pyproject.toml"),
        ("pipenv", "Pipfile.lock", "Pipfile"),
    ],
)
def test_a_lock_that_does_not_match_its_manifest_fails_the_build_saying_so(
    running_platform: Platform,
    locked: Path,
    tmp_path: Path,
    app: str,
    tool: str,
    lock: str,
    manifest: str,
) -> None:
    source = shutil.copytree(locked / f"python-{tool}", tmp_path / "app")
    name, old, new = STALE[tool]
    text = (source / name).read_text()
    assert old in text
    (source / name).write_text(text.replace(old, new, 1))  # a dependency added, not locked

    failed = deploy(running_platform, app, tar_dir(source))

    log = log_of(running_platform, app, failed["id"])
    assert failed["state"] == "failed", log
    assert (
        f"error: {lock} does not match {manifest} (it was not locked again after a change): "
        f"run `{tool} lock` and deploy the new {lock}"
    ) in log


def test_a_lock_that_cannot_be_read_fails_before_any_tool_is_fetched(
    running_platform: Platform, tmp_path: Path, app: str
) -> None:
    source = shutil.copytree(FIXTURE_APPS / "python-poetry", tmp_path / "app")
    (source / "poetry.lock").write_text('[[package]]\nname = "idna\n')

    failed = deploy(running_platform, app, tar_dir(source))

    log = log_of(running_platform, app, failed["id"])
    assert failed["state"] == "failed", log
    assert "error: poetry.lock is not a valid lock file (" in log
    assert "run `poetry lock` and deploy the new poetry.lock" in log
    assert "fetching poetry" not in log


def test_a_pipfile_without_its_lock_fails_saying_what_to_do(
    running_platform: Platform, app: str
) -> None:
    source = FIXTURE_APPS / "python-pipenv"
    assert not (source / "Pipfile.lock").exists()

    failed = deploy(running_platform, app, tar_dir(source))

    log = log_of(running_platform, app, failed["id"])
    assert failed["state"] == "failed", log
    assert (
        "error: Pipfile has no Pipfile.lock: run `pipenv lock` and deploy Pipfile.lock with it"
        in log
    )


def test_an_unreachable_index_fails_the_build_with_the_tools_reason(
    running_platform: Platform, locked: Path, tmp_path: Path
) -> None:
    source = locked / "python-uv"
    cache = tmp_path / "cache"
    cache.mkdir()
    layout.chown_tree(cache)
    version = tool_version("UV")

    code, said = build_alone(running_platform, source, cache, "none")  # uv itself cannot be fetched

    assert code == 1, said
    last = said.strip().splitlines()[-1]
    assert last.startswith(f"error: fetching uv {version} failed (exit code 1): "), said
    assert not (cache / "venv").exists()

    # With uv in the build cache, its download of the locked package is what fails.
    code, said = build_alone(running_platform, source, cache, "bridge")
    assert code == 0, said
    for kept in ("venv", "uv"):
        shutil.rmtree(cache / kept)
    code, said = build_alone(running_platform, source, cache, "none")

    assert code == 1, said
    assert f"uv {version} from the build cache" in said
    last = said.strip().splitlines()[-1]
    assert last.startswith("error: installing from uv.lock with uv failed (exit code 2): "), said
    assert "Failed to download `six==1.17.0`" in last
