"""Fast tests of the volume providers: names, the directory provider, and LVM's commands."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from slipway.config import Settings
from slipway.services.layout import MOP_GID, MOP_UID
from slipway.volumes import get_volume_provider
from slipway.volumes.base import VolumeError
from slipway.volumes.directory import DirectoryProvider
from slipway.volumes.loopfile import LoopfileProvider, check_name, check_size
from slipway.volumes.lvm import LvmProvider

MB = 1024**2


@pytest.mark.parametrize("name", ["build-1", "app.web.1", "a", "0_x", "x" * 128])
def test_good_names(name: str) -> None:
    assert check_name(name) == name


@pytest.mark.parametrize(
    "name", ["", "../x", "a/b", "/abs", ".x", "-x", "Upper", "a..b", "x.img", "x.creating", "a b"]
)
def test_bad_names(name: str) -> None:
    with pytest.raises(VolumeError, match="invalid volume name"):
        check_name(name)


def test_tiny_sizes_are_refused() -> None:
    with pytest.raises(VolumeError, match="at least 16 MB"):
        check_size(MB)


def test_the_setting_picks_the_provider(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    assert isinstance(get_volume_provider(settings), LoopfileProvider)
    lvm = get_volume_provider(settings.with_overrides(volume_provider="lvm"))
    assert isinstance(lvm, LvmProvider)
    assert (lvm.vg, lvm.pool) == ("slipway", "pool")
    directory = get_volume_provider(settings.with_overrides(volume_provider="directory"))
    assert isinstance(directory, DirectoryProvider)
    with pytest.raises(VolumeError, match="unknown volume provider"):
        get_volume_provider(settings.with_overrides(volume_provider="zfs"))


# -- directory ------------------------------------------------------------------------------


def test_directory_provider_reports_but_does_not_enforce_the_size(tmp_path: Path) -> None:
    provider = DirectoryProvider(tmp_path / "volumes")
    volume = provider.create("dev", 16 * MB)
    (volume.path / "big").write_bytes(b"x" * (17 * MB))  # past the "cap": nothing stops it

    assert volume.size == 16 * MB
    assert provider.get("dev") == volume
    assert provider.list() == [volume]
    usage = provider.usage("dev")
    assert usage.size == 16 * MB
    assert usage.used >= 17 * MB
    if os.geteuid() == 0:
        assert (volume.path.stat().st_uid, volume.path.stat().st_gid) == (MOP_UID, MOP_GID)
    assert provider.recover() == []

    provider.destroy("dev")
    assert provider.get("dev") is None
    assert provider.list() == []
    with pytest.raises(VolumeError):
        provider.usage("dev")


# -- LVM with a fake host -------------------------------------------------------------------


class FakeHost:
    """Answers the commands LvmProvider runs, keeping LVs and mounts in memory."""

    def __init__(self) -> None:
        self.commands: list[list[str]] = []
        self.lvs: dict[str, int] = {}
        self.mounts: set[Path] = set()

    def run(self, args: list[str], what: str) -> str:
        self.commands.append(args)
        tool = args[0]
        if tool == "lvs":
            rows = [
                {"lv_name": n, "lv_size": str(s), "data_percent": "1.50", "lv_tags": "slipway"}
                for n, s in self.lvs.items()
            ]
            return json.dumps({"report": [{"lv": rows}]})
        if tool == "lvcreate":
            self.lvs[args[args.index("-n") + 1]] = int(args[2].removeprefix("-V").rstrip("b"))
        elif tool == "lvremove":
            del self.lvs[args[-1].split("/")[1]]
        elif tool == "mount":
            self.mounts.add(Path(args[-1]))
        elif tool == "umount":
            self.mounts.discard(Path(args[-1]))
        return ""

    def ran(self, tool: str) -> list[list[str]]:
        return [c for c in self.commands if c[0] == tool]


@pytest.fixture
def host() -> FakeHost:
    return FakeHost()


@pytest.fixture
def lvm(tmp_path: Path, host: FakeHost) -> LvmProvider:
    return LvmProvider(
        tmp_path / "volumes", "vg0", "thin", run=host.run, mounts=lambda: host.mounts
    )


def test_lvm_create_runs_lvcreate_mkfs_and_mount(lvm: LvmProvider, host: FakeHost) -> None:
    volume = lvm.create("build-1", 2048 * MB)

    assert host.ran("lvcreate") == [
        [
            "lvcreate",
            "-q",
            f"-V{2048 * MB}b",
            "-T",
            "vg0/thin",
            "-n",
            "build-1",
            "--addtag",
            "slipway",
        ]
    ]
    [mkfs] = host.ran("mkfs.ext4")
    assert mkfs[-1] == "/dev/vg0/build-1"
    assert "-m" in mkfs
    assert host.ran("mount") == [
        ["mount", "-o", "nosuid,nodev,noatime", "/dev/vg0/build-1", str(lvm.root / "build-1")]
    ]
    assert volume.path == lvm.root / "build-1"
    assert not (lvm.root / "build-1.creating").exists()
    assert lvm.get("build-1") == volume
    assert lvm.list() == [volume]


def test_lvm_usage_reads_lvs_json(lvm: LvmProvider, host: FakeHost) -> None:
    lvm.create("u", 1000 * MB)
    usage = lvm.usage("u")
    assert usage.size == 1000 * MB
    assert usage.allocated == int(1000 * MB * 1.5 / 100)
    lvs = host.ran("lvs")[-1]
    assert lvs[1:3] == ["--reportformat", "json"]
    assert lvs[-1] == "vg0"


def test_lvm_destroy_unmounts_then_removes(lvm: LvmProvider, host: FakeHost) -> None:
    lvm.create("gone", 64 * MB)
    host.commands.clear()

    lvm.destroy("gone")

    tools = [c[0] for c in host.commands if c[0] != "lvs"]
    assert tools == ["umount", "lvremove"]
    assert host.ran("lvremove") == [["lvremove", "-f", "vg0/gone"]]
    assert not (lvm.root / "gone").exists()
    assert lvm.get("gone") is None
    lvm.destroy("gone")  # a missing volume is fine


def test_lvm_recover(lvm: LvmProvider, host: FakeHost) -> None:
    lvm.create("unmounted", 64 * MB)
    host.mounts.clear()  # a reboot
    lvm.create("half", 64 * MB)
    (lvm.root / "half.creating").touch()  # as if the process died before it finished
    host.mounts.add(lvm.root / "orphan")  # a mount whose LV is gone
    (lvm.root / "orphan").mkdir()

    touched = lvm.recover()

    assert sorted(touched) == ["half", "orphan", "unmounted"]
    assert set(host.lvs) == {"unmounted"}
    assert host.mounts == {lvm.root / "unmounted"}
    assert not (lvm.root / "orphan").exists()


def test_lvm_errors_are_volume_errors(tmp_path: Path) -> None:
    def failing(args: list[str], what: str) -> str:
        if args[0] == "lvcreate":
            raise VolumeError(f"cannot {what}: Volume group vg0 has insufficient free space")
        return json.dumps({"report": [{"lv": []}]})

    provider = LvmProvider(tmp_path, "vg0", "thin", run=failing, mounts=set)
    with pytest.raises(VolumeError, match="cannot create volume x: Volume group"):
        provider.create("x", 64 * MB)
