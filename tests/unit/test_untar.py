"""safe_extract: nothing written outside the target, on any Python 3.11."""

from __future__ import annotations

import io
import stat
import tarfile
from pathlib import Path

import pytest

from slipway.services.errors import Invalid
from slipway.services.untar import safe_extract


def archive(*entries: tarfile.TarInfo | tuple[str, bytes]) -> tarfile.TarFile:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for entry in entries:
            if isinstance(entry, tuple):
                info = tarfile.TarInfo(entry[0])
                info.size = len(entry[1])
                info.mode = 0o4755 if entry[0].endswith(".suid") else 0o644
                tar.addfile(info, io.BytesIO(entry[1]))
            else:
                tar.addfile(entry)
    buffer.seek(0)
    return tarfile.open(fileobj=buffer)


def link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info


def test_files_directories_and_links_inside_are_extracted(tmp_path: Path) -> None:
    tar = archive(
        ("app/a.txt", b"hi"),
        link("app/b.txt", "a.txt"),
        link("app/c", "app/a.txt", tarfile.LNKTYPE),
    )
    safe_extract(tar, tmp_path / "out")
    assert (tmp_path / "out/app/a.txt").read_bytes() == b"hi"
    assert (tmp_path / "out/app/b.txt").read_bytes() == b"hi"
    assert (tmp_path / "out/app/c").read_bytes() == b"hi"


def test_rename_strips_a_top_directory_and_skips_what_maps_to_nothing(tmp_path: Path) -> None:
    tar = archive(("top/x", b"1"), ("top/sub/y", b"2"))
    safe_extract(tar, tmp_path, rename=lambda n: n.partition("/")[2])
    assert (tmp_path / "x").read_bytes() == b"1"
    assert (tmp_path / "sub/y").read_bytes() == b"2"


@pytest.mark.parametrize(
    "entry",
    [link("evil", "/etc/passwd"), link("evil", "../../x"), link("evil", "../x", tarfile.LNKTYPE)],
)
def test_links_leaving_the_target_are_refused(tmp_path: Path, entry: tarfile.TarInfo) -> None:
    with pytest.raises(Invalid):
        safe_extract(archive(entry), tmp_path / "out")
    assert not (tmp_path / "out" / "evil").exists()


def test_absolute_and_parent_paths_are_refused(tmp_path: Path) -> None:
    for name in ("/etc/x", "a/../../x"):
        with pytest.raises(Invalid, match="leaves its directory"):
            safe_extract(archive((name, b"x")), tmp_path / "out")
    assert not (tmp_path / "x").exists()


def test_devices_are_refused_and_set_user_id_bits_dropped(tmp_path: Path) -> None:
    device = tarfile.TarInfo("dev")
    device.type = tarfile.CHRTYPE
    with pytest.raises(Invalid, match="not allowed"):
        safe_extract(archive(device), tmp_path / "a")
    safe_extract(archive(("run.suid", b"#!/bin/sh\n")), tmp_path / "b")
    mode = (tmp_path / "b/run.suid").stat().st_mode
    assert not mode & stat.S_ISUID and mode & stat.S_IXUSR
