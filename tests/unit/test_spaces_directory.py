"""The directory spaces provider: plain directories, copies for checkpoints and forks."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from slipway.appuser import MOP_UID
from slipway.config import Settings
from slipway.volumes.directory_spaces import DirectorySpaces
from slipway.volumes.spaces import SpaceError, get_space_provider

MB = 1024**2
APP_UID = MOP_UID if os.geteuid() == 0 else os.geteuid()


@pytest.fixture
def spaces(tmp_path: Path) -> DirectorySpaces:
    return DirectorySpaces(tmp_path / "spaces")


def test_the_setting_chooses_the_directory_provider(tmp_path: Path) -> None:
    provider = get_space_provider(Settings(data_dir=tmp_path, spaces_provider="directory"))

    assert isinstance(provider, DirectorySpaces)
    assert (provider.name, provider.copies) == ("directory", True)
    assert provider.root == (tmp_path / "spaces").resolve()


def test_unknown_provider_says_which_exist(tmp_path: Path) -> None:
    with pytest.raises(SpaceError, match="unknown spaces provider 'zfs': use btrfs or directory"):
        get_space_provider(Settings(data_dir=tmp_path, spaces_provider="zfs"))


def test_create_makes_an_empty_tree_of_the_app_user(spaces: DirectorySpaces) -> None:
    tree = spaces.create("sp-1", 64 * MB)

    assert tree == spaces.root / "dirs" / "sp-1" / "tree"
    assert list(tree.iterdir()) == []
    assert tree.stat().st_uid == APP_UID
    assert tree.stat().st_mode & 0o777 == 0o755
    assert spaces.exists("sp-1") and not spaces.exists("sp-2")
    assert spaces.tree("sp-1") == tree
    assert spaces.keys() == ["sp-1"]
    assert spaces.create("sp-1", 64 * MB) == tree  # a retried create finds it
    with pytest.raises(SpaceError, match="already exists with a different size"):
        spaces.create("sp-1", 32 * MB)


def test_usage_counts_the_tree_and_reports_the_recorded_size(spaces: DirectorySpaces) -> None:
    tree = spaces.create("sp-1", 64 * MB)
    (tree / "blob").write_bytes(b"x" * 300_000)
    os.chown(tree / "blob", APP_UID, APP_UID)

    usage = spaces.usage("sp-1")

    assert usage.size == 64 * MB
    assert 300_000 <= usage.used < 400_000


def test_a_checkpoint_is_a_copy_frozen_in_time(spaces: DirectorySpaces) -> None:
    tree = spaces.create("sp-1", 64 * MB)
    (tree / "db").write_text("v1")
    (tree / "sub").mkdir()
    (tree / "sub" / "f").write_text("deep")
    (tree / "link").symlink_to("/etc/hostname")

    spaces.checkpoint("sp-1", "before")
    (tree / "db").write_text("v2")

    seen = spaces.checkpoint_tree("sp-1", "before")
    assert (seen / "db").read_text() == "v1"
    assert (seen / "sub" / "f").read_text() == "deep"
    assert os.readlink(seen / "link") == "/etc/hostname"  # copied as a link, not followed
    assert seen.stat().st_uid == APP_UID
    with pytest.raises(SpaceError, match="already has a checkpoint named 'before'"):
        spaces.checkpoint("sp-1", "before")

    spaces.delete_checkpoint("sp-1", "before")
    with pytest.raises(SpaceError, match="has no checkpoint named 'before'"):
        spaces.checkpoint_tree("sp-1", "before")
    spaces.delete_checkpoint("sp-1", "before")  # missing is fine


def test_forks_from_live_and_from_a_checkpoint_diverge(spaces: DirectorySpaces) -> None:
    tree = spaces.create("sp-1", 64 * MB)
    (tree / "db").write_text("v1")
    spaces.checkpoint("sp-1", "one")
    (tree / "db").write_text("v2")

    live = spaces.fork("sp-1", None, "sp-2")
    old = spaces.fork("sp-1", "one", "sp-3")
    (live / "db").write_text("fork")

    assert (tree / "db").read_text() == "v2"
    assert (live / "db").read_text() == "fork"
    assert (old / "db").read_text() == "v1"
    assert spaces.usage("sp-3").size == 64 * MB
    assert spaces.keys() == ["sp-1", "sp-2", "sp-3"]
    with pytest.raises(SpaceError, match="space sp-2 already exists"):
        spaces.fork("sp-1", None, "sp-2")
    with pytest.raises(SpaceError, match="has no checkpoint named 'nope'"):
        spaces.fork("sp-1", "nope", "sp-4")
    assert not spaces.exists("sp-4")


def test_destroy_removes_the_space_and_its_checkpoints(spaces: DirectorySpaces) -> None:
    spaces.create("sp-1", 64 * MB)
    spaces.checkpoint("sp-1", "c")

    spaces.destroy("sp-1")

    assert not (spaces.root / "dirs" / "sp-1").exists()
    assert spaces.keys() == []
    spaces.destroy("sp-1")  # missing is fine
    with pytest.raises(SpaceError, match="space sp-1 does not exist"):
        spaces.tree("sp-1")


def test_recover_drops_half_made_spaces(spaces: DirectorySpaces) -> None:
    spaces.create("sp-1", 64 * MB)
    spaces.create("sp-2", 64 * MB)
    (spaces.root / "dirs" / "sp-2.creating").touch()

    assert spaces.recover() == ["sp-2"]

    assert spaces.keys() == ["sp-1"]
    assert not (spaces.root / "dirs" / "sp-2").exists()
    assert DirectorySpaces(spaces.root / "elsewhere").recover() == []


def test_bad_keys_names_and_sizes_say_why(spaces: DirectorySpaces) -> None:
    for key in ["../x", "sp-0", "sp-a", ""]:
        with pytest.raises(SpaceError, match="invalid space key"):
            spaces.create(key, 64 * MB)
    with pytest.raises(SpaceError, match="at least 32 MB"):
        spaces.create("sp-1", MB)
    with pytest.raises(SpaceError, match="space sp-1 does not exist"):
        spaces.checkpoint("sp-1", "c")
    spaces.create("sp-1", 64 * MB)
    for name in ["../up", "Upper", "a/b", ""]:
        with pytest.raises(SpaceError, match="invalid checkpoint name"):
            spaces.checkpoint("sp-1", name)
    assert spaces.keys() == ["sp-1"]
