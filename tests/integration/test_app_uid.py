"""mop's uid on the real parts: the images run as the configured uid, an image built with
another uid runs as that one, and `slipway server up` refuses a uid a host account holds."""

from __future__ import annotations

import contextlib
import grp
import pwd
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import docker
import docker.errors
import pytest

from slipway.config import get_settings
from slipway.runtime.images import ImageBuilder, connect, content_tags, read_tree
from slipway.services.layout import MOP_GID, MOP_UID
from tests.integration.platform import SLIPWAY, platform_env

pytestmark = pytest.mark.slow

IMAGES = ("base", "build-python", "build-node", "run-python", "run-node", "run-static")
PROBE = "id -u; id -g; id -un; stat -c %u:%g /mnt/app /mnt/home /mnt/tmp"


def run(image: str, script: str) -> list[str]:
    client = docker.from_env()
    try:
        out = client.containers.run(image, ["sh", "-c", script], remove=True, network_disabled=True)
    finally:
        client.close()
    return out.decode().split()


def free_id() -> int:
    """A number below the default that no user and no group of this host has."""
    while True:
        number = 60600 + secrets.randbelow(400)
        try:
            pwd.getpwuid(number)
            continue
        except KeyError:
            pass
        try:
            grp.getgrgid(number)
        except KeyError:
            return number


@pytest.mark.parametrize("name", IMAGES)
def test_every_image_runs_as_the_configured_uid(name: str) -> None:
    prefix = get_settings().image_prefix
    lines = run(f"{prefix}{name}:latest", PROBE)

    owner = f"{MOP_UID}:{MOP_GID}"
    assert lines == [str(MOP_UID), str(MOP_GID), "mop", owner, owner, owner]


def test_a_base_built_with_another_uid_runs_as_it_and_has_its_own_content_tag() -> None:
    images_dir = get_settings().images_dir
    other = free_id()
    prefix = f"slipway-test-uid-{secrets.token_hex(3)}/"
    builder = ImageBuilder(connect(), images_dir, prefix, app_uid=other)
    tree = read_tree(images_dir)
    ours = content_tags(tree, images_dir.parent)["base"]
    try:
        [outcome] = builder.build(["base"], say=lambda _: None)
        assert outcome.built and not outcome.reference.endswith(f":{ours}")

        lines = run(f"{prefix}base:latest", PROBE)

        owner = f"{other}:{other}"
        assert lines == [str(other), str(other), "mop", owner, owner, owner]
    finally:
        client = docker.from_env()
        for image in client.images.list(name=f"{prefix}base"):
            for reference in image.tags:
                with contextlib.suppress(docker.errors.ImageNotFound):
                    client.images.remove(reference, force=True)
        client.close()


@contextmanager
def host_account(kind: str, number: int) -> Iterator[str]:
    """A temporary host user (``useradd``) or group (``groupadd``) with that id."""
    name = f"slipway-t{secrets.token_hex(3)}"
    if kind == "user":
        make = ["useradd", "--uid", str(number), "--no-create-home", "--no-user-group"]
        make += ["--no-log-init", "--shell", "/usr/sbin/nologin", name]
        remove = ["userdel", name]
    else:
        make, remove = ["groupadd", "--gid", str(number), name], ["groupdel", name]
    subprocess.run(make, check=True, capture_output=True, timeout=30)
    try:
        yield name
    finally:
        subprocess.run(remove, check=True, capture_output=True, timeout=30)


@pytest.mark.parametrize(
    ("kind", "says"), [("user", "the uid of the user"), ("group", "the gid of the group")]
)
def test_server_up_refuses_a_uid_a_host_account_holds(kind: str, says: str) -> None:
    number = free_id()
    root = Path(tempfile.mkdtemp(prefix="slipway-test-"))
    data_dir = root / "data"
    env = platform_env(data_dir) | {"SLIPWAY_APP_UID": str(number)}
    try:
        with host_account(kind, number) as name:
            done = subprocess.run(
                [SLIPWAY, "server", "up"], env=env, capture_output=True, text=True, timeout=120
            )

        assert done.returncode == 1, done.stdout + done.stderr
        error = done.stderr.strip().splitlines()[-1]
        assert error == (
            f"Error: The app uid {number} is already {says} {name!r} on this host: set "
            "SLIPWAY_APP_UID to a number that no host user, group or subordinate-id range uses."
        )
        assert not data_dir.exists()  # refused before anything was made or started
        assert "Slipway is up" not in done.stdout
    finally:
        shutil.rmtree(root, ignore_errors=True)
