"""safe_extract: entries are made through directory descriptors, and no link is ever followed.

Every test that attacks also checks that nothing outside the target changed: ``outside`` is a
directory next to the target with a file in it, recorded before and compared after.
"""

from __future__ import annotations

import errno
import io
import os
import stat
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from slipway.services import archives, untar
from slipway.services.errors import Invalid, TooLarge
from slipway.services.stacks import Unrecognised, detect_stack
from slipway.services.untar import safe_extract

CHAIN = 8  # e1 -> d/.., e2 -> e1/.. ...: e8 resolves to / from any depth up to 8


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


def directory(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode = tarfile.DIRTYPE, 0o755
    return info


def chain() -> list[tarfile.TarInfo]:
    """``d -> .``, ``e1 -> d/..``, … ``e8 -> e7/..``: text checks pass it, it resolves to ``/``."""
    links = [link("d", "."), link("e1", "d/..")]
    links += [link(f"e{n}", f"e{n - 1}/..") for n in range(2, CHAIN + 1)]
    return links


def snapshot(top: Path, skip: Path) -> dict[str, tuple[int, int, int, bytes]]:
    """Every path under ``top`` but ``skip``: kind and mode, owner, content (or link target)."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames[:] = [d for d in dirnames if Path(dirpath, d) != skip]
        for name in [*dirnames, *filenames, "."]:
            path = Path(dirpath, name)
            st = path.lstat()
            if stat.S_ISREG(st.st_mode):
                body = path.read_bytes()
            elif stat.S_ISLNK(st.st_mode):
                body = os.readlink(path).encode()
            else:
                body = b""
            found[str(path)] = (st.st_mode, st.st_uid, st.st_mtime_ns, body)
    return found


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A directory the archive must never touch, holding a file it would love to read."""
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "secret").write_text("secret-outside\n")
    (folder / "secret").chmod(0o600)
    return folder


@pytest.fixture
def target(tmp_path: Path, outside: Path) -> Iterator[Path]:
    """The extraction target; after the test, everything but it is as it was."""
    out = tmp_path / "out"
    before = snapshot(outside, out), sorted(os.listdir(tmp_path))
    yield out
    after = snapshot(outside, out), sorted(set(os.listdir(tmp_path)) - {"out"})
    assert after == before, "something outside the target changed"


# ----------------------------------------------------------------------------- what works


def test_files_directories_and_links_inside_are_extracted(target: Path) -> None:
    tar = archive(
        ("app/a.txt", b"hi"),
        link("app/b.txt", "a.txt"),
        link("app/c", "app/a.txt", tarfile.LNKTYPE),
    )
    safe_extract(tar, target)
    assert (target / "app/a.txt").read_bytes() == b"hi"
    assert (target / "app/b.txt").read_bytes() == b"hi"
    assert (target / "app/c").read_bytes() == b"hi"
    assert not (target / "app/c").is_symlink() and (target / "app/c").stat().st_nlink == 1


def test_rename_strips_a_top_directory_and_skips_what_maps_to_nothing(target: Path) -> None:
    tar = archive(("top/x", b"1"), ("top/sub/y", b"2"), link("top/z", "top/x", tarfile.LNKTYPE))
    safe_extract(tar, target, rename=lambda n: n.partition("/")[2])
    assert (target / "x").read_bytes() == b"1"
    assert (target / "sub/y").read_bytes() == b"2"
    assert (target / "z").read_bytes() == b"1"


def test_everything_is_owned_by_the_owner_from_the_start(target: Path) -> None:
    tar = archive(directory("d"), ("d/f", b"x"), link("d/l", "f"), ("deep/er/g", b"y"))
    safe_extract(tar, target, owner=(4321, 4322))
    paths = [target, *target.rglob("*")]
    assert len(paths) == 7
    assert {(p.lstat().st_uid, p.lstat().st_gid) for p in paths} == {(4321, 4322)}


def test_devices_are_refused_and_set_user_id_bits_dropped(tmp_path: Path) -> None:
    device = tarfile.TarInfo("dev")
    device.type = tarfile.CHRTYPE
    with pytest.raises(Invalid, match="not allowed"):
        safe_extract(archive(device), tmp_path / "a")
    fifo = tarfile.TarInfo("fifo")
    fifo.type = tarfile.FIFOTYPE
    with pytest.raises(Invalid, match="not allowed"):
        safe_extract(archive(fifo), tmp_path / "a")
    assert not (tmp_path / "a" / "dev").exists() and not (tmp_path / "a" / "fifo").exists()
    safe_extract(archive(("run.suid", b"#!/bin/sh\n")), tmp_path / "b")
    mode = (tmp_path / "b/run.suid").stat().st_mode
    assert not mode & stat.S_ISUID and mode & stat.S_IXUSR


