"""Assets volumes with fakes and real tar: packed apart from the slug, unpacked once per release,
mounted read-only at /mnt/assets, removed with pruned releases and with the app."""

# ruff: noqa: F811  # the fixtures imported from test_pipeline are requested by parameter name

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from slipway.adapters import Adapters
from slipway.config import Settings
from slipway.models import App, Release
from slipway.services import apps, assets, oneoff, prune, releases
from tests.fakes import RecordingSender
from tests.unit.test_pipeline import (  # noqa: F401  (fixtures are used by name)
    adapters,
    app,
    deploy,
    runtime,
    sent,
    session,
    settings,
)
from tests.unit.test_releases import run_sent_roll

WITH_ASSETS = {
    "index.html": "<h1>hello</h1>",
    "assets/img/logo.txt": "the logo",
    "assets/top.txt": "at the top",
    "lib/assets/inner.txt": "not the assets directory",
}


@pytest.fixture(autouse=True)
def recorded_tasks(sent: RecordingSender) -> RecordingSender:
    """Tasks are recorded, never sent to a broker."""
    return sent


def members(tarball: str | Path) -> list[str]:
    listed = subprocess.run(
        ["tar", "--zstd", "-tf", str(tarball)], capture_output=True, text=True, check=True
    )
    return sorted(line.removeprefix("./") for line in listed.stdout.split())


def current(session: Session, app: App) -> Release:
    session.refresh(app)
    assert app.current_release is not None
    return app.current_release


def assets_mount(adapters: Adapters) -> list[tuple[Path, str, bool]]:
    spec = runtime(adapters).started[-1]
    return [
        (Path(m.source), m.target, m.read_only)
        for m in spec.mounts
        if m.target == assets.MOUNT_POINT
    ]


def test_assets_are_packed_apart_from_the_slug_and_mounted_read_only(
    session: Session, app: App, adapters: Adapters, settings: Settings
) -> None:
    done = deploy(session, app, adapters, settings, WITH_ASSETS)
    assert done.state == "succeeded", done.error
    release = current(session, app)

    assert release.assets_path and Path(release.assets_path).is_file()
    packed = [name for name in members(release.assets_path) if name and name[-1] != "/"]
    assert packed == ["img/logo.txt", "top.txt"]  # relative to assets/, so /mnt/assets/img/...
    slug = members(release.slug_path)
    assert not [name for name in slug if name.startswith("assets")]
    assert "lib/assets/inner.txt" in slug  # only the top-level directory is taken out
    assert "Packing assets/" in Path(done.log_path or "").read_text()

    [(tree, target, read_only)] = assets_mount(adapters)
    assert read_only and target == "/mnt/assets"
    assert tree == settings.assets_dir / "hello" / str(release.id) / "tree"
    assert (tree / "img" / "logo.txt").read_text() == "the logo"
    assert (tree.parent / assets.READY).is_file()


def test_an_app_without_assets_mounts_nothing(
    session: Session, app: App, adapters: Adapters, settings: Settings
) -> None:
    assert deploy(session, app, adapters, settings, {"index.html": "x"}).state == "succeeded"
    assert current(session, app).assets_path == ""
    assert assets_mount(adapters) == []
    assert not settings.assets_dir.exists()


def test_only_a_real_directory_is_taken(tmp_path: Path) -> None:
    as_file = tmp_path / "file"
    as_file.mkdir()
    (as_file / "assets").write_text("a file named assets")
    as_link = tmp_path / "link"
    as_link.mkdir()
    (tmp_path / "elsewhere").mkdir()
    (as_link / "assets").symlink_to(tmp_path / "elsewhere")
    real = tmp_path / "real"
    (real / "assets").mkdir(parents=True)
    assert not assets.has_assets(as_file)
    assert not assets.has_assets(as_link)
    assert not assets.has_assets(tmp_path / "elsewhere")
    assert assets.has_assets(real)


def test_a_half_unpacked_tree_is_unpacked_again(
    session: Session, app: App, adapters: Adapters, settings: Settings
) -> None:
    assert deploy(session, app, adapters, settings, WITH_ASSETS).state == "succeeded"
    release = current(session, app)
    tree = assets.unpacked_tree(settings, "hello", release)
    (tree.parent / assets.READY).unlink()  # as if the worker died while unpacking
    (tree / "img" / "logo.txt").unlink()
    (tree / "leftover").write_text("half")

    again = assets.unpacked_tree(settings, "hello", release)

    assert again == tree and (tree / "img" / "logo.txt").read_text() == "the logo"
    assert not (tree / "leftover").exists() and (tree.parent / assets.READY).is_file()
    # Once ready, it is not unpacked again.
    (tree / "marker").write_text("kept")
    assert (assets.unpacked_tree(settings, "hello", release) / "marker").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="the tree is given to mop only when run as root")
