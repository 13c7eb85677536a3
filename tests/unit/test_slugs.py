"""Slugs: packed by GNU tar + zstd, unpacked into an instance volume, never written outside it."""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from slipway.services import layout


def build_output(root: Path) -> Path:
    """A build's OUTPUT: files, a nested dir, an executable, symlinks in and out, lost+found."""
    out = root / "output"
    (out / "lib" / "deep").mkdir(parents=True)
    (out / "lost+found").mkdir()
    (out / "index.js").write_text("console.log('hi')\n")
    (out / "lib" / "deep" / "data.txt").write_text("x" * 10_000)
    script = out / "run.sh"
    script.write_text("#!/bin/sh\necho run\n")
    script.chmod(0o755)
    (out / "current").symlink_to("lib/deep")
    (out / "python3").symlink_to("/usr/bin/python3")  # like a virtualenv's bin/python3
    return out


def test_a_slug_round_trips_with_modes_links_and_mop_as_owner(tmp_path: Path) -> None:
    slug = tmp_path / f"s{layout.SLUG_SUFFIX}"
    layout.pack_slug(build_output(tmp_path), slug)
    assert slug.read_bytes()[:4] == b"\x28\xb5\x2f\xfd"  # zstd's magic number
    assert not slug.with_name(slug.name + ".part").exists()

    target = tmp_path / "app"
    layout.unpack_slug(slug, target)
    assert (target / "index.js").read_text() == "console.log('hi')\n"
    assert (target / "lib" / "deep" / "data.txt").read_text() == "x" * 10_000
    assert os.access(target / "run.sh", os.X_OK)
    assert os.readlink(target / "current") == "lib/deep"
    assert os.readlink(target / "python3") == "/usr/bin/python3"
    assert not (target / "lost+found").exists()


def test_the_slug_stores_every_entry_as_mop(tmp_path: Path) -> None:
    slug = tmp_path / f"s{layout.SLUG_SUFFIX}"
    layout.pack_slug(build_output(tmp_path), slug)
    listing = subprocess.run(
        ["tar", "--list", "--verbose", "--numeric-owner", f"--file={slug}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    owners = {line.split()[1] for line in listing.splitlines()}
    assert owners == {f"{layout.MOP_UID}/{layout.MOP_GID}"}


def test_an_instance_volume_gets_the_tree_the_slug_and_supervisor_conf(tmp_path: Path) -> None:
    slug = tmp_path / f"s{layout.SLUG_SUFFIX}"
    layout.pack_slug(build_output(tmp_path), slug)
    root = tmp_path / "mnt"
    root.mkdir()
    layout.prepare_instance_volume(root, slug, "web", {"PORT": "5000"})
    assert sorted(p.name for p in root.iterdir()) == sorted([*layout.RUN_DIRS, "supervisor.conf"])
    assert (root / "app" / "index.js").is_file()
    assert "[program:web]" in (root / "supervisor.conf").read_text()


def test_slugs_of_older_releases_are_gzip_and_still_unpack(tmp_path: Path) -> None:
    old = tmp_path / "old.tar.gz"
    with tarfile.open(old, "w:gz") as tar:
        info = tarfile.TarInfo("index.html")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    layout.unpack_slug(old, tmp_path / "app")
    assert (tmp_path / "app" / "index.html").read_bytes() == b"hi"


def test_a_crafted_slug_writes_nothing_outside_its_directory(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    crafted = tmp_path / "crafted.tar"
    with tarfile.open(crafted, "w") as tar:
        for name, target in (("venv", str(outside)), ("rel", "../outside")):
            link = tarfile.TarInfo(name)
            link.type, link.linkname = tarfile.SYMTYPE, target
            tar.addfile(link)
        for name in ("venv/planted", "rel/planted", "../escaped"):
            info = tarfile.TarInfo(name)
            info.size = 1
            tar.addfile(info, io.BytesIO(b"x"))
    with pytest.raises(layout.SlugError, match="Could not unpack"):
        layout.unpack_slug(crafted, tmp_path / "app")
    assert list(outside.iterdir()) == []
    assert not (tmp_path / "escaped").exists()


def test_a_damaged_slug_is_a_clear_error(tmp_path: Path) -> None:
    slug = tmp_path / f"s{layout.SLUG_SUFFIX}"
    slug.write_bytes(b"\x28\xb5\x2f\xfd" + b"not really zstd")
    with pytest.raises(layout.SlugError, match="Could not unpack"):
        layout.unpack_slug(slug, tmp_path / "app")


def test_a_slug_comes_out_owned_by_mop_with_no_walk_over_it(tmp_path: Path) -> None:
    slug = tmp_path / f"s{layout.SLUG_SUFFIX}"
    layout.pack_slug(build_output(tmp_path), slug)
    root = tmp_path / "mnt"
    root.mkdir()
    layout.prepare_instance_volume(root, slug, "web", {"PORT": "5000"})
    owners = {(p.lstat().st_uid, p.lstat().st_gid) for p in [root, *root.rglob("*")]}
    assert owners == {(layout.MOP_UID, layout.MOP_GID)}
    assert oct((root / "supervisor.conf").stat().st_mode & 0o777) == "0o644"


def test_a_reused_volume_with_links_planted_by_its_app_is_not_written_through(
    tmp_path: Path,
) -> None:
    slug = tmp_path / f"s{layout.SLUG_SUFFIX}"
    layout.pack_slug(build_output(tmp_path), slug)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "host.conf").write_text("the host's\n")
    root = tmp_path / "mnt"
    root.mkdir()
    (root / "supervisor.conf").symlink_to(outside / "host.conf")
    layout.prepare_instance_volume(root, slug, "web", {"PORT": "5000"})
    assert not (root / "supervisor.conf").is_symlink()  # replaced, not written through
    assert (outside / "host.conf").read_text() == "the host's\n"

    again = tmp_path / "mnt2"
    again.mkdir()
    (again / "app").symlink_to(outside)
    with pytest.raises(OSError):
        layout.prepare_instance_volume(again, slug, "web", {"PORT": "5000"})
    assert sorted(p.name for p in outside.iterdir()) == ["host.conf"]


def test_packing_reads_the_tree_as_mop(tmp_path: Path) -> None:
    out = build_output(tmp_path)
    private = out / "private"
    private.write_text("root's only\n")
    private.chmod(0o600)  # root's, unreadable to mop: tar, as mop, cannot read it either
    with pytest.raises(layout.SlugError, match="Permission denied"):
        layout.pack_slug(out, tmp_path / f"s{layout.SLUG_SUFFIX}")
    assert not list(tmp_path.glob("s*"))
