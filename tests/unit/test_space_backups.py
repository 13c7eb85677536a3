"""Space backups (services/space_backups.py): the format (header and trailer frames, each kind of
bad file), making one with tar and zstd as mop, restoring into a new space, and the schedule's
pruning, on the fake provider of tests/fakes.py (real tar, real zstd)."""

from __future__ import annotations

import fcntl
import hashlib
import io
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from slipway.adapters import Adapters
from slipway.config import Settings
from slipway.models import Event, Space, SpaceBackup, User
from slipway.models.event import SPACE_BACKED_UP
from slipway.services import apps, layout, space_backups, spaces, users
from slipway.services.errors import Conflict, Invalid, NotFound, TooLarge
from slipway.services.space_backups import BadBackup
from tests.fakes import FakeSpaces, fake_adapters, migrated_session

M = 1024**2


@pytest.fixture
def session(settings: Settings) -> Iterator[Session]:
    with migrated_session(settings) as session:
        yield session


@pytest.fixture
def adapters(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Adapters:
    made = fake_adapters(tmp_path / "adapters")
    provider = made.space_provider
    assert isinstance(provider, FakeSpaces)
    create = provider.create

    def create_as_mop(key: str, size: int) -> Path:
        tree = create(key, size)
        owner = layout.app_owner()
        if owner is not None:  # a real provider's tree is mop's
            os.chown(tree, *owner)
        return tree

    monkeypatch.setattr(provider, "create", create_as_mop)
    return made


@pytest.fixture
def alice(session: Session) -> User:
    return users.create_user(session, "alice")


def count(session: Session, model: type) -> int:
    return session.scalar(select(func.count()).select_from(model)) or 0


def fill(adapters: Adapters, space: Space) -> Path:
    tree = adapters.spaces.tree(space.key)
    (tree / "notes").mkdir()
    (tree / "notes" / "a.txt").write_text("hello\n")
    (tree / "secret").write_bytes(os.urandom(100_000))
    (tree / "secret").chmod(0o600)
    (tree / "empty").mkdir()
    (tree / "link").symlink_to("notes/a.txt")
    if layout.app_owner() is not None:
        layout.chown_tree(tree)
    return tree


def backup_bytes(adapters: Adapters, space: Space) -> bytes:
    return b"".join(space_backups.stream_backup(adapters.spaces, space))


def restore(
    session: Session, adapters: Adapters, settings: Settings, user: User, data: bytes, name: str
) -> Space:
    return space_backups.restore_backup(session, adapters, settings, user, io.BytesIO(data), name)


# ----------------------------------------------------------------------------- the format


def test_a_backup_is_a_zstd_tar_with_a_header_and_a_checksum_trailer(
    session: Session, adapters: Adapters, alice: User, tmp_path: Path
) -> None:
    space = spaces.create_space(session, adapters, alice, "data", 64 * M)
    fill(adapters, space)
    data = backup_bytes(adapters, space)

    header = space_backups.read_header(io.BytesIO(data))
    assert (header.space, header.size) == ("data", 64 * M)
    digest = space_backups.read_trailer(io.BytesIO(data), len(data))
    assert digest == hashlib.sha256(data[: -space_backups.TRAILER_LENGTH]).hexdigest()
    assert data[:4] == (0x184D2A50).to_bytes(4, "little")
    assert data[-72:-68] == (0x184D2A51).to_bytes(4, "little")
    path = tmp_path / "b.tar.zst"
    path.write_bytes(data)
    listed = subprocess.run(
        f"zstd -dc {path} | tar -t", shell=True, capture_output=True, text=True, check=True
    ).stdout.split()
    assert {"./notes/a.txt", "./secret", "./empty/", "./link"} <= set(listed)
    assert space_backups.check_backup_file(path) == header


@pytest.mark.parametrize(
    ("mangle", "says"),
    [
        (lambda data: os.urandom(5000), "not a Slipway space backup"),
        (lambda data: b"", "not a Slipway space backup"),
        (lambda data: data[:-1], "incomplete"),
        (lambda data: data[: len(data) // 2], "incomplete"),
        (lambda data: data[:100] + bytes([data[100] ^ 1]) + data[101:], "checksum"),
        (lambda data: data[:-200] + bytes([data[-200] ^ 1]) + data[-199:], "checksum"),
    ],
    ids=["random", "empty", "one-byte-short", "half", "flipped-header", "flipped-data"],
)
def test_each_bad_file_is_refused_in_one_sentence_and_nothing_is_made(
    session: Session,
    adapters: Adapters,
    settings: Settings,
    alice: User,
    mangle: object,
    says: str,
) -> None:
    space = spaces.create_space(session, adapters, alice, "data", 64 * M)
    fill(adapters, space)
    bad = mangle(backup_bytes(adapters, space))  # type: ignore[operator]
    with pytest.raises(BadBackup, match=says):
        restore(session, adapters, settings, alice, bad, "copy")
    assert session.scalar(select(Space).where(Space.name == "copy")) is None
    assert adapters.spaces.keys() == [space.key]
    assert list((settings.backups_dir / ".incoming").iterdir()) == []


def test_a_valid_checksum_over_damaged_compressed_data_is_caught_by_zstd(
    session: Session, adapters: Adapters, settings: Settings, alice: User
) -> None:
    space = spaces.create_space(session, adapters, alice, "data", 64 * M)
    fill(adapters, space)
    data = backup_bytes(adapters, space)
    body = data[: -space_backups.TRAILER_LENGTH]
    body = body[:-50] + bytes([body[-50] ^ 0xFF]) + body[-49:]
    forged = body + space_backups.trailer_frame(hashlib.sha256(body).hexdigest())
    with pytest.raises(BadBackup, match="compressed data does not check"):
        restore(session, adapters, settings, alice, forged, "copy")
    assert count(session, Space) == 1


def test_a_header_of_another_version_is_named(session: Session) -> None:
    frame = space_backups.skippable_frame(
        space_backups.HEADER_MAGIC, b'{"format": "slipway-space-backup", "version": 9}'
    )
    with pytest.raises(BadBackup, match="version 9"):
        space_backups.read_header(io.BytesIO(frame))


# ----------------------------------------------------------------------------- restoring


def test_restore_round_trips_into_a_new_space(
    session: Session, adapters: Adapters, settings: Settings, alice: User
) -> None:
    space = spaces.create_space(session, adapters, alice, "data", 64 * M)
    tree = fill(adapters, space)
    copy = restore(session, adapters, settings, alice, backup_bytes(adapters, space), "copy")

    assert (copy.size, copy.state) == (64 * M, "ready")
    assert copy.origin.startswith("restored from a backup of data")
    restored = adapters.spaces.tree(copy.key)
    assert (restored / "secret").read_bytes() == (tree / "secret").read_bytes()
    assert (restored / "secret").stat().st_mode & 0o777 == 0o600
    assert os.readlink(restored / "link") == "notes/a.txt"
    assert (restored / "empty").is_dir()
    if layout.app_owner() is not None:
        assert (restored / "secret").stat().st_uid == layout.MOP_UID


def test_restore_never_touches_an_existing_space(
    session: Session, adapters: Adapters, settings: Settings, alice: User
) -> None:
    space = spaces.create_space(session, adapters, alice, "data", 64 * M)
    fill(adapters, space)
    with pytest.raises(Conflict, match="already exists"):
        restore(session, adapters, settings, alice, backup_bytes(adapters, space), "data")
    with pytest.raises(Invalid, match="not a valid space name"):
        restore(session, adapters, settings, alice, b"", "Bad Name")


def test_restore_refuses_an_upload_over_the_limit(
    session: Session, adapters: Adapters, settings: Settings, alice: User
) -> None:
    small = settings.with_overrides(space_restore_max_size=1000)
    with pytest.raises(TooLarge, match="SLIPWAY_SPACE_RESTORE_MAX_SIZE"):
        restore(session, adapters, small, alice, os.urandom(5000), "copy")
    assert count(session, Space) == 0


def test_a_backup_that_cannot_be_unpacked_leaves_no_space(
    session: Session,
    adapters: Adapters,
    settings: Settings,
    alice: User,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    space = spaces.create_space(session, adapters, alice, "data", 64 * M)
    fill(adapters, space)
    data = backup_bytes(adapters, space)
    monkeypatch.setattr(
        space_backups, "_unpack", lambda *a: (_ for _ in ()).throw(Invalid("does not fit"))
    )
    with pytest.raises(Invalid, match="does not fit"):
        restore(session, adapters, settings, alice, data, "copy")
    session.rollback()
    assert session.scalar(select(Space).where(Space.name == "copy")) is None
    assert adapters.spaces.keys() == [space.key]


# ----------------------------------------------------------------------------- the schedule


def test_scheduled_backups_keep_the_last_n_and_skip_recent_ones(
    session: Session, adapters: Adapters, settings: Settings, alice: User
) -> None:
    keep2 = settings.with_overrides(space_backup_interval=3600, space_backup_keep=2)
    space = spaces.create_space(session, adapters, alice, "data", 64 * M)
    fill(adapters, space)
    for _ in range(4):
        assert space_backups.run_scheduled_backups(session, adapters, keep2) == ["data"]
        # make the last one look old, so the next run finds the space due
        last = session.scalars(select(SpaceBackup).order_by(SpaceBackup.id.desc())).first()
        assert last is not None
        last.created_at = datetime.now(UTC) - timedelta(hours=2)
        session.commit()
    kept = space_backups.list_backups(session, alice, "data")
    assert len(kept) == 2
    files = sorted((settings.backups_dir / "data").iterdir())
    assert files == sorted(Path(b.path) for b in kept)
    assert all(space_backups.check_backup_file(Path(b.path)).space == "data" for b in kept)

    assert space_backups.run_scheduled_backups(session, adapters, keep2) == ["data"]
    assert space_backups.run_scheduled_backups(session, adapters, keep2) == []  # not due yet
    off = keep2.with_overrides(space_backup_interval=0)
    assert space_backups.run_scheduled_backups(session, adapters, off) == []


def test_backups_outlive_their_space(
    session: Session, adapters: Adapters, settings: Settings, alice: User
) -> None:
    space = spaces.create_space(session, adapters, alice, "data", 64 * M)
    fill(adapters, space)
    backup = space_backups.write_backup(session, adapters, settings, space)
    spaces.delete_space(session, adapters, space)
    session.commit()
    assert [b.id for b in space_backups.list_backups(session, alice, "data")] == [backup.id]
    assert Path(space_backups.get_backup(session, alice, backup.id, settings).path).is_file()
    Path(backup.path).unlink()  # removed by hand, as the README says
    with pytest.raises(NotFound):
        space_backups.list_backups(session, alice, "data")


def test_a_backup_of_an_attached_space_is_an_event_of_its_app(
    session: Session, adapters: Adapters, settings: Settings, alice: User
) -> None:
    space = spaces.create_space(session, adapters, alice, "data", 64 * M)
    fill(adapters, space)
    blog = apps.create_app(session, alice, "blog", settings)
    spaces.attach_space(session, space, blog, "data")
    backup = space_backups.write_backup(session, adapters, settings, space, scheduled=True)
    found = session.scalars(select(Event).where(Event.type == SPACE_BACKED_UP)).all()
    assert [(e.app_id, e.space_id) for e in found] == [(blog.id, space.id)]
    assert found[0].data == {
        "space": "data",
        "size": backup.size,
        "sha256": backup.sha256,
        "scheduled": True,
    }


def test_a_run_removes_what_dead_runs_left(settings: Settings) -> None:
    half = settings.backups_dir / "data" / "data-20260101T000000Z.backup.tar.zst.part"
    incoming = settings.backups_dir / ".incoming"
    half.parent.mkdir(parents=True)
    incoming.mkdir()
    half.write_bytes(b"x")
    (incoming / "old.part").write_bytes(b"x")
    (incoming / "new.part").write_bytes(b"x")
    os.utime(incoming / "old.part", (0, 0))
    removed = space_backups.remove_leftovers(settings, datetime.now(UTC))
    assert sorted(path.name for path in removed) == sorted([half.name, "old.part"])
    assert [path.name for path in incoming.iterdir()] == ["new.part"]


def test_a_checkpoint_that_fails_is_one_sentence_before_any_byte(
    session: Session, adapters: Adapters, alice: User
) -> None:
    space = spaces.create_space(session, adapters, alice, "data", 64 * M)
    provider = adapters.space_provider
    assert isinstance(provider, FakeSpaces)
    provider.copies = False
    provider.fail.add("checkpoint")
    chunks = space_backups.stream_backup(provider, space)
    with pytest.raises(spaces.SpaceFailed, match="could not be read for a backup"):
        next(chunks)


def test_a_header_too_small_for_a_space_is_refused(
    session: Session, adapters: Adapters, settings: Settings, alice: User, tmp_path: Path
) -> None:
    (tmp_path / "tree").mkdir()
    body = space_backups.header_frame("data", 1000, datetime.now(UTC))
    body += subprocess.run(
        ["tar", "-c", "--use-compress-program=zstd -q", "-f-", "-C", str(tmp_path / "tree"), "."],
        capture_output=True,
        check=True,
    ).stdout
    data = body + space_backups.trailer_frame(hashlib.sha256(body).hexdigest())
    with pytest.raises(Invalid, match="at least 32M"):
        restore(session, adapters, settings, alice, data, "copy")
    assert count(session, Space) == 0


def test_an_empty_space_round_trips(
    session: Session, adapters: Adapters, settings: Settings, alice: User
) -> None:
    space = spaces.create_space(session, adapters, alice, "data", 64 * M)
    copy = restore(session, adapters, settings, alice, backup_bytes(adapters, space), "copy")
    assert list(adapters.spaces.tree(copy.key).iterdir()) == []


def test_the_reconciler_runs_backups_in_a_thread_and_never_two_at_once(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from slipway.host import reconcile

    stop = threading.Event()
    assert (
        reconcile.start_backup_thread(settings.with_overrides(space_backup_interval=0), stop)
        is None
    )
    lock = settings.backups_dir / ".schedule.lock"
    lock.parent.mkdir(parents=True)
    with lock.open("a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        assert reconcile.backup_once(settings) == []  # another run holds it: nothing done
    runs: list[Settings] = []
    monkeypatch.setattr(reconcile, "backup_once", lambda s: runs.append(s) or ["data"])
    thread = reconcile.start_backup_thread(settings.with_overrides(space_backup_interval=1), stop)
    assert thread is not None
    deadline = time.monotonic() + 10
    while not runs and time.monotonic() < deadline:
        time.sleep(0.1)
    stop.set()
    thread.join(5)
    assert runs and not thread.is_alive()
