"""The LVM thin provider against a real thin pool on a loop device (needs device-mapper)."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from slipway.services.layout import MOP_UID
from slipway.volumes.loopfile import mounted_points
from slipway.volumes.lvm import LvmProvider

MB = 1024**2
REASON = "device-mapper thin provisioning is not available on this machine"


def _thin_available() -> bool:
    if os.geteuid() != 0 or not Path("/dev/mapper/control").exists():
        return False
    if shutil.which("dmsetup") is None or shutil.which("lvcreate") is None:
        return False
    targets = subprocess.run(["dmsetup", "targets"], capture_output=True, text=True, check=False)
    return targets.returncode == 0 and any(
        line.split()[0] == "thin" for line in targets.stdout.splitlines() if line.strip()
    )


pytestmark = [pytest.mark.slow, pytest.mark.skipif(not _thin_available(), reason=REASON)]


def _run(*args: str) -> str:
    return subprocess.run(list(args), capture_output=True, text=True, check=True).stdout


@pytest.fixture
def pool(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A throwaway volume group with a 256 MB thin pool on a loop-backed sparse file."""
    backing = tmp_path / "pv.img"
    with open(backing, "wb") as f:
        os.truncate(f.fileno(), 512 * MB)
    device = _run("losetup", "--find", "--show", str(backing)).strip()
    vg = f"slipwaytest{uuid.uuid4().hex[:8]}"
    try:
        _run("pvcreate", "-q", device)
        _run("vgcreate", "-q", vg, device)
        _run("lvcreate", "-q", "-L", "256m", "-T", f"{vg}/pool")
        yield vg, "pool"
    finally:
        subprocess.run(["vgremove", "-f", "-q", vg], check=False)
        subprocess.run(["pvremove", "-f", "-q", device], check=False)
        subprocess.run(["losetup", "-d", device], check=False)


def test_lvm_volume_lifecycle(tmp_path: Path, pool: tuple[str, str]) -> None:
    vg, thin = pool
    provider = LvmProvider(tmp_path / "volumes", vg, thin)

    volume = provider.create("build-1", 64 * MB)
    assert volume.path in mounted_points()
    assert volume.path.stat().st_uid == MOP_UID
    (volume.path / "data").write_bytes(b"x" * (8 * MB))
    os.sync()
    usage = provider.usage("build-1")
    assert usage.size >= 64 * MB
    assert usage.used >= 8 * MB
    assert 0 < usage.allocated < 64 * MB

    subprocess.run(["umount", str(volume.path)], check=True)
    assert provider.recover() == ["build-1"]
    assert (volume.path / "data").stat().st_size == 8 * MB

    provider.destroy("build-1")
    assert volume.path not in mounted_points()
    assert provider.list() == []
