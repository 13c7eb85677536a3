"""Spaces (services/spaces.py): names, sizes, create, checkpoint, fork, delete, attachments,
their mounts and events, and the nearly-full check, on the fake provider of tests/fakes.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from slipway.adapters import Adapters
from slipway.config import Settings
from slipway.models import App, Event, Release, Space, SpaceCheckpoint, User
from slipway.models.event import SPACE_CHECKPOINTED, SPACE_CREATED, SPACE_FORKED, SPACE_NEARLY_FULL
from slipway.runtime.base import Mount
from slipway.services import apps, reconciler, spaces, users
from slipway.services.errors import Conflict, Invalid, NotFound
from slipway.services.releases import ROLL_TASK
from slipway.tasks import dispatch
from slipway.volumes.spaces import MIN_SIZE
from tests.fakes import FakeSpaces, RecordingSender, fake_adapters, migrated_session

G = 1024**3


@pytest.fixture
def session(settings: Settings) -> Iterator[Session]:
    with migrated_session(settings) as session:
        yield session


@pytest.fixture
def sender() -> Iterator[RecordingSender]:
    recorder = RecordingSender()
    previous = dispatch.set_sender(recorder)
    yield recorder
    dispatch.set_sender(previous)


@pytest.fixture
def adapters(tmp_path: Path) -> Adapters:
    return fake_adapters(tmp_path / "adapters")


def provider(adapters: Adapters) -> FakeSpaces:
    assert isinstance(adapters.space_provider, FakeSpaces)
    return adapters.space_provider


@pytest.fixture
def alice(session: Session) -> User:
    return users.create_user(session, "alice")


def new_app(session: Session, owner: User, settings: Settings, name: str = "blog") -> App:
    return apps.create_app(session, owner, name, settings)


def released(session: Session, app: App) -> Release:
    release = Release(app=app, version=1, slug_path="/slug.tgz", stack="static", config={"A": "1"})
    app.current_release = release
    session.flush()
    return release


def space_events(session: Session) -> list[tuple[str, int, int | None, dict[str, object]]]:
    found = session.scalars(select(Event).order_by(Event.id))
    return [(e.type, e.app_id, e.space_id, e.data) for e in found]


def count(session: Session, model: type) -> int:
    return session.scalar(select(func.count()).select_from(model)) or 0


# ----------------------------------------------------------------------------- input


@pytest.mark.parametrize("name", ["a", "data", "blog-data-2", "x" * 63])
def test_space_names_are_dns_labels(name: str) -> None:
    assert spaces.check_space_name(name) == name


@pytest.mark.parametrize("name", ["", "Data", "1data", "data-", "a_b", "x" * 64, 7, None])
def test_invalid_space_names_get_one_sentence(name: object) -> None:
    with pytest.raises(Invalid, match="is not a valid space name. A space name is a DNS label"):
        spaces.check_space_name(name)


@pytest.mark.parametrize("slot", ["data", "u", "db_files", "media-2"])
def test_slots(slot: str) -> None:
    assert spaces.check_slot(slot) == slot


@pytest.mark.parametrize("slot", ["", "Data", "2x", "a/b", "..", "x" * 32, None])
def test_invalid_slots(slot: object) -> None:
    with pytest.raises(Invalid, match="is not a valid slot name"):
        spaces.check_slot(slot)


@pytest.mark.parametrize(
    ("value", "size"),
    [("1G", G), ("512M", 512 * 1024**2), ("32M", MIN_SIZE), (MIN_SIZE, MIN_SIZE), (None, 5 * G)],
)
def test_sizes(value: object, size: int) -> None:
    assert spaces.parse_space_size(value, default=5 * G) == size


@pytest.mark.parametrize("value", ["31M", "1K", "lots", "-1G", MIN_SIZE - 1, True, 1.5, [1]])
def test_sizes_under_the_minimum_or_not_sizes_are_refused(value: object) -> None:
    with pytest.raises(Invalid) as caught:
        spaces.parse_space_size(value, default=G)
    assert str(caught.value).startswith("A space's size is at least 32M, such as 512M or 1G")
    assert ". " not in str(caught.value)  # one sentence


def test_fork_sources() -> None:
    assert spaces.parse_fork_source("db") == ("db", None)
    assert spaces.parse_fork_source("db@before-1.2") == ("db", "before-1.2")
    for bad in ["", "db@", "DB", "db@Bad Name", None]:
        with pytest.raises(Invalid):
            spaces.parse_fork_source(bad)


# ----------------------------------------------------------------------------- create, find


def test_create_makes_the_data_and_marks_it_ready(
    session: Session, adapters: Adapters, alice: User
) -> None:
    space = spaces.create_space(session, adapters, alice, "db", G)
    assert space.state == "ready"
    assert space.key == f"sp-{space.id}"
    assert provider(adapters).tree(space.key).is_dir()
    assert spaces.space_usage(adapters, space) == spaces.SpaceUsage(used=0, size=G)
    assert space_events(session) == []  # attached to no app: nothing to tell yet


def test_a_duplicate_name_is_refused_and_changes_nothing(
    session: Session, adapters: Adapters, alice: User
) -> None:
    spaces.create_space(session, adapters, alice, "db", G)
    with pytest.raises(Conflict, match="^A space named 'db' already exists.$"):
        spaces.create_space(session, adapters, alice, "db", 2 * G)
    assert count(session, Space) == 1
    assert provider(adapters).keys() == [session.scalars(select(Space)).one().key]


def test_a_provider_failure_removes_the_row_and_says_why(
    session: Session, adapters: Adapters, alice: User
) -> None:
    provider(adapters).fail.add("create")
    with pytest.raises(spaces.SpaceFailed, match="^The space db could not be made: fake create"):
        spaces.create_space(session, adapters, alice, "db", G)
    assert count(session, Space) == 0
    assert spaces.create_space(session, adapters, alice, "db", G).state == "ready"


def test_users_see_their_own_spaces_and_admins_all(
    session: Session, adapters: Adapters, alice: User
) -> None:
    bob = users.create_user(session, "bob")
    root = users.create_user(session, "root", is_admin=True)
    spaces.create_space(session, adapters, alice, "a-db", G)
    spaces.create_space(session, adapters, bob, "b-db", G)
    assert [s.name for s in spaces.list_spaces(session, alice)] == ["a-db"]
    assert [s.name for s in spaces.list_spaces(session, root)] == ["a-db", "b-db"]
    assert spaces.get_space(session, root, "a-db").owner == alice
    with pytest.raises(NotFound, match="^There is no space named 'a-db'.$"):
        spaces.get_space(session, bob, "a-db")


# ----------------------------------------------------------------------------- checkpoints, forks


def test_checkpoints_are_named_once_per_space(
    session: Session, adapters: Adapters, alice: User
) -> None:
    db = spaces.create_space(session, adapters, alice, "db", G)
    other = spaces.create_space(session, adapters, alice, "other", G)
    spaces.checkpoint_space(session, adapters, db, "v1")
    spaces.checkpoint_space(session, adapters, other, "v1")  # another space may reuse the name
    with pytest.raises(Conflict, match="^The space db already has a checkpoint named 'v1'.$"):
        spaces.checkpoint_space(session, adapters, db, "v1")
    with pytest.raises(Invalid, match="^Invalid checkpoint name 'Bad!'"):
        spaces.checkpoint_space(session, adapters, db, "Bad!")
    assert [c.name for c in db.checkpoints] == ["v1"]


def test_forks_from_now_and_from_a_checkpoint(
    session: Session, adapters: Adapters, alice: User
) -> None:
    db = spaces.create_space(session, adapters, alice, "db", G)
    tree = provider(adapters).tree(db.key)
    (tree / "state").write_text("one")
    spaces.checkpoint_space(session, adapters, db, "v1")
    (tree / "state").write_text("two")

    live = spaces.fork_space(session, adapters, alice, db, None, "db-now")
    old = spaces.fork_space(session, adapters, alice, db, "v1", "db-then")

    assert (live.origin, live.size, live.state) == ("fork of db", G, "ready")
    assert old.origin == "fork of db@v1"
    assert (provider(adapters).tree(live.key) / "state").read_text() == "two"
    assert (provider(adapters).tree(old.key) / "state").read_text() == "one"


def test_forking_a_missing_checkpoint_changes_nothing(
    session: Session, adapters: Adapters, alice: User
) -> None:
    db = spaces.create_space(session, adapters, alice, "db", G)
    with pytest.raises(NotFound, match="^The space db has no checkpoint named 'nope'.$"):
        spaces.fork_space(session, adapters, alice, db, "nope", "copy")
    with pytest.raises(Conflict, match="^A space named 'db' already exists.$"):
        spaces.fork_space(session, adapters, alice, db, None, "db")
    assert [s.name for s in spaces.list_spaces(session, alice)] == ["db"]
    assert provider(adapters).keys() == [db.key]


# ----------------------------------------------------------------------------- attachments


def test_attach_refuses_a_taken_slot_and_another_users_space(
    session: Session, adapters: Adapters, settings: Settings, alice: User
) -> None:
    app = new_app(session, alice, settings)
    db = spaces.create_space(session, adapters, alice, "db", G)
    media = spaces.create_space(session, adapters, alice, "media", G)
    bobs = spaces.create_space(session, adapters, users.create_user(session, "bob"), "bobs", G)
    spaces.attach_space(session, db, app, "data")
    with pytest.raises(Conflict, match="^The app blog already has the space db in slot data;"):
        spaces.attach_space(session, media, app, "data")
    with pytest.raises(Conflict, match="^The space bobs and the app blog belong to different"):
        spaces.attach_space(session, bobs, app, "other")
    with pytest.raises(Invalid, match="^'release' is not a process type name.$"):
        spaces.attach_space(session, media, app, "media", ["release"])
    assert [(a.space.name, a.slot) for a in spaces.attachments_of(session, app)] == [("db", "data")]
    spaces.detach_space(session, app, "data")
    assert spaces.attachments_of(session, app) == []
    with pytest.raises(NotFound, match="^The app blog has no space in slot data.$"):
        spaces.detach_space(session, app, "data")


def test_mounts_follow_the_process_types(
    session: Session, adapters: Adapters, settings: Settings, alice: User
) -> None:
    app = new_app(session, alice, settings)
    db = spaces.create_space(session, adapters, alice, "db", G)
    cache = spaces.create_space(session, adapters, alice, "cache", G)
    spaces.attach_space(session, db, app, "data")
    spaces.attach_space(session, cache, app, "cache", ["worker"])
    db_mount = Mount(provider(adapters).tree(db.key), "/spaces/data/tree")
    cache_mount = Mount(provider(adapters).tree(cache.key), "/spaces/cache/tree")
    assert spaces.space_mounts(session, adapters, app, "web") == [db_mount]
    assert spaces.space_mounts(session, adapters, app, "worker") == [cache_mount, db_mount]
    assert spaces.space_mounts(session, adapters, app, None) == [cache_mount, db_mount]


def test_a_space_that_is_not_mounted_fails_its_mounts(
    session: Session, adapters: Adapters, settings: Settings, alice: User
) -> None:
    app = new_app(session, alice, settings)
    db = spaces.create_space(session, adapters, alice, "db", G)
    spaces.attach_space(session, db, app, "data")
    provider(adapters).destroy(db.key)
    with pytest.raises(spaces.SpaceFailed, match="^The space db is not available"):
        spaces.space_mounts(session, adapters, app, "web")


def test_attachment_changes_roll_an_app_with_a_release(
    session: Session, adapters: Adapters, settings: Settings, alice: User, sender: RecordingSender
) -> None:
    fresh = new_app(session, alice, settings, "fresh")
    assert spaces.roll_for_spaces(session, fresh, "Attach") is None
    app = new_app(session, alice, settings)
    released(session, app)
    release = spaces.roll_for_spaces(session, app, "Attach space db in slot data")
    assert release is not None
    assert (release.version, release.config, release.slug_path) == (2, {"A": "1"}, "/slug.tgz")
    session.commit()
    assert sender.sent == [(ROLL_TASK, (app.id, release.id))]


def test_delete_is_refused_while_attached_unless_forced(
    session: Session, adapters: Adapters, settings: Settings, alice: User, sender: RecordingSender
) -> None:
    app = new_app(session, alice, settings)
    released(session, app)
    db = spaces.create_space(session, adapters, alice, "db", G)
    spaces.checkpoint_space(session, adapters, db, "v1")
    spaces.attach_space(session, db, app, "data")
    with pytest.raises(Conflict) as caught:
        spaces.delete_space(session, adapters, db)
    assert str(caught.value) == (
        "The space db is attached to app blog in slot data; detach it first or use --force."
    )
    assert provider(adapters).exists(db.key)

    key = db.key
    spaces.delete_space(session, adapters, db, force=True)
    session.commit()
    assert count(session, Space) == count(session, SpaceCheckpoint) == 0
    assert spaces.attachments_of(session, app) == []
    assert not provider(adapters).exists(key)
    assert [name for name, _ in sender.sent] == [ROLL_TASK]


# ----------------------------------------------------------------------------- events


def test_space_events_go_to_each_app_the_space_is_attached_to(
    session: Session, adapters: Adapters, settings: Settings, alice: User
) -> None:
    blog, shop = new_app(session, alice, settings), new_app(session, alice, settings, "shop")
    db = spaces.create_space(session, adapters, alice, "db", G)
    spaces.attach_space(session, db, blog, "data")
    spaces.attach_space(session, db, shop, "data")
    spaces.attach_space(session, db, shop, "again")  # one event per app, not per slot
    spaces.checkpoint_space(session, adapters, db, "v1")
    copy = spaces.fork_space(session, adapters, alice, db, "v1", "db-copy")
    data = {"space": "db", "checkpoint": "v1"}
    fork = {"space": "db", "source": "db", "checkpoint": "v1", "fork": "db-copy"}
    assert space_events(session) == [
        (SPACE_CREATED, blog.id, db.id, {"space": "db"}),  # on its first attachment
        (SPACE_CHECKPOINTED, blog.id, db.id, data),
        (SPACE_CHECKPOINTED, shop.id, db.id, data),
        (SPACE_FORKED, blog.id, db.id, fork),  # the new space is attached to nothing yet
        (SPACE_FORKED, shop.id, db.id, fork),
    ]
    assert copy.attachments == []


def test_the_first_app_a_space_is_attached_to_hears_of_its_creation(
    session: Session, adapters: Adapters, settings: Settings, alice: User
) -> None:
    blog, shop = new_app(session, alice, settings), new_app(session, alice, settings, "shop")
    db = spaces.create_space(session, adapters, alice, "db", G)
    assert space_events(session) == []
    spaces.attach_space(session, db, blog, "data")
    spaces.detach_space(session, blog, "data")
    spaces.attach_space(session, db, blog, "data")
    spaces.attach_space(session, db, shop, "data")
    assert space_events(session) == [(SPACE_CREATED, blog.id, db.id, {"space": "db"})]
    assert session.scalars(select(Event.message)).one() == "Space db created"


def test_nearly_full_fires_once_at_90_percent_and_rearms_below_85(
    session: Session, adapters: Adapters, settings: Settings, alice: User
) -> None:
    app = new_app(session, alice, settings)
    db = spaces.create_space(session, adapters, alice, "db", MIN_SIZE)
    spaces.attach_space(session, db, app, "data")
    provider(adapters).sizes[db.key] = 1000  # the fake counts file bytes against this cap
    data = provider(adapters).tree(db.key) / "data"

    def fill(used: int) -> list[str]:
        data.write_bytes(b"x" * used)
        return spaces.check_nearly_full(session, adapters)

    assert fill(899) == []
    assert fill(900) == ["db"]
    assert db.nearly_full
    assert fill(990) == []  # still full: no second event
    assert fill(860) == []  # between the marks: not re-armed
    assert db.nearly_full
    assert fill(849) == []
    assert not db.nearly_full
    assert fill(950) == ["db"]
    fired = [e for e in space_events(session) if e[0] == SPACE_NEARLY_FULL]
    assert [e[3] for e in fired] == [
        {"space": "db", "used": 900, "size": 1000},
        {"space": "db", "used": 950, "size": 1000},
    ]


def test_the_reconciler_pass_checks_how_full_spaces_are(
    session: Session, adapters: Adapters, settings: Settings, alice: User
) -> None:
    db = spaces.create_space(session, adapters, alice, "db", MIN_SIZE)
    spaces.attach_space(session, db, new_app(session, alice, settings), "data")
    provider(adapters).sizes[db.key] = 100
    (provider(adapters).tree(db.key) / "data").write_bytes(b"x" * 95)
    assert reconciler.reconcile(session, adapters, settings).nearly_full == ["db"]
    assert reconciler.reconcile(session, adapters, settings).nearly_full == []
    assert session.scalar(select(Space.nearly_full).where(Space.id == db.id)) is True


def test_a_user_who_owns_spaces_is_not_deleted_with_them(
    session: Session, adapters: Adapters, settings: Settings, alice: User
) -> None:
    root = users.create_user(session, "root", is_admin=True)
    spaces.create_space(session, adapters, alice, "db", G)
    with pytest.raises(Conflict, match=r"^alice owns 1 space\(s\) \(db\); delete them first"):
        users.delete_user(session, root, "alice", adapters, settings, force=True)
    assert provider(adapters).keys() != []


def test_a_providers_reason_ends_the_sentence_once(
    session: Session, adapters: Adapters, alice: User
) -> None:
    db = spaces.create_space(session, adapters, alice, "db", G)
    provider(adapters).fail.add("checkpoint")
    with pytest.raises(spaces.SpaceFailed) as caught:
        spaces.checkpoint_space(session, adapters, db, "v1")
    assert str(caught.value) == "The space db could not be checkpointed: fake checkpoint failed."
