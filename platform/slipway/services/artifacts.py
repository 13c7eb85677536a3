"""The artifact store: uploaded sources, built slugs and their assets, as files under the data
directory.

Every file is written under a temporary name and renamed into place, so a reader never sees half
of one. Paths handed out are absolute and are what the database stores.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from typing import IO, Protocol

from slipway.services import archives, layout


class ArtifactStore(Protocol):
    def save_source(self, app: str, stream: IO[bytes], limit: int) -> Path:
        """Store an uploaded archive (at most ``limit`` bytes, else TooLarge); its path."""

    def new_slug_path(self, app: str) -> Path:
        """A fresh path where a slug may be written (its directory exists)."""

    def new_assets_path(self, app: str) -> Path:
        """A fresh path for a release's assets tarball, beside its slug (its directory exists)."""

    def copy(self, path: str | Path, app: str) -> Path:
        """A new artifact of ``app`` with the bytes of the slug or assets tarball ``path`` (of
        another app's release: a fork); shared on disk, since neither is ever written again."""

    def delete(self, path: str | Path) -> None:
        """Remove one artifact; a missing one is fine."""

    def delete_app(self, app: str) -> None:
        """Remove every artifact of an app."""


class FilesystemArtifacts:
    """Artifacts as plain files: ``<root>/sources/<app>/`` and ``<root>/slugs/<app>/``."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _dir(self, kind: str, app: str) -> Path:
        path = self.root / kind / app
        path.mkdir(parents=True, exist_ok=True)
        return path

    def save_source(self, app: str, stream: IO[bytes], limit: int) -> Path:
        final = self._dir("sources", app) / f"{uuid.uuid4().hex}.tar.gz"
        tmp = final.with_name(final.name + ".part")
        try:
            with tmp.open("wb") as out:
                archives.copy_limited(stream, out, limit)
            os.replace(tmp, final)
        finally:
            archives.remove_quietly(tmp)
        return final

    def new_slug_path(self, app: str) -> Path:
        return self._dir("slugs", app) / f"{uuid.uuid4().hex}{layout.SLUG_SUFFIX}"

    def new_assets_path(self, app: str) -> Path:
        return self._dir("slugs", app) / f"{uuid.uuid4().hex}.assets{layout.SLUG_SUFFIX}"

    def copy(self, path: str | Path, app: str) -> Path:
        source = Path(path).resolve()
        if self.root.resolve() / "slugs" not in source.parents or not source.is_file():
            raise FileNotFoundError(f"no slug at {path}")
        suffix = source.name.partition(".")[2]  # "tar.zst", "assets.tar.zst", "tar.gz"
        final = self._dir("slugs", app) / f"{uuid.uuid4().hex}.{suffix}"
        tmp = final.with_name(final.name + ".part")
        try:
            try:
                os.link(source, tmp)  # a second name for the same immutable file
            except OSError:  # a store spread over filesystems, or one without hard links
                shutil.copyfile(source, tmp)
            os.replace(tmp, final)
        finally:
            archives.remove_quietly(tmp)
        return final

    def delete(self, path: str | Path) -> None:
        target = Path(path).resolve()
        # Only ever delete inside the store, whatever a database row says.
        if self.root.resolve() in target.parents:
            archives.remove_quietly(target)

    def delete_app(self, app: str) -> None:
        for kind in ("sources", "slugs"):
            directory = self.root / kind / app
            if not directory.is_dir():
                continue
            for entry in directory.iterdir():
                archives.remove_quietly(entry)
            directory.rmdir()
