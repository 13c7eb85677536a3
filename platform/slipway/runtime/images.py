"""Build the tree of images under ``images/`` with the Docker SDK: no registry, no CLI, no BuildKit.

Each folder is one image, ``<prefix><folder>``. ``base`` is special: its ``build-rootfs.sh`` makes
a Debian rootfs tarball that is imported with the instructions listed in ``base/changes``; so is
any other folder with a ``build-rootfs.sh`` (``base-trixie``: the same rootfs of another suite).
Every other folder has a Dockerfile whose ``FROM slipway/<parent>`` names its parent. A folder may
list files from elsewhere in the repository in ``extra-files`` (one path per line, relative to the
repository root); they are copied into the build context at the same relative path.

Every image is tagged ``:latest`` and with a *content tag*: a hash of its folder, its extra
files, mop's uid (``SLIPWAY_APP_UID``, given to ``build-rootfs.sh``) and its parent's content
tag. An image whose content tag exists is not built again; a new uid builds the whole tree anew.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import docker.errors

from slipway.appuser import MOP_UID
from slipway.runtime.base import RuntimeUnavailable

BASE = "base"
LABEL_IMAGE = "io.slipway.image"
LABEL_CONTENT = "io.slipway.content"
_FROM = re.compile(r"^\s*FROM\s+(?:--\S+\s+)*slipway/([a-z0-9][a-z0-9._-]*)(?::\S+)?", re.I | re.M)
_IGNORED = re.compile(r"(^|/)(rootfs[^/]*|__pycache__|node_modules)(/|$)|\.pyc$")

Say = Callable[[str], None]


class ImageBuildError(Exception):
    """An image could not be built; the message says which and why."""


@dataclass(frozen=True)
class ImageDef:
    name: str
    folder: Path
    parent: str | None  # None for base
    extra_files: tuple[str, ...] = ()


@dataclass(frozen=True)
class ImageState:
    name: str
    parent: str | None
    content_tag: str
    present: bool  # the content tag exists in the engine
    size: int | None  # bytes, when present


@dataclass(frozen=True)
class Outcome:
    name: str
    reference: str  # <prefix><name>:<content tag>
    built: bool  # False: unchanged, already there


# ---------------------------------------------------------------------------------------------
# The tree


def read_tree(images_dir: Path) -> dict[str, ImageDef]:
    """Every image folder under images_dir, with its parent and extra files."""
    if not images_dir.is_dir():
        raise ImageBuildError(f"the images directory {images_dir} does not exist")
    tree: dict[str, ImageDef] = {}
    for folder in sorted(p for p in images_dir.iterdir() if p.is_dir()):
        # A root image (base, and one base-<suite> per other Debian suite) is a rootfs its
        # build-rootfs.sh makes; every other image stands on one.
        if folder.name == BASE or (folder / "build-rootfs.sh").is_file():
            if not (folder / "build-rootfs.sh").is_file():
                raise ImageBuildError(f"{folder}/build-rootfs.sh is missing")
            tree[folder.name] = ImageDef(folder.name, folder, None, _extra_files(folder))
            continue
        dockerfile = folder / "Dockerfile"
        if not dockerfile.is_file():
            continue
        match = _FROM.search(dockerfile.read_text())
        if match is None:
            raise ImageBuildError(f"{dockerfile} must start FROM slipway/<parent>")
        tree[folder.name] = ImageDef(folder.name, folder, match.group(1), _extra_files(folder))
    for image in tree.values():
        if image.parent is not None and image.parent not in tree:
            raise ImageBuildError(f"{image.name} is FROM slipway/{image.parent}, which is not here")
    return tree


def _extra_files(folder: Path) -> tuple[str, ...]:
    listing = folder / "extra-files"
    if not listing.is_file():
        return ()
    lines = (line.split("#", 1)[0].strip() for line in listing.read_text().splitlines())
    return tuple(line for line in lines if line)


def build_order(tree: dict[str, ImageDef], names: Iterable[str] = ()) -> list[ImageDef]:
    """The named images (all when none) and their ancestors, parents before children."""
    wanted = list(names) or sorted(tree)
    unknown = [n for n in wanted if n not in tree]
    if unknown:
        raise ImageBuildError(
            f"no such image: {', '.join(unknown)} (there are: {', '.join(sorted(tree))})"
        )
    order: list[ImageDef] = []
    for name in wanted:
        chain: list[ImageDef] = []
        current: str | None = name
        while current is not None and len(chain) <= len(tree):
            chain.append(tree[current])
            current = tree[current].parent
        if current is not None:
            raise ImageBuildError(f"the images above {name} form a cycle")
        order.extend(image for image in reversed(chain) if image not in order)
    return order


def content_tags(
    tree: dict[str, ImageDef], repo_root: Path, app_uid: int = MOP_UID
) -> dict[str, str]:
    """The content tag of every image: its files, its extra files, mop's uid, its parent's tag."""
    tags: dict[str, str] = {}
    for image in build_order(tree):
        digest = hashlib.sha256()
        digest.update(f"parent={tags.get(image.parent or '', '')}\n".encode())
        if image.parent is None:  # the base makes mop; every other image inherits it
            digest.update(f"app_uid={app_uid}\n".encode())
        for rel, path in _input_files(image, repo_root):
            digest.update(f"{rel}\0{path.stat().st_mode & 0o111:o}\0".encode())
            digest.update(hashlib.sha256(path.read_bytes()).digest())
        tags[image.name] = digest.hexdigest()[:12]
    return tags


def _input_files(image: ImageDef, repo_root: Path) -> list[tuple[str, Path]]:
    """(name in the build context, file) for every input of the image, sorted."""
    files = [
        (path.relative_to(image.folder).as_posix(), path)
        for path in image.folder.rglob("*")
        if path.is_file() and not _IGNORED.search(path.relative_to(image.folder).as_posix())
    ]
    for rel in image.extra_files:
        path = repo_root / rel
        if not path.is_file():
            raise ImageBuildError(
                f"{image.name} needs {rel} (listed in images/{image.name}/extra-files), "
                "which does not exist"
            )
        files.append((rel, path))
    return sorted(files)


# ---------------------------------------------------------------------------------------------
# The engine


def connect() -> docker.DockerClient:
    """A Docker client that answers, or :class:`RuntimeUnavailable` with one clear sentence."""
    try:
        client = docker.from_env(timeout=600)
        client.ping()
    except docker.errors.DockerException as exc:
        raise RuntimeUnavailable(
            f"cannot reach the Docker engine ({exc.__class__.__name__}); "
            "is dockerd running? (`make docker` starts it)"
        ) from exc
    return client


class ImageBuilder:
    """Builds the tree into one Docker engine, skipping images whose content tag exists."""

    def __init__(
        self,
        client: docker.DockerClient,
        images_dir: Path,
        prefix: str = "slipway/",
        app_uid: int = MOP_UID,
    ) -> None:
        self.client = client
        self.images_dir = images_dir
        self.repo_root = images_dir.parent
        self.prefix = prefix
        self.app_uid = app_uid
        self.tree = read_tree(images_dir)

    def repository(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def states(self) -> list[ImageState]:
        """Every image of the tree: its content tag, and whether the engine has it."""
        tags = content_tags(self.tree, self.repo_root, self.app_uid)
        states = []
        for image in build_order(self.tree):
            attrs = self._inspect(f"{self.repository(image.name)}:{tags[image.name]}")
            size = int(attrs["Size"]) if attrs else None
            states.append(ImageState(image.name, image.parent, tags[image.name], bool(attrs), size))
        return states

    def build(
        self, names: Iterable[str] = (), say: Say = print, verbose: Say | None = None
    ) -> list[Outcome]:
        """Build the named images (all when none) and their missing ancestors, in order."""
        tags = content_tags(self.tree, self.repo_root, self.app_uid)
        outcomes = []
        for image in build_order(self.tree, names):
            tag = tags[image.name]
            reference = f"{self.repository(image.name)}:{tag}"
            if self._inspect(reference):
                self._tag_latest(reference, image.name)
                say(f"-----> {image.name}: unchanged ({reference})")
                outcomes.append(Outcome(image.name, reference, built=False))
                continue
            say(f"-----> {image.name}: building {reference}")
            parent = f"{self.repository(image.parent)}:{tags[image.parent]}" if image.parent else ""
            if image.parent is None:
                self._import_base(image, tag, say, verbose)
            else:
                self._docker_build(image, tag, parent, say, verbose)
            self._tag_latest(reference, image.name)
            say(f"       {image.name}: built")
            outcomes.append(Outcome(image.name, reference, built=True))
        # Children first: an old parent cannot go while an old child still stands on it.
        for outcome in reversed(outcomes):
            self._prune_superseded(outcome.name, tags[outcome.name])
        return outcomes

    # -- one image ----------------------------------------------------------------------------

    def _import_base(self, image: ImageDef, tag: str, say: Say, verbose: Say | None) -> None:
        changes = _changes(image.folder / "changes", image.name, tag)
        with tempfile.TemporaryDirectory(prefix="slipway-base-") as tmp:
            tarball = Path(tmp) / "rootfs.tar"
            self._run_script(image.folder / "build-rootfs.sh", tarball, say, verbose)
            say("       importing the rootfs")
            try:
                self.client.api.import_image(
                    src=str(tarball),
                    repository=self.repository(image.name),
                    tag=tag,
                    changes=changes,
                )
            except docker.errors.DockerException as exc:
                raise ImageBuildError(f"importing the base rootfs failed: {exc}") from exc
        if not self._inspect(f"{self.repository(image.name)}:{tag}"):
            raise ImageBuildError("importing the base rootfs did not produce an image")

    def _run_script(self, script: Path, tarball: Path, say: Say, verbose: Say | None) -> None:
        tail: list[str] = []
        with subprocess.Popen(
            ["bash", str(script), str(tarball), str(self.app_uid)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        ) as proc:
            assert proc.stdout is not None
            for line in proc.stdout:
                line = line.rstrip("\n")
                tail = (tail + [line])[-20:]
                _show(line, say, verbose)
        if proc.returncode != 0:
            raise ImageBuildError(
                f"{script.parent.name}: {script.name} failed (exit code {proc.returncode}): "
                f"{tail[-1] if tail else 'no output'}"
            )

    def _docker_build(
        self, image: ImageDef, tag: str, parent: str, say: Say, verbose: Say | None
    ) -> None:
        with tempfile.TemporaryDirectory(prefix=f"slipway-{image.name}-") as tmp:
            context = Path(tmp)
            for rel, path in _input_files(image, self.repo_root):
                (context / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, context / rel)
            # Pin the parent to its content tag: what was hashed is what gets built on.
            dockerfile = context / "Dockerfile"
            dockerfile.write_text(_FROM.sub(f"FROM {parent}", dockerfile.read_text(), count=1))
            self._stream_build(image, context, tag, say, verbose)

    def _stream_build(
        self, image: ImageDef, context: Path, tag: str, say: Say, verbose: Say | None
    ) -> None:
        tail: list[str] = []
        try:
            stream = self.client.api.build(
                path=str(context),
                tag=f"{self.repository(image.name)}:{tag}",
                rm=True,
                forcerm=True,
                pull=False,
                decode=True,
                labels={LABEL_IMAGE: image.name, LABEL_CONTENT: tag},
            )
            for chunk in stream:
                if "error" in chunk:
                    detail = str(chunk["error"]).strip()
                    for line in tail[-15:]:
                        say(f"       | {line}")
                    raise ImageBuildError(f"{image.name}: {detail}")
                for line in str(chunk.get("stream", "")).splitlines():
                    if line.strip():
                        tail = (tail + [line])[-15:]
                        _show(line, say, verbose)
        except docker.errors.DockerException as exc:
            raise ImageBuildError(f"{image.name}: the build failed: {exc}") from exc

    def _tag_latest(self, reference: str, name: str) -> None:
        self.client.api.tag(reference, self.repository(name), "latest")

    def _prune_superseded(self, name: str, keep: str) -> None:
        """Drop the older content tags of an image; ones still in use are left to the engine."""
        repository = self.repository(name)
        for row in self.client.api.images(name=repository):
            for reference in row.get("RepoTags") or []:
                tag = reference.rsplit(":", 1)[-1]
                if reference.startswith(f"{repository}:") and tag not in (keep, "latest"):
                    # A running container or a child image keeps it: the engine says no.
                    with contextlib.suppress(docker.errors.APIError):
                        self.client.api.remove_image(reference)

    def _inspect(self, reference: str) -> dict[str, Any] | None:
        try:
            return dict(self.client.api.inspect_image(reference))
        except docker.errors.ImageNotFound:
            return None


def _show(line: str, say: Say, verbose: Say | None) -> None:
    """Step lines always; everything else only when verbose."""
    if line.startswith("Step ") or line.startswith("-----> "):
        say(f"       {line}")
    elif verbose is not None:
        verbose(f"       {line}")


def _changes(path: Path, name: str, tag: str) -> list[str]:
    """The Dockerfile instructions applied on import, plus the content labels."""
    lines = [line.strip() for line in path.read_text().splitlines()] if path.is_file() else []
    changes = [line for line in lines if line and not line.startswith("#")]
    return changes + [f"LABEL {LABEL_IMAGE}={name} {LABEL_CONTENT}={tag}"]
