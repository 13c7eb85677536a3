"""slipway.beneath: nothing is reached through a link, above the root or on another filesystem.

Every test runs twice: with the kernel's openat2, and with the component-by-component walk used
where openat2 is missing.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from slipway import beneath


@pytest.fixture(params=["openat2", "walk"], autouse=True)
def lookup(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setattr(beneath, "_have_openat2", None if request.param == "openat2" else False)
    return str(request.param)


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "secret").write_text("secret\n")
    return folder


@pytest.fixture
def tree(tmp_path: Path, outside: Path) -> Path:
    """A tree an app controls: files, a directory, and links out, up and inside."""
    root = tmp_path / "tree"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "file").write_text("inside\n")
    (root / "big").write_bytes(b"x" * 5000)
    (root / "abs").symlink_to(outside)
    (root / "up").symlink_to("..")
    (root / "here").symlink_to(".")
    (root / "inner").symlink_to("sub")
    (root / "leaf").symlink_to("sub/file")
    (root / "secret").symlink_to(outside / "secret")
    os.mkfifo(root / "fifo")
    return root


@pytest.fixture
def root_fd(tree: Path) -> Iterator[int]:
    with beneath.opened(beneath.open_root(tree)) as fd:
        yield fd


LINKED = ["abs/secret", "up/outside/secret", "here/sub/file", "inner/file", "leaf", "secret"]


def test_files_beneath_the_root_are_read(root_fd: int, lookup: str) -> None:
    assert beneath.read_small(root_fd, "sub/file", 100) == b"inside\n"
    assert beneath.read_small(root_fd, "./sub//file", 100) == b"inside\n"
    assert beneath._have_openat2 is (lookup == "openat2")


@pytest.mark.parametrize("path", LINKED)
def test_no_link_is_followed_wherever_it_points(root_fd: int, path: str) -> None:
    with pytest.raises(beneath.Refused):
        beneath.read_small(root_fd, path, 100)
    assert not beneath.is_regular(root_fd, path)


@pytest.mark.parametrize("path", ["/etc/passwd", "../outside/secret", "sub/../../outside/secret"])
def test_absolute_paths_and_going_up_are_refused(root_fd: int, path: str) -> None:
    with pytest.raises(beneath.Refused):
        beneath.open_beneath(root_fd, path, os.O_RDONLY)


def test_other_filesystems_are_not_entered(lookup: str) -> None:
    with beneath.opened(beneath.open_root("/")) as root:
        assert beneath.is_regular(root, "etc/hostname") or Path("/etc/hostname").is_symlink()
        with pytest.raises(beneath.Refused) as refused:
            beneath.open_dir(root, "proc/self")  # /proc is a mount of its own
        assert refused.value.errno in (errno.EXDEV, errno.ELOOP)


def test_only_small_regular_files_are_read(root_fd: int) -> None:
    with pytest.raises(beneath.Refused) as too_big:
        beneath.read_small(root_fd, "big", 4999)
    assert too_big.value.errno == errno.EFBIG
    assert len(beneath.read_small(root_fd, "big", 5000)) == 5000
    for path in ("fifo", "sub"):  # a fifo is refused at once, never waited on
        with pytest.raises(beneath.Refused):
            beneath.read_small(root_fd, path, 100)
    with pytest.raises(FileNotFoundError):
        beneath.read_small(root_fd, "missing", 100)


def test_directories_are_listed_only_beneath(root_fd: int) -> None:
    assert beneath.list_dir(root_fd, "sub") == ["file"]
    assert "big" in beneath.list_dir(root_fd, "")
    for path in ("abs", "inner", "up", "here/sub"):
        with pytest.raises(beneath.Refused):
            beneath.list_dir(root_fd, path)


def test_unlink_removes_the_link_itself_and_never_through_one(
    root_fd: int, tree: Path, outside: Path
) -> None:
    beneath.unlink(root_fd, "secret")
    assert not os.path.lexists(tree / "secret") and (outside / "secret").exists()
    for path in ("abs/secret", "up/outside/secret", "inner/file"):
        with pytest.raises(beneath.Refused):
            beneath.unlink(root_fd, path)
    assert (outside / "secret").exists() and (tree / "sub" / "file").exists()


def test_make_dirs_sets_mode_and_owner_and_refuses_links(
    root_fd: int, tree: Path, outside: Path
) -> None:
    with beneath.opened(beneath.make_dirs(root_fd, "a/b/c", 0o750, (4321, 4322))):
        pass
    made = tree / "a" / "b" / "c"
    assert stat.S_IMODE(made.stat().st_mode) == 0o750
    assert (made.stat().st_uid, made.stat().st_gid) == (4321, 4322)
    with beneath.opened(beneath.make_dirs(root_fd, "sub", 0o700, (4321, 4322))):
        pass
    assert (tree / "sub").stat().st_uid == 0  # an existing directory is only entered
    for path in ("abs/new", "up/new", "inner/new", "leaf/new"):
        with pytest.raises(beneath.Refused):
            beneath.make_dirs(root_fd, path)
    assert sorted(os.listdir(outside)) == ["secret"]


def test_write_new_never_replaces_or_follows(root_fd: int, tree: Path, outside: Path) -> None:
    beneath.write_new(root_fd, "sub/conf", b"[x]\n", 0o640, (4321, 4322))
    conf = (tree / "sub" / "conf").stat()
    assert (stat.S_IMODE(conf.st_mode), conf.st_uid) == (0o640, 4321)
    with pytest.raises(FileExistsError):
        beneath.write_new(root_fd, "sub/conf", b"again")
    with pytest.raises(FileExistsError):
        beneath.write_new(root_fd, "secret", b"through the link?")
    with pytest.raises(beneath.Refused):
        beneath.write_new(root_fd, "abs/planted", b"x")
    assert (outside / "secret").read_text() == "secret\n"
    assert sorted(os.listdir(outside)) == ["secret"]
