"""The collector: Navi's files (written by navi.py itself) and Docker events become events once."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from slipway.config import Settings
from slipway.db import Base, make_engine, make_session_factory, session_scope
from slipway.models import App, Event, Instance, Release, User
from slipway.runtime.base import ContainerEvent
from slipway.services import collector
from slipway.tasks import dispatch
from slipway.volumes.directory import DirectoryProvider

NAVI_PATH = Path(__file__).resolve().parents[2] / "navi" / "navi.py"
EXITED = (
    "ver:3.0 server:supervisor serial:9 pool:navi poolserial:9 "
    "eventname:PROCESS_STATE_EXITED len:68\n"
    "processname:web groupname:web from_state:RUNNING expected:0 pid:9932"
)


def load_navi() -> ModuleType:
    spec = importlib.util.spec_from_file_location("navi_for_collector", NAVI_PATH)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


navi = load_navi()


@pytest.fixture(autouse=True)
def sent() -> Iterator[list[tuple[str, tuple[object, ...]]]]:
    record: list[tuple[str, tuple[object, ...]]] = []
    previous = dispatch.set_sender(lambda name, args: record.append((name, args)))
    yield record
    dispatch.set_sender(previous)


@pytest.fixture
def factory(settings: Settings) -> sessionmaker[Session]:
    engine = make_engine(settings)
    Base.metadata.create_all(engine)
    return make_session_factory(engine)


@pytest.fixture
def volumes(settings: Settings) -> DirectoryProvider:
    return DirectoryProvider(settings.volumes_dir)


@pytest.fixture
def instance_id(factory: sessionmaker[Session], volumes: DirectoryProvider) -> int:
    volume = volumes.create("hello-web-1", 0)
    (volume.path / "notifications").mkdir()
    with session_scope(factory) as session:
        app = App(name="hello", owner=User(username="ada"))
        release = Release(app=app, version=1, slug_path="/x", stack="static")
        instance = Instance(
            app=app,
            release=release,
            container_id="c0ffee",
            container_name="hello-web-1",
            volume_name="hello-web-1",
            state="live",
        )
        session.add(instance)
        session.flush()
        return instance.id


def navi_writes(volumes: DirectoryProvider, oom: bool = False) -> Path:
    """Let the real listener handle one recorded crash into the instance's volume."""
    volume = volumes.get("hello-web-1")
    assert volume is not None
    cgroup = volume.path / "oom_control"
    cgroup.write_text("oom_kill 0\n")
    env = {
        "NAVI_NOTIFICATIONS_DIR": str(volume.path / "notifications"),
        "NAVI_LOG_FILE": os.devnull,
        "NAVI_CGROUP_V1_OOM": str(cgroup),
        "NAVI_CGROUP_V2_EVENTS": str(cgroup),
    }
    listener = navi.Navi(env, proxy=None)
    if oom:
        cgroup.write_text("oom_kill 1\n")
    header, payload = EXITED.split("\n")
    written = listener.handle(navi.parse_tokens(header), payload)
    assert written is not None
    return Path(written)


def events(factory: sessionmaker[Session]) -> list[Event]:
    with session_scope(factory) as session:
        return list(session.scalars(select(Event).order_by(Event.id)))


def test_files_become_events_once_and_are_removed_after_commit(
    factory: sessionmaker[Session], volumes: DirectoryProvider, instance_id: int, settings: Settings
) -> None:
    crash, oom = navi_writes(volumes), navi_writes(volumes, oom=True)
    (crash.parent / ".navi-half-written.tmp").write_text("{")
    (crash.parent / "garbage.json").write_text("not json")

    with session_scope(factory) as session:
        first = collector.collect_notifications(session, volumes, settings)
    assert sorted(p.name for p in first.files) == sorted([crash.name, oom.name, "garbage.json"])
    assert crash.exists()  # nothing is removed before the caller commits
    with session_scope(factory) as session:  # a second pass before removal: no duplicates
        assert collector.collect_notifications(session, volumes, settings).events == []
    collector.remove_files(first.files)

    stored = events(factory)
    assert [e.type for e in stored] == ["crash", "oom"]
    assert stored[0].instance_id == instance_id
    assert stored[0].data["pid"] == 9932 and stored[0].data["source"] == "navi"
    assert "hello-web-1" in stored[0].message
    assert [p.name for p in crash.parent.iterdir()] == [".navi-half-written.tmp"]


def test_a_crash_loop_marks_the_instance_crashed_once(
    factory: sessionmaker[Session], volumes: DirectoryProvider, instance_id: int, settings: Settings
) -> None:
    looping = settings.with_overrides(crash_loop_count=3, crash_loop_window=60)
    for _ in range(4):
        navi_writes(volumes)

    with session_scope(factory) as session:
        collector.collect_notifications(session, volumes, looping)

    stored = events(factory)
    assert [e.type for e in stored] == ["crash"] * 4 + ["crash_loop"]
    with session_scope(factory) as session:
        instance = session.get(Instance, instance_id)
        assert instance is not None and instance.state == "crashed"


def test_docker_death_after_oom_is_an_oom_and_platform_stops_are_ignored(
    factory: sessionmaker[Session], instance_id: int, settings: Settings
) -> None:
    docker = collector.DockerEvents(settings)
    oom = ContainerEvent("oom", "c0ffee", {}, 100.0)
    die = ContainerEvent("die", "c0ffee", {}, 101.0, exit_code=137)

    with session_scope(factory) as session:
        assert docker.handle(session, oom) is None
        recorded = docker.handle(session, die)
        assert recorded is not None and recorded.type == "oom"
        assert docker.handle(session, die) is None  # the same event twice is stored once
    with session_scope(factory) as session:
        instance = session.get(Instance, instance_id)
        assert instance is not None
        assert instance.state == "crashed"
        instance.state = "draining"  # the platform is stopping it now
    with session_scope(factory) as session:
        assert docker.handle(session, ContainerEvent("die", "c0ffee", {}, 200.0, 0)) is None
    assert [e.type for e in events(factory)] == ["oom"]
