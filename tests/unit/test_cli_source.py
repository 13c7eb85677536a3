"""What `slipway deploy` packs: gitignore-style matching, with and without git."""

from __future__ import annotations

import io
import subprocess
import tarfile
from pathlib import Path

import pytest

from slipway.cli.client import CliError
from slipway.cli.ignore import IgnoreRules, parse_line
from slipway.cli.source import pack, source_files


def rules(*lines: str) -> IgnoreRules:
    return IgnoreRules([r for r in (parse_line(line) for line in lines) if r])


@pytest.mark.parametrize(
    ("patterns", "path", "is_dir", "ignored"),
    [
        (["*.log"], "debug.log", False, True),
        (["*.log"], "a/b/debug.log", False, True),
        (["*.log", "!keep.log"], "a/keep.log", False, False),
        (["/build"], "build", True, True),
        (["/build"], "src/build", True, False),
        (["build/"], "build", False, False),
        (["build/"], "x/build/out.o", False, True),
        (["docs/*.md"], "docs/a.md", False, True),
        (["docs/*.md"], "docs/sub/a.md", False, False),
        (["**/cache"], "a/b/cache", True, True),
        (["logs/**"], "logs/a/b.txt", False, True),
        (["a/**/z"], "a/b/c/z", False, True),
        (["a/**/z"], "a/z", False, True),
        (["file?.txt"], "file1.txt", False, True),
        (["file[0-9].txt"], "fileA.txt", False, False),
        (["# comment", ""], "# comment", False, False),
        (["\\#hash"], "#hash", False, True),
        (["node_modules/", "!node_modules/keep.js"], "node_modules/keep.js", False, True),
    ],
)
def test_gitignore_matching(patterns: list[str], path: str, is_dir: bool, ignored: bool) -> None:
    assert rules(*patterns).is_ignored(path, is_dir) is ignored


def write(root: Path, *names: str) -> None:
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(name)


def test_without_git_gitignore_and_slipwayignore_apply_per_directory(tmp_path: Path) -> None:
    write(tmp_path, "app.py", "tmp/x", "sub/a.pyc", "sub/b.py", "sub/secret", ".git/HEAD")
    (tmp_path / ".gitignore").write_text("*.pyc\n/tmp/\n")
    (tmp_path / "sub" / ".slipwayignore").write_text("secret\n")
    assert source_files(tmp_path) == [
        ".gitignore",
        "app.py",
        "sub/.slipwayignore",
        "sub/b.py",
    ]


def test_in_a_git_tree_untracked_files_count_unless_ignored(tmp_path: Path) -> None:
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True, timeout=60)
    write(tmp_path, "tracked.py", "new.py", "out.log", "private/key")
    (tmp_path / ".gitignore").write_text("*.log\n")
    (tmp_path / ".slipwayignore").write_text("private/\n")
    subprocess.run(["git", "add", "tracked.py"], cwd=tmp_path, check=True, timeout=60)
    (tmp_path / "gone.py").write_text("x")
    subprocess.run(["git", "add", "gone.py"], cwd=tmp_path, check=True, timeout=60)
    (tmp_path / "gone.py").unlink()  # tracked but deleted: not packed
    assert source_files(tmp_path) == [".gitignore", ".slipwayignore", "new.py", "tracked.py"]


def test_pack_writes_a_gzipped_tar_without_owner_names(tmp_path: Path) -> None:
    write(tmp_path, "app.py", "lib/util.py")
    (tmp_path / "run.sh").write_text("#!/bin/sh\n")
    (tmp_path / "run.sh").chmod(0o755)
    out = io.BytesIO()
    assert pack(tmp_path, out) == 3
    out.seek(0)
    with tarfile.open(fileobj=out, mode="r:gz") as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert sorted(members) == ["app.py", "lib/util.py", "run.sh"]
    assert members["run.sh"].mode & 0o111
    assert {m.uname for m in members.values()} == {""}


def test_pack_refuses_an_empty_directory(tmp_path: Path) -> None:
    with pytest.raises(CliError):
        pack(tmp_path, io.BytesIO())
