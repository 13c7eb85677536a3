"""mop's uid is the platform's own: a setting, checked against the host's accounts at start,
fed to the images' content tags; caches and volumes an earlier uid owns are not reused."""

# ruff: noqa: F811  # the fixtures imported from test_pipeline are requested by parameter name

from __future__ import annotations

import grp
import os
import pwd
from pathlib import Path
from unittest import mock

import pytest
from sqlalchemy.orm import Session

from slipway.adapters import Adapters
from slipway.appuser import made_for_another_uid
from slipway.config import Settings, parse_uid
from slipway.host.accounts import check_app_uid, remove_caches_of_other_uids
from slipway.host.environment import settings_env
from slipway.host.supervisor import HostError
from slipway.models import App
from slipway.runtime.images import content_tags, read_tree
from slipway.services import reconciler
from slipway.services.layout import MOP_GID, MOP_UID
from tests.fakes import RecordingSender
from tests.unit.test_pipeline import (  # noqa: F401  (fixtures are used by name)
    STATIC,
    adapters,
    app,
    deploy,
    live,
    router,
    runtime,
    sent,
    session,
    settings,
    source,
    volumes,
)

DEBIAN_ADDUSER = range(1000, 60000)
SYSTEMD_DYNAMIC = range(61184, 65520)
SUBUID_START = 100000


def test_the_default_uid_is_outside_every_range_hosts_give_out() -> None:
    uid = Settings().app_uid
    assert uid not in DEBIAN_ADDUSER and uid not in SYSTEMD_DYNAMIC
    assert 1000 <= uid < 65534 < SUBUID_START  # not a system uid, nor nobody; maps in 16 bits
    assert (MOP_UID, MOP_GID) == (uid, uid)  # the process's own settings (none set here)


def test_the_uid_is_a_setting_that_survives_the_trip_through_the_environment() -> None:
    with mock.patch.dict(os.environ, {"SLIPWAY_APP_UID": "64321"}, clear=True):
        settings = Settings.from_env()
    assert settings.app_uid == 64321
    with mock.patch.dict(os.environ, settings_env(settings), clear=True):
        assert Settings.from_env() == settings


@pytest.mark.parametrize("text", ["0", "-5", "abc", "", "1.5", "4294967295", "99999999999"])
def test_a_uid_that_is_no_uid_or_root_is_a_clear_error(text: str) -> None:
    with pytest.raises(ValueError, match="SLIPWAY_APP_UID must be a uid from 1 to 4294967294"):
        parse_uid(text)


def _settings(uid: int) -> Settings:
    return Settings().with_overrides(app_uid=uid)


def _free_uid() -> int:
    """A uid that no user and no group of this machine has."""
    uid = 60700
    while _taken(uid):
        uid += 1
    return uid


def _taken(uid: int) -> bool:
    try:
        pwd.getpwuid(uid)
        return True
    except KeyError:
        pass
    try:
        grp.getgrgid(uid)
        return True
    except KeyError:
        return False


def test_a_uid_a_host_user_holds_is_refused_naming_the_user_and_the_setting(
    tmp_path: Path,
) -> None:
    nobody = pwd.getpwnam("nobody")
    none = tmp_path / "none"
    with pytest.raises(HostError) as refused:
        check_app_uid(_settings(nobody.pw_uid), none, none)
    message = str(refused.value)
    assert f"the uid of the user {nobody.pw_name!r}" in message
    assert "set SLIPWAY_APP_UID to a number" in message
    assert message.count(".") == 1 and message.endswith(".")  # one sentence


def test_a_uid_only_a_host_group_holds_is_refused_too(tmp_path: Path) -> None:
    users = {entry.pw_uid for entry in pwd.getpwall()}
    group = next(g for g in grp.getgrall() if g.gr_gid not in users and g.gr_gid > 0)
    with pytest.raises(HostError, match=f"the gid of the group {group.gr_name!r}"):
        check_app_uid(_settings(group.gr_gid), tmp_path / "none", tmp_path / "none")


