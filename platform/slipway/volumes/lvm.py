"""LVM thin volumes in a configured pool: for hosts with device-mapper (production).

Each volume is a thin logical volume ``<vg>/<name>`` tagged ``slipway``, formatted ext4 and
mounted at ``root/<name>/``. A thin volume takes pool space only as it is written and can never
grow past its virtual size, which is the cap.
"""

from __future__ import annotations

import builtins
import json
import os
from collections.abc import Callable
from pathlib import Path

from slipway.volumes.base import Volume, VolumeError, VolumeUsage
from slipway.volumes.loopfile import (
    MKFS_OPTIONS,
    check_name,
    check_size,
    give_to_mop,
    locked,
    mounted_points,
    remove_mount_point,
    run_command,
)

TAG = "slipway"
MOUNT_OPTIONS = "nosuid,nodev,noatime"

Runner = Callable[[list[str], str], str]


class LvmProvider:
    """Volumes as thin LVs in ``vg/pool``, mounted under ``root``.

    ``run`` and ``mounts`` are the host seams (commands and the mount table); unit tests pass
    fakes to check the commands without device-mapper.
    """

    def __init__(
        self,
        root: Path,
        vg: str,
        pool: str,
        run: Runner = run_command,
        mounts: Callable[[], set[Path]] = mounted_points,
    ) -> None:
        self.root = root.resolve()
        self.vg = vg
        self.pool = pool
        self._run = run
        self._mounts = mounts

    def _device(self, name: str) -> str:
        return f"/dev/{self.vg}/{name}"

    def _marker(self, name: str) -> Path:
        return self.root / f"{name}.creating"

    def _mount_point(self, name: str) -> Path:
        return self.root / name

    # -- the protocol -----------------------------------------------------------------------

    def create(self, name: str, size: int) -> Volume:
        check_name(name)
        check_size(size)
        with locked(self.root):
            existing = self._lvs().get(name)
            if existing is not None and not self._marker(name).exists():
                if self._mount_point(name) not in self._mounts():
                    self._mount(name)
                return Volume(name, self._mount_point(name), int(existing["lv_size"]))
            self._discard(name)
            self._make(name, size)
            return Volume(name, self._mount_point(name), size)

    def get(self, name: str) -> Volume | None:
        check_name(name)
        if self._marker(name).exists() or self._mount_point(name) not in self._mounts():
            return None
        lv = self._lvs().get(name)
        return None if lv is None else Volume(name, self._mount_point(name), int(lv["lv_size"]))

    def destroy(self, name: str) -> None:
        check_name(name)
        with locked(self.root):
            self._discard(name)

    def usage(self, name: str) -> VolumeUsage:
        check_name(name)
        lv = self._lvs().get(name)
        volume = self.get(name)
        if lv is None or volume is None:
            raise VolumeError(f"volume {name!r} does not exist or is not mounted")
        fs = os.statvfs(volume.path)
        size = int(lv["lv_size"])
        allocated = int(size * float(lv.get("data_percent") or 0) / 100)
        return VolumeUsage((fs.f_blocks - fs.f_bfree) * fs.f_frsize, size, allocated)

    def list(self) -> list[Volume]:
        return [
            Volume(name, self._mount_point(name), int(lv["lv_size"]))
            for name, lv in sorted(self._lvs().items())
            if not self._marker(name).exists()
        ]

    def recover(self) -> builtins.list[str]:
        """Drop half-made volumes, unmount mounts whose LV is gone, remount the others."""
        if not self.root.is_dir():
            return []
        touched: list[str] = []
        with locked(self.root):
            for marker in sorted(self.root.glob("*.creating")):
                name = marker.name.removesuffix(".creating")
                self._discard(name)
                touched.append(name)
            lvs = self._lvs()
            mounted = self._mounts()
            for point in sorted(p for p in mounted if p.parent == self.root):
                if point.name not in lvs:
                    self._unmount(point)
                    remove_mount_point(point)
                    touched.append(point.name)
            for name in sorted(lvs):
                if self._mount_point(name) not in mounted:
                    self._mount(name)
                    touched.append(name)
        return touched

    # -- the steps --------------------------------------------------------------------------

    def _lvs(self) -> dict[str, dict[str, str]]:
        """Slipway's LVs in the volume group, by name, as ``lvs`` reports them."""
        out = self._run(
            [
                "lvs",
                "--reportformat",
                "json",
                "--units",
                "b",
                "--nosuffix",
                "-o",
                "lv_name,lv_size,data_percent,lv_tags",
                "--select",
                f"lv_tags={TAG}",
                self.vg,
            ],
            f"list the volumes of {self.vg}",
        )
        rows = json.loads(out or '{"report": [{"lv": []}]}')["report"][0]["lv"]
        return {row["lv_name"]: row for row in rows}

    def _make(self, name: str, size: int) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self._marker(name).touch()
        self._run(
            [
                "lvcreate",
                "-q",
                f"-V{size}b",
                "-T",
                f"{self.vg}/{self.pool}",
                "-n",
                name,
                "--addtag",
                TAG,
            ],
            f"create volume {name}",
        )
        self._run(["mkfs.ext4", *MKFS_OPTIONS, self._device(name)], f"format volume {name}")
        self._mount(name)
        give_to_mop(self._mount_point(name))
        self._marker(name).unlink()

    def _mount(self, name: str) -> None:
        point = self._mount_point(name)
        point.mkdir(parents=True, exist_ok=True)
        # After a reboot thin LVs may be inactive; activating an active one is a no-op.
        self._run(["lvchange", "-ay", f"{self.vg}/{name}"], f"activate volume {name}")
        self._run(
            ["mount", "-o", MOUNT_OPTIONS, self._device(name), str(point)],
            f"mount volume {name}",
        )

    def _unmount(self, point: Path) -> None:
        try:
            self._run(["umount", str(point)], f"unmount volume {point.name}")
        except VolumeError:
            self._run(["umount", "-l", str(point)], f"unmount volume {point.name}")

    def _discard(self, name: str) -> None:
        point = self._mount_point(name)
        if point in self._mounts():
            self._unmount(point)
        remove_mount_point(point)
        if name in self._lvs():
            self._run(["lvremove", "-f", f"{self.vg}/{name}"], f"remove volume {name}")
        self._marker(name).unlink(missing_ok=True)
