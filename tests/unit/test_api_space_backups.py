"""``/api/v1/spaces/<name>/backup``, ``/spaces/restore``, ``/spaces/<name>/backups`` and
``/spaces/backups/<id>`` through Flask's test client, on the fake provider (real tar and zstd):
who may see what, and the answers' types."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from slipway.config import Settings
from slipway.db import session_scope
from slipway.models import Space
from slipway.services import layout, space_backups
from tests.fakes import FakeSpaces
from tests.unit import test_api
from tests.unit.test_api import Api

M = 1024**2


def mop_trees(provider: FakeSpaces, monkeypatch: pytest.MonkeyPatch) -> None:
    """The fake provider's new trees are mop's, as a real provider's are."""
    create = provider.create
    owner = layout.app_owner()

    def create_as_mop(key: str, size: int) -> Path:
        tree = create(key, size)
        if owner is not None:
            os.chown(tree, *owner)
        return tree

    monkeypatch.setattr(provider, "create", create_as_mop)


@pytest.fixture
def api(settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Api]:
    for made in test_api.api.__wrapped__(settings, tmp_path):  # type: ignore[attr-defined]
        assert isinstance(made.adapters.space_provider, FakeSpaces)
        mop_trees(made.adapters.space_provider, monkeypatch)
        yield made


def space_named(api: Api, name: str) -> Space | None:
    with session_scope(api.factory) as session:
        space = session.scalar(select(Space).where(Space.name == name))
        if space is not None:
            session.expunge(space)
        return space


def spaces_count(api: Api) -> int:
    with session_scope(api.factory) as session:
        return session.scalar(select(func.count()).select_from(Space)) or 0


def with_a_file(api: Api) -> bytes:
    assert api.call("POST", "/spaces", json={"name": "db", "size": "64M"}).status_code == 201
    space = space_named(api, "db")
    assert space is not None
    tree = api.adapters.spaces.tree(space.key)
    (tree / "data.bin").write_bytes(os.urandom(10_000))
    if layout.app_owner() is not None:
        layout.chown_tree(tree)
    return (tree / "data.bin").read_bytes()


def body_of(response: Any) -> bytes:
    data: bytes = b"".join(response.response)
    return data


def test_download_restore_and_who_may_see_them(api: Api) -> None:
    content = with_a_file(api)
    response = api.call("GET", "/spaces/db/backup")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/zstd"
    assert response.headers["Content-Disposition"].startswith('attachment; filename="db-')
    backup = body_of(response)
    assert space_backups.read_header(io.BytesIO(backup)).space == "db"
    assert api.call("GET", "/spaces/db/backup", user="bob").status_code == 404

    restored = api.call("POST", "/spaces/restore?name=copy&size=128M", data=backup, user="bob")
    assert restored.status_code == 201, restored.get_json()
    assert (restored.get_json()["owner"], restored.get_json()["size"]) == ("bob", 128 * M)
    copy = space_named(api, "copy")
    assert copy is not None
    assert (api.adapters.spaces.tree(copy.key) / "data.bin").read_bytes() == content

    refused = api.call("POST", "/spaces/restore?name=other", data=os.urandom(1000))
    assert refused.status_code == 422
    assert refused.get_json()["error"].startswith("This file is not a Slipway space backup")
    small = api.call("POST", "/spaces/restore?name=other&size=1M", data=backup)
    assert small.status_code == 422 and "at least 32M" in small.get_json()["error"]
    assert spaces_count(api) == 2


def test_kept_backups_are_listed_and_downloaded_by_their_owner_only(
    api: Api, settings: Settings
) -> None:
    with_a_file(api)
    with session_scope(api.factory) as session:
        space = session.scalars(select(Space).where(Space.name == "db")).one()
        backup = space_backups.write_backup(session, api.adapters, settings, space)
        backup_id, path = backup.id, Path(backup.path)
    listed = api.call("GET", "/spaces/db/backups").get_json()
    assert [(row["id"], row["file"]) for row in listed] == [(backup_id, path.name)]
    assert api.call("GET", "/spaces/db/backups", user="bob").status_code == 404
    assert len(api.call("GET", "/spaces/db/backups", user="root").get_json()) == 1

    download = api.call("GET", f"/spaces/backups/{backup_id}")
    assert download.status_code == 200
    assert download.headers["Content-Type"] == "application/zstd"
    assert body_of(download) == path.read_bytes()
    download.close()
    assert api.call("GET", f"/spaces/backups/{backup_id}", user="bob").status_code == 404
    assert api.call("GET", "/spaces/backups/999").status_code == 404