def test_the_unpacked_tree_is_mops_under_directories_root_made(
    session: Session, app: App, adapters: Adapters, settings: Settings
) -> None:
    from slipway.services.layout import MOP_UID

    assert deploy(session, app, adapters, settings, WITH_ASSETS).state == "succeeded"
    tree = assets.unpacked_tree(settings, "hello", current(session, app))
    assert (tree / "img" / "logo.txt").stat().st_uid == MOP_UID
    assert tree.stat().st_uid == MOP_UID
    assert tree.parent.stat().st_uid == 0 and (tree.parent / assets.READY).stat().st_uid == 0


def test_config_changes_and_rollbacks_keep_the_assets(
    session: Session, app: App, adapters: Adapters, settings: Settings, sent: RecordingSender
) -> None:
    assert deploy(session, app, adapters, settings, WITH_ASSETS).state == "succeeded"
    assert deploy(session, app, adapters, settings, {"index.html": "two"}).state == "succeeded"
    sent.sent.clear()
    first = releases.get_release(session, app, 1)

    rolled = releases.rollback(session, app, 1)
    session.commit()
    assert rolled.assets_path == first.assets_path
    run_sent_roll(session, adapters, settings, sent)
    [(tree, _, _)] = assets_mount(adapters)
    assert tree.parent.name == str(rolled.id) and (tree / "top.txt").read_text() == "at the top"

    assert current(session, app).id == rolled.id
    changed = releases.change_config(session, app, {"A": "1"})
    session.commit()
    assert changed is not None and changed.assets_path == first.assets_path


def test_pruning_removes_assets_and_their_unpacked_trees(
    session: Session, app: App, adapters: Adapters, settings: Settings, sent: RecordingSender
) -> None:
    for _ in range(3):
        assert deploy(session, app, adapters, settings, WITH_ASSETS).state == "succeeded"
    by_version = {r.version: r for r in session.scalars(select(Release))}
    old = by_version[1]
    tree = assets.unpacked_tree(settings, "hello", old)  # as if an instance had mounted it
    assert tree.is_dir()

    deleted = prune.prune_app(session, app, adapters.artifacts, 2, settings)

    assert old.assets_path in deleted and not Path(old.assets_path).exists()
    assert not tree.parent.exists()
    newest = by_version[3]
    assert Path(newest.assets_path).is_file()
    assert assets.release_dir(settings, "hello", newest.id).is_dir()  # the live one stays


def test_the_app_takes_its_assets_with_it(
    session: Session, app: App, adapters: Adapters, settings: Settings
) -> None:
    assert deploy(session, app, adapters, settings, WITH_ASSETS).state == "succeeded"
    release = current(session, app)
    artifact = Path(release.assets_path)
    assert (settings.assets_dir / "hello").is_dir()

    apps.delete_app(session, app, adapters, settings)

    assert not (settings.assets_dir / "hello").exists()
    assert not artifact.exists()


def test_one_off_runs_mount_the_current_releases_assets(
    session: Session, app: App, adapters: Adapters, settings: Settings, tmp_path: Path
) -> None:
    assert deploy(session, app, adapters, settings, WITH_ASSETS).state == "succeeded"
    release = current(session, app)

    plan = oneoff.plan_run(session, adapters, app, "cat /mnt/assets/img/logo.txt")
    spec = oneoff.run_spec(settings, plan, tmp_path)

    [mount] = [m for m in spec.mounts if m.target == assets.MOUNT_POINT]
    assert mount.read_only and Path(mount.source).parent.name == str(release.id)
    assert (Path(mount.source) / "img" / "logo.txt").read_text() == "the logo"
    assert deploy(session, app, adapters, settings, {"index.html": "x"}).state == "succeeded"
    session.refresh(app)
    plain = oneoff.plan_run(session, adapters, app, "true")
    assert assets.MOUNT_POINT not in [
        m.target for m in oneoff.run_spec(settings, plain, tmp_path).mounts
    ]
