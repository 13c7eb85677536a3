"""The btrfs spaces provider against a real btrfs pool on a loop device (needs root)."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from slipway.runtime.base import MOP_USER
from slipway.services.layout import MOP_GID, MOP_UID
from slipway.volumes.btrfs_spaces import BtrfsSpaces
from slipway.volumes.loopfile import mounted_points
from slipway.volumes.spaces import SpaceError

MB = 1024**2
POOL = 2 * 1024**3  # sparse: only what the tests write is spent

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="loop mounts need root"),
]


@pytest.fixture
def spaces(tmp_path: Path) -> Iterator[BtrfsSpaces]:
    provider = BtrfsSpaces(tmp_path / "spaces", POOL)
    yield provider
    provider.unmount_all()
    for point in mounted_points():
        if provider.root in point.parents:
            subprocess.run(["umount", "-l", str(point)], check=False)


def loop_devices_of(image: Path) -> list[str]:
    out = subprocess.run(
        ["losetup", "-j", str(image)], capture_output=True, text=True, check=True
    ).stdout
    return [line.split(":", 1)[0] for line in out.splitlines()]


def detached(devices: list[str]) -> bool:
    """Whether every one of these loop devices is free (has no backing file any more)."""
    return not any(
        Path(f"/sys/block/{d.removeprefix('/dev/')}/loop/backing_file").exists() for d in devices
    )


def mounts_under(root: Path) -> list[Path]:
    return sorted(p for p in mounted_points() if root in p.parents)


def test_create_mounts_an_empty_tree_owned_by_mop(spaces: BtrfsSpaces) -> None:
    tree = spaces.create("sp-1", 64 * MB)

    assert tree == spaces.root / "mounts" / "sp-1" / "tree"
    assert tree.parent in mounted_points()
    st = tree.stat()
    assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (MOP_UID, MOP_GID, 0o755)
    assert tree.parent.stat().st_uid == 0  # the filesystem's root stays root's
    assert sorted(p.name for p in tree.parent.iterdir()) == ["tree"]  # no lost+found
    assert list(tree.iterdir()) == []
    assert spaces.exists("sp-1") and not spaces.exists("sp-2")
    assert spaces.keys() == ["sp-1"]
    assert spaces.usage("sp-1").size == 64 * MB
    assert spaces.tree("sp-1") == tree
    # The pool is sparse: a 2 GB pool with a 64 MB space spends a few MB of the host's disk.
    assert spaces.pool_image.stat().st_size == POOL
    assert spaces.pool_image.stat().st_blocks * 512 < 200 * MB


def test_writing_past_the_cap_says_no_space_inside_a_container(spaces: BtrfsSpaces) -> None:
    from tests.integration.test_volumes_loopfile import _test_image

    client = docker.from_env()
    full = spaces.create("sp-1", 32 * MB)
    other = spaces.create("sp-2", 32 * MB)
    (other / "keep").write_text("kept")

    output = client.containers.run(
        _test_image(client),
        ["sh", "-c", "dd if=/dev/zero of=/spaces/data/tree/fill bs=1M count=100; echo exit=$?"],
        user=MOP_USER,
        read_only=True,
        cap_drop=["ALL"],
        security_opt=["no-new-privileges"],
        network_disabled=True,
        volumes={str(full): {"bind": "/spaces/data/tree", "mode": "rw"}},
        stdout=True,
        stderr=True,
        remove=True,
    ).decode()

    assert "No space left on device" in output
    assert "exit=1" in output
    assert (full / "fill").stat().st_uid == MOP_UID
    assert spaces.usage("sp-1").used <= 32 * MB
    assert spaces.usage("sp-1").used > 30 * MB  # full: all of its size is used
    assert spaces.usage("sp-2").used < 12 * MB  # the other space is untouched (its overhead)
    (other / "more").write_bytes(b"x" * MB)
    assert (other / "keep").read_text() == "kept"


def test_a_checkpoint_is_read_only_and_frozen_in_time(spaces: BtrfsSpaces) -> None:
    tree = spaces.create("sp-1", 64 * MB)
    (tree / "db").write_text("v1")
    spaces.checkpoint("sp-1", "before")
    (tree / "db").write_text("v2")
    (tree / "new").write_text("later")

    seen = spaces.checkpoint_tree("sp-1", "before")

    assert (seen / "db").read_text() == "v1"
    assert not (seen / "new").exists()
    with pytest.raises(OSError, match="Read-only file system"):
        (seen / "db").write_text("v3")
    assert (tree / "db").read_text() == "v2"
    assert spaces.checkpoint_tree("sp-1", "before") == seen  # mounted once
    with pytest.raises(SpaceError, match="already has a checkpoint named 'before'"):
        spaces.checkpoint("sp-1", "before")

    spaces.delete_checkpoint("sp-1", "before")
    assert seen.parent not in mounted_points()
    with pytest.raises(SpaceError, match="has no checkpoint named 'before'"):
        spaces.checkpoint_tree("sp-1", "before")
    spaces.delete_checkpoint("sp-1", "before")  # missing is fine


def test_forks_from_live_and_from_a_checkpoint_diverge_from_the_source(
    spaces: BtrfsSpaces,
) -> None:
    tree = spaces.create("sp-1", 64 * MB)
    (tree / "db").write_text("v1")
    spaces.checkpoint("sp-1", "one")
    (tree / "db").write_text("v2")

    live_fork = spaces.fork("sp-1", None, "sp-2")
    old_fork = spaces.fork("sp-1", "one", "sp-3")

    assert (live_fork / "db").read_text() == "v2"
    assert (old_fork / "db").read_text() == "v1"
    assert live_fork.stat().st_uid == MOP_UID
    assert spaces.usage("sp-2").size == 64 * MB
    (live_fork / "db").write_text("fork")
    (old_fork / "db").write_text("old fork")
    (tree / "db").write_text("v3")
    assert (tree / "db").read_text() == "v3"
    assert (live_fork / "db").read_text() == "fork"
    assert (old_fork / "db").read_text() == "old fork"
    assert spaces.keys() == ["sp-1", "sp-2", "sp-3"]
    with pytest.raises(SpaceError, match="space sp-2 already exists"):
        spaces.fork("sp-1", None, "sp-2")


def test_destroy_removes_every_trace(spaces: BtrfsSpaces) -> None:
    tree = spaces.create("sp-1", 64 * MB)
    (tree / "f").write_text("x")
    spaces.checkpoint("sp-1", "c")
    spaces.checkpoint_tree("sp-1", "c")
    image = spaces.root / "pool" / "live" / "sp-1" / "disk.img"
    devices = loop_devices_of(image) + loop_devices_of(spaces.pool / "checkpoints/sp-1/c/disk.img")
    assert len(devices) == 2

    spaces.destroy("sp-1")

    assert mounts_under(spaces.root) == [spaces.pool]
    assert detached(devices)
    assert not (spaces.root / "mounts" / "sp-1").exists()
    assert not (spaces.root / "checkpoint-mounts" / "sp-1").exists()
    assert not (spaces.pool / "live" / "sp-1").exists()
    assert not (spaces.pool / "checkpoints" / "sp-1").exists()
    assert spaces.keys() == [] and not spaces.exists("sp-1")
    spaces.destroy("sp-1")  # missing is fine
    with pytest.raises(SpaceError, match="space sp-1 does not exist"):
        spaces.tree("sp-1")


def test_recover_after_a_reboot_brings_the_data_back(spaces: BtrfsSpaces) -> None:
    (spaces.create("sp-1", 64 * MB) / "a").write_text("first")
    (spaces.create("sp-2", 32 * MB) / "b").write_text("second")
    spaces.checkpoint("sp-1", "c")
    spaces.pool.joinpath("live", "sp-7.creating").touch()  # a create cut short
    spaces.unmount_all()  # what a reboot leaves: nothing mounted, no loop devices
    assert mounts_under(spaces.root) == []
    assert not loop_devices_of(spaces.pool_image)

    touched = spaces.recover()

    assert touched == ["sp-7", "sp-1", "sp-2"]  # sp-7 dropped, the others mounted
    assert not spaces.pool.joinpath("live", "sp-7.creating").exists()
    assert (spaces.tree("sp-1") / "a").read_text() == "first"
    assert (spaces.tree("sp-2") / "b").read_text() == "second"
    assert (spaces.checkpoint_tree("sp-1", "c") / "a").read_text() == "first"
    assert spaces.recover() == []
    spaces.unmount_all()
    # A tree asked for before recovery mounts its space.
    assert (spaces.tree("sp-2") / "b").read_text() == "second"


def test_a_space_left_frozen_is_thawed_by_recover_and_destroy(spaces: BtrfsSpaces) -> None:
    tree = spaces.create("sp-1", 32 * MB)
    spaces.create("sp-2", 32 * MB)
    devices = loop_devices_of(spaces.pool / "live" / "sp-2" / "disk.img")
    # What a process killed between fsfreeze -f and -u leaves behind.
    subprocess.run(["fsfreeze", "-f", str(tree.parent)], check=True)
    subprocess.run(["fsfreeze", "-f", str(spaces.root / "mounts" / "sp-2")], check=True)

    assert spaces.recover() == []
    # A write into a frozen filesystem waits: bounded, in a process of its own.
    write = ["timeout", "-s", "KILL", "10", "sh", "-c", f"echo again > {tree}/after"]
    assert subprocess.run(write, check=False).returncode == 0
    spaces.destroy("sp-2")

    assert devices and detached(devices)  # a frozen filesystem would outlive its unmount
    assert (tree / "after").read_text() == "again\n"


def test_a_half_made_space_is_dropped_by_recover(spaces: BtrfsSpaces) -> None:
    spaces.create("sp-1", 32 * MB)
    spaces.pool.joinpath("live", "sp-1.creating").touch()
    assert not spaces.exists("sp-1")

    assert spaces.recover() == ["sp-1"]

    assert not (spaces.pool / "live" / "sp-1").exists()
    assert mounts_under(spaces.root) == [spaces.pool]


def test_bad_names_sizes_and_sources_say_why(spaces: BtrfsSpaces) -> None:
    for key in ["../x", "sp-0", "sp-a", "space", ""]:
        with pytest.raises(SpaceError, match="invalid space key"):
            spaces.create(key, 32 * MB)
    with pytest.raises(SpaceError, match="at least 32 MB"):
        spaces.create("sp-1", MB)
    with pytest.raises(SpaceError, match="space sp-1 does not exist"):
        spaces.checkpoint("sp-1", "c")
    spaces.create("sp-1", 32 * MB)
    for name in ["../up", "Upper", ".hidden", "a/b", ""]:
        with pytest.raises(SpaceError, match="invalid checkpoint name"):
            spaces.checkpoint("sp-1", name)
    with pytest.raises(SpaceError, match="has no checkpoint named 'nope'"):
        spaces.fork("sp-1", "nope", "sp-2")
    with pytest.raises(SpaceError, match="space sp-5 does not exist"):
        spaces.fork("sp-5", None, "sp-6")
    with pytest.raises(SpaceError, match="already exists with a different size"):
        spaces.create("sp-1", 64 * MB)
    with pytest.raises(SpaceError, match="raise SLIPWAY_SPACES_POOL_SIZE"):
        spaces.create("sp-2", POOL)
    assert spaces.keys() == ["sp-1"]


def test_checkpoint_and_fork_stay_fast_with_data(spaces: BtrfsSpaces) -> None:
    tree = spaces.create("sp-1", 512 * MB)
    block = os.urandom(8 * MB)
    with open(tree / "data", "wb") as f:
        for _ in range(32):  # 256 MB
            f.write(block)

    started = time.monotonic()
    spaces.checkpoint("sp-1", "c")
    spaces.fork("sp-1", None, "sp-2")
    elapsed = time.monotonic() - started

    assert (spaces.tree("sp-2") / "data").stat().st_size == 256 * MB
    assert elapsed < 5  # snapshots, not copies: bench/spaces.py measures them against cp -a


def test_a_missing_mkfs_btrfs_names_the_package(
    spaces: BtrfsSpaces, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")

    with pytest.raises(SpaceError, match="mkfs.btrfs is not installed .install the btrfs-progs"):
        spaces.create("sp-1", 32 * MB)
    assert not spaces.pool_image.exists()


def test_server_up_recovers_spaces_and_teardown_leaves_no_mount() -> None:
    from tests.integration.platform import own_platform

    with own_platform() as platform:
        settings = platform.settings
        spaces = BtrfsSpaces(settings.spaces_dir, settings.spaces_pool_size)
        (spaces.create("sp-1", 64 * MB) / "a").write_text("kept")
        spaces.unmount_all()  # what a host restart leaves

        result = platform.server("up")

        assert result.returncode == 0, result.stderr
        assert spaces.pool in mounted_points()
        assert (spaces.root / "mounts" / "sp-1" / "tree" / "a").read_text() == "kept"
        data_dir = platform.data_dir
    assert not [p for p in mounted_points() if data_dir in p.parents]
    loops = subprocess.run(["losetup", "-a"], capture_output=True, text=True, check=True).stdout
    assert str(data_dir) not in loops
    assert not data_dir.exists()