def test_a_uid_inside_a_subordinate_range_is_refused(tmp_path: Path) -> None:
    subuid, subgid = tmp_path / "subuid", tmp_path / "subgid"
    subuid.write_text("# ranges\nalice:100000:65536\nmalformed line\n")
    subgid.write_text("bob:200000:65536\n")
    with pytest.raises(HostError, match=r"one of the subordinate uids of 'alice' \("):
        check_app_uid(_settings(165535), subuid, subgid)
    with pytest.raises(HostError, match="one of the subordinate gids of 'bob'"):
        check_app_uid(_settings(200000), subuid, subgid)
    check_app_uid(_settings(165536), subuid, subgid)  # just past alice's range


def test_a_free_uid_passes(tmp_path: Path) -> None:
    check_app_uid(_settings(_free_uid()), tmp_path / "none", tmp_path / "none")


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
def test_caches_of_an_earlier_uid_are_removed_and_no_link_is_followed(tmp_path: Path) -> None:
    settings = Settings().with_overrides(data_dir=tmp_path / "data")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("not the platform's\n")
    caches = settings.cache_dir
    for name, uid in (("old", 1000), ("current", settings.app_uid), ("roots", 0)):
        (caches / name / "deep").mkdir(parents=True)
        (caches / name / "deep" / "file").write_text(name)
        os.chown(caches / name, uid, uid)
    (caches / "old" / "deep" / "link").symlink_to(outside)
    (caches / "old" / "outside-link").symlink_to(outside)
    (caches / "loose-link").symlink_to(outside)

    assert remove_caches_of_other_uids(settings) == ["old"]

    assert sorted(p.name for p in caches.iterdir()) == ["current", "loose-link", "roots"]
    assert (outside / "keep").read_text() == "not the platform's\n"
    assert remove_caches_of_other_uids(Settings().with_overrides(data_dir=tmp_path / "no")) == []


def test_the_uid_is_part_of_every_images_content_tag(tmp_path: Path) -> None:
    images_dir = tmp_path / "images"
    (images_dir / "base").mkdir(parents=True)
    (images_dir / "base" / "build-rootfs.sh").write_text("#!/bin/sh\n")
    (images_dir / "run-base").mkdir()
    (images_dir / "run-base" / "Dockerfile").write_text("FROM slipway/base:latest\n")
    tree = read_tree(images_dir)

    ours = content_tags(tree, tmp_path, app_uid=61000)
    other = content_tags(tree, tmp_path, app_uid=61001)

    assert ours == content_tags(tree, tmp_path, app_uid=61000)
    assert all(other[name] != ours[name] for name in ours)
    assert content_tags(tree, tmp_path) == content_tags(tree, tmp_path, app_uid=MOP_UID)


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
def test_an_instance_volume_of_an_earlier_uid_is_made_afresh_when_its_container_is_gone(
    session: Session, app: App, adapters: Adapters, settings: Settings, sent: RecordingSender
) -> None:
    deploy(session, app, adapters, settings, STATIC)
    [web] = live(session, app)
    volume = adapters.volumes.get(web.volume_name)
    assert volume is not None and not made_for_another_uid(volume.path)
    (volume.path / "written-by-the-old-mop").write_text("x")
    os.chown(volume.path, 1000, 1000)  # as an earlier version left it
    assert made_for_another_uid(volume.path)
    runtime(adapters).containers.pop(web.container_id or "")

    assert reconciler.reconcile(session, adapters, settings).restarted == [web.container_name]

    fresh = adapters.volumes.get(web.volume_name)
    assert fresh is not None and (fresh.path.stat().st_uid, fresh.path.stat().st_gid) == (
        MOP_UID,
        MOP_GID,
    )
    assert volumes(adapters).destroyed[-1] == web.volume_name  # then made anew and laid out
    assert (fresh.path / "supervisor.conf").is_file()
