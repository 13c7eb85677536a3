"""Packing the current directory into the `.tar.gz` that `slipway deploy` uploads."""

from __future__ import annotations

import os
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from slipway.cli.client import CliError
from slipway.cli.common import git
from slipway.cli.ignore import IgnoreRules

SLIPWAYIGNORE = ".slipwayignore"
ALWAYS_SKIPPED = {".git"}


def _in_git_tree(root: Path) -> bool:
    result = git(["rev-parse", "--is-inside-work-tree"], cwd=root)
    return result.returncode == 0 and result.stdout.strip() == "true"


def _git_files(root: Path) -> list[str]:
    """Tracked and untracked-but-not-ignored files under ``root``, relative to it."""
    result = git(["ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=root)
    if result.returncode != 0:
        raise CliError(f"git ls-files failed: {result.stderr.strip()}")
    names = sorted({n for n in result.stdout.split("\0") if n})
    # ls-files still lists tracked files deleted from the work tree.
    return [n for n in names if os.path.lexists(root / n)]


def _walk(root: Path, rules: IgnoreRules, with_gitignore: bool) -> Iterator[str]:
    """Files under ``root`` not ignored by the per-directory ignore files."""
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = Path(dirpath).relative_to(root).as_posix()
        base = "" if rel_dir == "." else rel_dir
        if with_gitignore:
            rules.add_file(Path(dirpath) / ".gitignore", base)
        rules.add_file(Path(dirpath) / SLIPWAYIGNORE, base)
        kept = []
        for d in sorted(dirnames):
            rel = f"{base}/{d}" if base else d
            is_link = os.path.islink(os.path.join(dirpath, d))
            if d in ALWAYS_SKIPPED or rules.is_ignored(rel, is_dir=not is_link):
                continue
            if is_link:  # a symlink to a directory is packed as a link, not followed
                yield rel
            else:
                kept.append(d)
        dirnames[:] = kept
        for f in sorted(filenames):
            rel = f"{base}/{f}" if base else f
            if not rules.is_ignored(rel):
                yield rel


def source_files(root: Path) -> list[str]:
    """What a deploy of ``root`` contains, honouring `.gitignore` and `.slipwayignore`."""
    if not _in_git_tree(root):
        return list(_walk(root, IgnoreRules(), with_gitignore=True))
    files = _git_files(root)
    rules = IgnoreRules()
    for name in files:
        if name == SLIPWAYIGNORE or name.endswith("/" + SLIPWAYIGNORE):
            base = name.rsplit("/", 1)[0] if "/" in name else ""
            rules.add_file(root / name, base)
    return [n for n in files if not rules.is_ignored(n)]


def _clean(info: tarfile.TarInfo) -> tarfile.TarInfo:
    # The owner on the developer's machine means nothing on the platform.
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def pack(root: Path, out: IO[bytes]) -> int:
    """Write a gzipped tarball of ``root``'s deployable files to ``out``; return the file count."""
    files = source_files(root)
    if not files:
        raise CliError(f"nothing to deploy: {root} has no files (after .gitignore/.slipwayignore)")
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for name in files:
            tar.add(root / name, arcname=name, recursive=False, filter=_clean)
    return len(files)