def test_links_pointing_anywhere_are_made_as_links_and_never_followed(
    target: Path, outside: Path
) -> None:
    tar = archive(link("abs", str(outside / "secret")), link("up", "../outside"), link("root", "/"))
    safe_extract(tar, target)
    assert os.readlink(target / "abs") == str(outside / "secret")
    assert os.readlink(target / "up") == "../outside"
    assert os.readlink(target / "root") == "/"


def test_a_later_entry_of_the_same_name_replaces_the_earlier_one(
    target: Path, outside: Path
) -> None:
    tar = archive(
        ("a", b"first"),
        ("a", b"second"),
        link("b", str(outside / "secret")),
        ("b", b"a file now"),  # replaces the link: never written through it
        ("c", b"a file"),
        link("c", "a"),
    )
    safe_extract(tar, target)
    assert (target / "a").read_bytes() == b"second"
    assert (target / "b").read_bytes() == b"a file now" and not (target / "b").is_symlink()
    assert os.readlink(target / "c") == "a"


# ----------------------------------------------------------------------------- attacks


def test_the_chain_of_links_that_resolves_to_the_root_writes_nothing_outside(
    target: Path, outside: Path
) -> None:
    through = f"e{CHAIN}{outside}"  # e8/<tmp>/outside: the host's path, through the chain
    attacks: list[tuple[tarfile.TarInfo | tuple[str, bytes], str]] = [
        ((f"{through}/planted", b"x"), "symbolic link or a file"),
        ((f"{through}/secret", b"overwritten"), "symbolic link"),
        (directory(f"{through}/newdir"), "symbolic link"),
        (directory(through), "symbolic link"),  # would chmod the host's directory
        (link(f"{through}/l", "/"), "symbolic link"),
        (link("copy", f"{through}/secret", tarfile.LNKTYPE), "hard link to a missing file"),
    ]
    for entry, words in attacks:
        out = target / "case"
        with pytest.raises(Invalid, match=words):
            safe_extract(archive(*chain(), entry), out)
    assert sorted(os.listdir(outside)) == ["secret"]


def test_an_absolute_link_then_a_file_through_it_is_refused(target: Path, outside: Path) -> None:
    tar = archive(link("abs", str(outside)), ("abs/planted", b"x"))
    with pytest.raises(Invalid, match="symbolic link or a file: abs/planted"):
        safe_extract(tar, target)


@pytest.mark.parametrize("pointing", ["..", "../outside", ".", "sub", "sub/../sub"])
def test_nothing_is_written_through_a_link_even_one_that_stays_inside(
    target: Path, pointing: str
) -> None:
    tar = archive(directory("sub"), link("up", pointing), ("up/file", b"x"))
    with pytest.raises(Invalid, match="symbolic link or a file: up/file"):
        safe_extract(tar, target)
    assert not (target / "sub" / "file").exists()


def test_a_directory_replaced_by_a_link_by_a_later_entry_is_refused(
    target: Path, outside: Path
) -> None:
    tar = archive(directory("d"), ("d/a", b"x"), link("d", str(outside)), ("d/b", b"y"))
    with pytest.raises(Invalid, match="where it already has a directory: d"):
        safe_extract(tar, target)


def test_a_directory_entry_over_a_file_or_a_link_is_refused(target: Path, outside: Path) -> None:
    with pytest.raises(Invalid, match="symbolic link or a file"):
        safe_extract(archive(("f", b"x"), directory("f")), target / "a")
    with pytest.raises(Invalid, match="symbolic link or a file"):
        safe_extract(archive(link("l", str(outside)), directory("l")), target / "b")
    assert stat.S_IMODE(outside.stat().st_mode) != 0o777


