"""The loopfile provider against real loop devices, ext4 and mounts (needs root)."""

from __future__ import annotations

import errno
import os
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import docker
import pytest

from slipway.runtime.base import MOP_USER
from slipway.services.layout import MOP_GID, MOP_UID
from slipway.volumes.base import VolumeError
from slipway.volumes.loopfile import LoopfileProvider, mounted_points

MB = 1024**2

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="loop mounts need root"),
]


@pytest.fixture
def provider(tmp_path: Path):
    provider = LoopfileProvider(tmp_path / "volumes")
    yield provider
    for volume in provider.list():
        provider.destroy(volume.name)
    for point in mounted_points():
        if provider.root in point.parents:
            subprocess.run(["umount", "-l", str(point)], check=False)


def loop_devices_of(image: Path) -> list[str]:
    out = subprocess.run(
        ["losetup", "-j", str(image)], capture_output=True, text=True, check=True
    ).stdout
    return [line.split(":", 1)[0] for line in out.splitlines()]


def fill(path: Path, limit: int) -> int:
    """Write 1 MB chunks until the disk is full or ``limit`` bytes; return the errno (0 if none)."""
    chunk = b"x" * MB
    written = 0
    try:
        with open(path, "wb") as f:
            while written < limit:
                f.write(chunk)
                f.flush()
                os.fsync(f.fileno())
                written += len(chunk)
    except OSError as exc:
        return exc.errno or -1
    return 0


def test_create_mounts_an_empty_volume_owned_by_mop(provider: LoopfileProvider) -> None:
    volume = provider.create("build-1", 64 * MB)

    assert volume.path == provider.root / "build-1"
    assert volume.path in mounted_points()
    assert volume.size == 64 * MB
    st = volume.path.stat()
    assert (st.st_uid, st.st_gid) == (MOP_UID, MOP_GID)
    assert list(volume.path.iterdir()) == []  # lost+found removed
    assert provider.get("build-1") == volume
    assert provider.list() == [volume]
    assert loop_devices_of(provider.root / "build-1.img")


def test_create_twice_returns_the_same_volume(provider: LoopfileProvider) -> None:
    first = provider.create("again", 32 * MB)
    (first.path / "keep").write_text("kept")

    assert provider.create("again", 32 * MB) == first
    assert (first.path / "keep").read_text() == "kept"
    with pytest.raises(VolumeError, match="different size"):
        provider.create("again", 64 * MB)


def test_the_file_is_sparse_and_grows_on_write(provider: LoopfileProvider) -> None:
    volume = provider.create("thin", 2048 * MB)
    before = provider.usage("thin")
    assert before.size == 2048 * MB
    assert before.allocated < 64 * MB  # metadata only, not the 2 GB cap

    (volume.path / "data").write_bytes(os.urandom(20 * MB))
    os.sync()
    after = provider.usage("thin")
    assert after.used >= before.used + 20 * MB
    assert after.allocated >= before.allocated + 20 * MB
    assert after.allocated < 128 * MB


def test_writing_past_the_cap_fails_with_no_space(provider: LoopfileProvider) -> None:
    outside = provider.root.parent / "outside.txt"
    outside.write_text("untouched")
    volume = provider.create("small", 32 * MB)
    image = provider.root / "small.img"
    neighbours = sorted(p.name for p in provider.root.iterdir())

    assert fill(volume.path / "big", 100 * MB) == errno.ENOSPC

    os.sync()
    assert image.stat().st_size == 32 * MB
    assert image.stat().st_blocks * 512 <= 33 * MB
    assert sorted(p.name for p in provider.root.iterdir()) == neighbours
    assert outside.read_text() == "untouched"
    assert provider.usage("small").used <= 32 * MB


def test_destroy_leaves_nothing(provider: LoopfileProvider) -> None:
    volume = provider.create("gone", 32 * MB)
    image = provider.root / "gone.img"
    assert len(loop_devices_of(image)) == 1
    (volume.path / "file").write_text("data")

    provider.destroy("gone")

    assert volume.path not in mounted_points()
    assert not volume.path.exists()
    assert not image.exists()
    assert (
        str(image)
        not in subprocess.run(["losetup", "-a"], capture_output=True, text=True, check=True).stdout
    )
    assert provider.get("gone") is None
    assert provider.list() == []
    provider.destroy("gone")  # a missing volume is fine


