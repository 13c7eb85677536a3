"""Space backups on the real platform (btrfs spaces), through the `slipway` CLI: a backup that
round-trips byte for byte, bad files refused with nothing created, a restore too big for its
space leaving none, and scheduled backups keeping the last N."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import docker
import pytest
from sqlalchemy import select

from slipway.db import make_engine, make_session_factory, session_scope
from slipway.models import Space
from slipway.runtime.base import MOP_USER
from slipway.services import space_backups
from slipway.volumes.btrfs_spaces import BtrfsSpaces
from tests.helpers import wait_until
from tests.integration.platform import Platform, own_platform

pytestmark = pytest.mark.slow

SLIPWAY = str(Path(sys.executable).with_name("slipway"))
M = 1024**2
KEEP = 2


@pytest.fixture(scope="module")
def platform() -> Iterator[Platform]:
    env = {
        "SLIPWAY_SPACES_PROVIDER": "btrfs",
        "SLIPWAY_SPACES_POOL_SIZE": "4G",
        "SLIPWAY_SPACE_BACKUP_INTERVAL": "2",
        "SLIPWAY_SPACE_BACKUP_KEEP": str(KEEP),
    }
    with own_platform(env) as running:
        yield running


def slipway(platform: Platform, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"SLIPWAY_URL": platform.api_url, "SLIPWAY_TOKEN": platform.admin_token}
    result = subprocess.run(
        [SLIPWAY, *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(f"slipway {' '.join(args)} failed:\n{result.stdout}{result.stderr}")
    return result


def source_tree(root: Path) -> Path:
    """Files of every kind a space holds: odd modes, a symlink, an empty dir, 40 MB of noise."""
    tree = root / "source"
    (tree / "db" / "wal").mkdir(parents=True)
    (tree / "db" / "app.sqlite").write_bytes(os.urandom(4096))
    (tree / "private.key").write_text("secret\n")
    (tree / "private.key").chmod(0o600)
    (tree / "run.sh").write_text("#!/bin/sh\necho hi\n")
    (tree / "run.sh").chmod(0o751)
    (tree / "shared").mkdir(mode=0o700)
    (tree / "shared").chmod(0o1777)
    (tree / "empty").mkdir()
    (tree / "latest").symlink_to("db/app.sqlite")
    (tree / "dangling").symlink_to("/nowhere/at/all")
    (tree / "big.bin").write_bytes(os.urandom(40 * M))
    return tree


def backup_of(tree: Path, out: Path, size: int) -> Path:
    """A backup file made here, the way the platform makes one, to put data into a space."""
    tarball = subprocess.run(
        ["tar", "--create", "--file=-", "--sort=name", "--numeric-owner", "--owner=61000"]
        + ["--group=61000", "--use-compress-program=zstd -q", "-C", str(tree), "."],
        capture_output=True,
        check=True,
    ).stdout
    body = space_backups.header_frame("source", size, datetime.now(UTC)) + tarball
    out.write_bytes(body + space_backups.trailer_frame(hashlib.sha256(body).hexdigest()))
    return out


def listing(tree: Path) -> dict[str, tuple[int, str]]:
    """Every entry: its mode and its content (a file's hash, a link's target)."""
    found = {}
    for path in sorted(tree.rglob("*")):
        mode = path.lstat().st_mode
        if path.is_symlink():
            what = "-> " + os.readlink(path)
        elif path.is_file():
            what = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            what = "dir"
        found[str(path.relative_to(tree))] = (mode, what)
    return found


def unpacked(backup: Path, into: Path) -> Path:
    into.mkdir()
    subprocess.run(
        f"zstd -dc {backup} | tar -x -p -C {into}", shell=True, check=True, capture_output=True
    )
    return into


def space_names(platform: Platform) -> set[str]:
    engine = make_engine(platform.settings)
    try:
        with session_scope(make_session_factory(engine)) as session:
            return set(session.scalars(select(Space.name)))
    finally:
        engine.dispose()


def space_keys(platform: Platform) -> list[str]:
    settings = platform.settings
    return BtrfsSpaces(settings.spaces_dir, settings.spaces_pool_size).keys()


def written_by_the_app(platform: Platform, name: str, expected: Path) -> None:
    """Files written into the space's live tree by mop in a container, as an app would, and
    the same into the tree the round trip is compared with."""
    from tests.integration.test_volumes_loopfile import _test_image

    engine = make_engine(platform.settings)
    try:
        with session_scope(make_session_factory(engine)) as session:
            key = session.scalars(select(Space).where(Space.name == name)).one().key
    finally:
        engine.dispose()
    settings = platform.settings
    live = BtrfsSpaces(settings.spaces_dir, settings.spaces_pool_size).tree(key)
    client = docker.from_env()
    script = "echo from the app > app.txt && umask 077 && mkdir app-dir && echo x > app-dir/own"
    client.containers.run(
        _test_image(client),
        ["sh", "-c", f"cd /spaces/data/tree && {script}"],
        user=MOP_USER,
        read_only=True,
        cap_drop=["ALL"],
        network_disabled=True,
        volumes={str(live): {"bind": "/spaces/data/tree", "mode": "rw"}},
        remove=True,
    )
    (expected / "app.txt").write_text("from the app\n")
    (expected / "app-dir").mkdir(mode=0o700)
    (expected / "app-dir").chmod(0o700)
    (expected / "app-dir" / "own").write_text("x\n")
    (expected / "app-dir" / "own").chmod(0o600)


def test_backups_round_trip_refuse_bad_files_and_keep_the_last_n(
    platform: Platform, tmp_path: Path
) -> None:
    tree = source_tree(tmp_path)
    seed = backup_of(tree, tmp_path / "seed.backup.tar.zst", 128 * M)

    # Data into a space by a restore, out by the platform's backup, into another, out again.
    slipway(platform, "spaces:restore", str(seed), "src")
    written_by_the_app(platform, "src", tree)
    first = tmp_path / "src.backup.tar.zst"
    with first.open("wb") as out:
        env = os.environ | {"SLIPWAY_URL": platform.api_url, "SLIPWAY_TOKEN": platform.admin_token}
        subprocess.run([SLIPWAY, "spaces:backup", "src"], env=env, stdout=out, check=True)
    assert space_backups.check_backup_file(first).space == "src"
    restored = slipway(platform, "spaces:restore", str(first), "copy")
    assert "Restored src.backup.tar.zst into the new space copy" in restored.stdout
    assert "Uploading: 100% checking" in restored.stderr
    second = tmp_path / "copy.backup.tar.zst"
    slipway(platform, "spaces:backup", "copy", "--output", str(second))
    assert space_backups.check_backup_file(second).size == 128 * M
    assert listing(unpacked(second, tmp_path / "out")) == listing(tree)

    # A corrupt, a truncated and a random file: one sentence each, and nothing is made.
    data = first.read_bytes()
    bad = {
        "flipped": data[: len(data) // 2]
        + bytes([data[len(data) // 2] ^ 1])
        + data[len(data) // 2 + 1 :],
        "truncated": data[: len(data) - 1000],
        "random": os.urandom(100_000),
    }
    keys = space_keys(platform)
    for kind, body in bad.items():
        path = tmp_path / f"{kind}.bin"
        path.write_bytes(body)
        result = slipway(platform, "spaces:restore", str(path), f"bad-{kind}", check=False)
        assert result.returncode == 1, result
        says = {"flipped": "checksum", "truncated": "incomplete", "random": "not a Slipway"}
        errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and says[kind] in errors[0], result.stderr
    assert not {n for n in space_names(platform) if n.startswith("bad-")}
    assert space_keys(platform) == keys

    # A name that is taken is refused before the upload is read, and the space is untouched.
    taken = slipway(platform, "spaces:restore", str(first), "src", check=False)
    assert taken.returncode == 1 and "already exists" in taken.stderr, taken.stderr

    # The API names the type and a file name.
    with platform.api("GET", "/spaces/src/backup", stream=True) as response:
        assert response.headers["Content-Type"] == "application/zstd"
        assert 'filename="src-' in response.headers["Content-Disposition"]
        assert sum(len(chunk) for chunk in response.iter_content(1024**2)) > 40 * M

    # Too big for the size asked: refused while unpacking, and the new space is gone.
    result = slipway(platform, "spaces:restore", str(first), "tiny", "--size", "32M", check=False)
    assert result.returncode == 1
    assert "does not fit in a space of 32 MB" in result.stderr, result.stderr
    assert "tiny" not in space_names(platform)
    assert space_keys(platform) == keys

    # A terminal never gets binary.
    terminal, reader = os.openpty()
    try:
        env = os.environ | {"SLIPWAY_URL": platform.api_url, "SLIPWAY_TOKEN": platform.admin_token}
        refused = subprocess.run(
            [SLIPWAY, "spaces:backup", "src"],
            env=env,
            stdout=reader,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        os.close(terminal)
        os.close(reader)
    assert refused.returncode == 1 and "--output FILE" in refused.stderr, refused.stderr

    # Scheduled backups every 2 s keep the last KEEP of each space.
    def kept() -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = json.loads(
            slipway(platform, "spaces:backups", "src", "--json").stdout
        )
        return rows

    wait_until(lambda: len(kept()) == KEEP, 30, f"{KEEP} scheduled backups of src")
    seen = {row["id"] for row in kept()}
    wait_until(lambda: not seen & {row["id"] for row in kept()}, 30, "older backups pruned")
    rows = kept()
    assert len(rows) <= KEEP and all(row["scheduled"] for row in rows)
    files = sorted((platform.settings.backups_dir / "src").glob("*.backup.tar.zst"))
    assert len(files) <= KEEP + 1  # one may be being written between the listing and here
    download = tmp_path / "kept.backup.tar.zst"
    slipway(platform, "spaces:backup", "src", "--id", str(rows[0]["id"]), "-o", str(download))
    assert space_backups.check_backup_file(download).space == "src"