@pytest.mark.parametrize(
    "entries",
    [
        [link("s", "/etc/passwd"), link("h", "s", tarfile.LNKTYPE)],  # to a symlink
        [link("s", "real"), ("real", b"x"), link("h", "s", tarfile.LNKTYPE)],  # even inside
        [link("l", "/etc"), link("h", "l/passwd", tarfile.LNKTYPE)],  # through a link
        [link("l", "."), ("f", b"x"), link("h", "l/f", tarfile.LNKTYPE)],  # through one inside
        [directory("dir"), link("h", "dir", tarfile.LNKTYPE)],  # to a directory
        [link("h", "missing", tarfile.LNKTYPE)],
        [link("h", "../outside/secret", tarfile.LNKTYPE)],
        [link("h", "/etc/passwd", tarfile.LNKTYPE)],
    ],
)
def test_hard_links_only_copy_regular_files_of_the_archive(
    target: Path, entries: list[tarfile.TarInfo | tuple[str, bytes]]
) -> None:
    with pytest.raises(Invalid, match="hard link to a missing file: h"):
        safe_extract(archive(*entries), target)
    assert not os.path.lexists(target / "h")


def test_a_link_already_on_disk_is_not_written_through(target: Path, outside: Path) -> None:
    target.mkdir()
    (target / "sub").symlink_to(outside)
    (target / "sneaky").symlink_to(outside / "secret")
    with pytest.raises(Invalid, match="symbolic link or a file: sub/planted"):
        safe_extract(archive(("sub/planted", b"x")), target)
    with pytest.raises(Invalid, match="symbolic link or a file"):
        safe_extract(archive(directory("sub")), target)
    safe_extract(archive(("sneaky", b"replaced")), target)  # the link is replaced, not followed
    assert (target / "sneaky").read_bytes() == b"replaced"


class SwapsBetweenEntries:
    """A tar whose iteration runs ``swap`` on disk after the entry named ``after``."""

    def __init__(self, tar: tarfile.TarFile, after: str, swap: Callable[[], None]) -> None:
        self.tar, self.after, self.swap = tar, after, swap

    def __iter__(self) -> Iterator[tarfile.TarInfo]:
        for member in self.tar:
            yield member
            if member.name == self.after:
                self.swap()

    def extractfile(self, member: tarfile.TarInfo) -> io.BufferedReader | None:
        return self.tar.extractfile(member)  # type: ignore[return-value]


def test_a_link_swapped_in_on_disk_after_the_start_is_not_followed(
    target: Path, outside: Path
) -> None:
    def swap() -> None:  # what a racing process would do between two entries
        os.rename(target / "d", target / "d.old")
        (target / "d").symlink_to(outside)

    tar = archive(directory("d"), ("d/a", b"1"), ("d/b", b"2"))
    racing = SwapsBetweenEntries(tar, "d/a", swap)
    with pytest.raises(Invalid, match="symbolic link or a file: d/b"):
        safe_extract(racing, target)  # type: ignore[arg-type]
    assert (target / "d.old" / "a").read_bytes() == b"1"


def test_paths_that_leave_are_refused(target: Path) -> None:
    for name in ("/etc/x", "a/../../x", "../x"):
        with pytest.raises(Invalid, match="leaves its directory"):
            safe_extract(archive((name, b"x")), target)


def test_a_full_filesystem_is_reported_as_such(
    target: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(fd: int, data: bytes) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(untar, "_write_all", full)
    with pytest.raises(untar.NoSpace) as raised:
        safe_extract(archive(("a", b"x")), target)
    assert isinstance(raised.value, TooLarge)


def test_a_full_volume_is_not_called_a_bad_archive(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "out"
    upload = tmp_path / "a.tar.gz"
    with tarfile.open(upload, "w:gz") as tar:
        info = tarfile.TarInfo("index.html")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))

    def full(fd: int, data: bytes) -> None:
        raise OSError(errno.EDQUOT, os.strerror(errno.EDQUOT))

    monkeypatch.setattr(untar, "_write_all", full)
    with pytest.raises(untar.NoSpace):
        archives.extract_archive(upload, target)


def test_procfile_app_json_and_stack_markers_that_are_links_are_never_read(
    target: Path, outside: Path
) -> None:
    tar = archive(
        *chain(),
        link("Procfile", f"e{CHAIN}{outside}/secret"),
        link("app.json", "../outside/secret"),
        link("package.json", str(outside / "secret")),
    )
    safe_extract(tar, target)
    for read in (archives.read_procfile, archives.read_app_json):
        with pytest.raises(Invalid, match="must be a regular file, not a link") as refused:
            read(target)
        assert "secret-outside" not in str(refused.value)
    with pytest.raises(Unrecognised) as unrecognised:  # the links are named, never followed
        detect_stack(target)
    assert "found Procfile (not a regular file), package.json (not a regular file)" in str(
        unrecognised.value
    )
    assert "secret" not in str(unrecognised.value)