def test_destroy_of_a_busy_volume_detaches_lazily(provider: LoopfileProvider) -> None:
    volume = provider.create("busy", 32 * MB)
    with open(volume.path / "held", "w") as held:
        held.write("open while destroyed")
        provider.destroy("busy")
        assert volume.path not in mounted_points()
    assert not (provider.root / "busy.img").exists()


def test_recover_remounts_after_a_crash(provider: LoopfileProvider) -> None:
    volume = provider.create("crashed", 32 * MB)
    (volume.path / "state").write_text("survives")
    subprocess.run(["umount", str(volume.path)], check=True)  # behind the provider's back
    assert provider.get("crashed") is None

    assert provider.recover() == ["crashed"]

    assert provider.get("crashed") == volume
    assert (volume.path / "state").read_text() == "survives"
    assert provider.recover() == []  # nothing left to do


def test_recover_removes_half_made_volumes(provider: LoopfileProvider) -> None:
    provider.create("whole", 32 * MB)
    # What a crash between truncate and mkfs leaves behind.
    (provider.root / "half.creating").touch()
    with open(provider.root / "half.img", "wb") as f:
        os.truncate(f.fileno(), 32 * MB)
    (provider.root / "half").mkdir()

    assert provider.recover() == ["half"]

    assert not (provider.root / "half.img").exists()
    assert not (provider.root / "half").exists()
    assert not (provider.root / "half.creating").exists()
    assert [v.name for v in provider.list()] == ["whole"]


def test_recover_unmounts_a_volume_whose_image_is_gone(provider: LoopfileProvider) -> None:
    volume = provider.create("orphan", 32 * MB)
    (provider.root / "orphan.img").unlink()  # the loop device keeps the inode alive

    assert provider.recover() == ["orphan"]

    assert volume.path not in mounted_points()
    assert not volume.path.exists()


def test_many_volumes_at_once(provider: LoopfileProvider) -> None:
    names = [f"many-{i}" for i in range(12)]  # more than the 8 loop devices a host starts with
    with ThreadPoolExecutor(max_workers=6) as pool:
        volumes = list(pool.map(lambda n: provider.create(n, 32 * MB), names))

    mounted = mounted_points()
    assert all(v.path in mounted for v in volumes)
    devices = {d for n in names for d in loop_devices_of(provider.root / f"{n}.img")}
    assert len(devices) == len(names)
    for v in volumes:
        (v.path / "name").write_text(v.name)
    assert all((v.path / "name").read_text() == v.name for v in volumes)

    with ThreadPoolExecutor(max_workers=6) as pool:
        list(pool.map(provider.destroy, names))
    assert provider.list() == []
    assert not any(provider.root in p.parents for p in mounted_points())


def test_invalid_names_are_refused(provider: LoopfileProvider) -> None:
    for name in ["../escape", "a/b", "", ".hidden", "Upper", "x..y", "v.img"]:
        with pytest.raises(VolumeError, match="invalid volume name"):
            provider.create(name, 32 * MB)
    assert not provider.root.exists() or provider.list() == []


# -- inside a container ---------------------------------------------------------------------


def _test_image(client: docker.DockerClient) -> str:
    """The base image (built by ``slipway server images build``), waited for a bounded time."""
    deadline = time.monotonic() + 10 * 60  # within the per-test timeout
    while True:
        for name in ("slipway/base:latest", "slipway-test/base:latest"):
            try:
                client.images.get(name)
                return name
            except docker.errors.ImageNotFound:
                pass
        if time.monotonic() > deadline:
            pytest.fail("no slipway/base:latest image: run `slipway server images build`")
        time.sleep(10)


def test_a_full_volume_says_no_space_inside_a_container(provider: LoopfileProvider) -> None:
    client = docker.from_env()
    image = _test_image(client)
    volume = provider.create("in-container", 32 * MB)

    output = client.containers.run(
        image,
        ["sh", "-c", "dd if=/dev/zero of=/mnt/out/fill bs=1M count=100; echo exit=$?"],
        user=MOP_USER,
        read_only=True,
        cap_drop=["ALL"],
        security_opt=["no-new-privileges"],
        network_disabled=True,
        volumes={str(volume.path): {"bind": "/mnt/out", "mode": "rw"}},
        stdout=True,
        stderr=True,
        remove=True,
    ).decode()

    assert "No space left on device" in output
    assert "exit=1" in output
    assert (provider.root / "in-container.img").stat().st_size == 32 * MB
    assert provider.usage("in-container").used <= 32 * MB
