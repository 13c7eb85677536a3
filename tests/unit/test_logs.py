"""App logs on real files: tails, rotation, merging, kept logs of replaced instances."""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from slipway.config import Settings
from slipway.services import logs
from slipway.services.logs import Follower, LogSource


def make_source(root: Path, label: str, text: str = "", old: bool = False) -> LogSource:
    (root / "log").mkdir(parents=True, exist_ok=True)
    (root / "log" / "app.log").write_text(text)
    return LogSource(label, root, old)


def append(source: LogSource, text: str) -> None:
    with (source.root / "log" / "app.log").open("a") as log:
        log.write(text)


def rotate(source: LogSource) -> None:
    """What supervisord does past stdout_logfile_maxbytes."""
    log_dir = source.root / "log"
    os.replace(log_dir / "app.log", log_dir / "app.log.1")
    (log_dir / "app.log").write_text("")


def test_tail_prefixes_every_line_and_puts_old_instances_first(tmp_path: Path) -> None:
    web1 = make_source(tmp_path / "a", "web.1", "a1\na2\na3\n")
    web2 = make_source(tmp_path / "b", "web.2", "b1\n")
    old = make_source(tmp_path / "c", "web.1 (old v1)", "o1\no2\n", old=True)
    assert logs.tail([web1, web2, old], 2) == [
        "web.1 (old v1) | o1",
        "web.1 (old v1) | o2",
        "web.1 | a2",
        "web.1 | a3",
        "web.2 | b1",
    ]
    assert logs.tail([web1], 0) == []


def test_tail_reaches_into_rotated_backups(tmp_path: Path) -> None:
    source = make_source(tmp_path, "web.1", "first\nsecond\n")
    rotate(source)
    append(source, "third\n")
    assert logs.tail([source], 3) == ["web.1 | first", "web.1 | second", "web.1 | third"]


def test_tail_of_a_long_file_reads_only_the_end(tmp_path: Path) -> None:
    text = "".join(f"line {n}\n" for n in range(200_000))
    source = make_source(tmp_path, "web.1", text + "partial")
    assert logs.tail([source], 3) == [
        "web.1 | line 199998",
        "web.1 | line 199999",
        "web.1 | partial",
    ]


def test_symlinks_and_fifos_planted_by_the_app_are_not_read(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("host secret\n")
    linked = make_source(tmp_path / "link", "web.1")
    (linked.root / "log" / "app.log").unlink()
    (linked.root / "log" / "app.log").symlink_to(secret)
    fifo = make_source(tmp_path / "fifo", "web.2")
    (fifo.root / "log" / "app.log").unlink()
    os.mkfifo(fifo.root / "log" / "app.log")
    target = tmp_path / "target"
    target.mkdir()
    (target / "app.log").write_text("host file\n")
    dir_link = tmp_path / "dirlink"
    dir_link.mkdir()
    (dir_link / "log").symlink_to(target)
    assert logs.tail([linked, fifo, LogSource("web.3", dir_link)], 10) == []


def test_follower_reads_new_lines_across_a_rotation(tmp_path: Path) -> None:
    source = make_source(tmp_path, "web.1", "old\n")
    _, position = logs.read_tail(source, 10)
    follower = Follower()
    follower.watch(source, position)
    assert follower.poll() == []
    append(source, "one\ntw")
    assert follower.poll() == ["web.1 | one"]
    append(source, "o\nthree\n")
    rotate(source)
    append(source, "four\n")
    assert follower.poll() == ["web.1 | two", "web.1 | three", "web.1 | four"]


@dataclass
class Sources:
    current: list[LogSource]

    def __call__(self) -> list[LogSource]:
        return list(self.current)


def test_follow_streams_new_lines_picks_up_new_instances_and_ends_at_the_limit(
    tmp_path: Path,
) -> None:
    web1 = make_source(tmp_path / "a", "web.1", "before\n")
    sources = Sources([web1])
    stream = logs.follow(sources, 5, limit=3.0, poll_interval=0.05, heartbeat=0.5, relist_every=0.1)
    assert next(stream) == "web.1 | before"

    def write_later() -> None:
        time.sleep(0.3)
        append(web1, "after\n")
        sources.current.append(make_source(tmp_path / "b", "web.2", "fresh\n"))

    writer = threading.Thread(target=write_later)
    writer.start()
    started = time.monotonic()
    seen = list(stream)
    writer.join()
    assert time.monotonic() - started < 5
    assert "web.1 | after" in seen and "web.2 | fresh" in seen
    assert "" in seen  # keepalives while nothing was written


# ----------------------------------------------------------------------------- kept logs


@dataclass
class FakeRelease:
    version: int


@dataclass
class FakeApp:
    name: str
    id: int
    created_at_ts: float

    @property
    def created_at(self) -> datetime:
        return datetime.fromtimestamp(self.created_at_ts, UTC)


@dataclass
class FakeInstance:
    id: int
    process_type: str
    index: int
    volume_name: str
    container_name: str
    app: FakeApp
    release: FakeRelease


@dataclass
class OneVolume:
    path: Path

    def get(self, name: str) -> object:
        @dataclass
        class V:
            path: Path

        return V(self.path) if name == "app-hello-1" else None


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", old_logs_retention=60)


def test_logs_of_a_replaced_instance_are_kept_marked_old_then_pruned(
    tmp_path: Path, settings: Settings
) -> None:
    volume = tmp_path / "volume"
    source = make_source(volume, "web.1", "served by v1\n")
    rotate(source)
    append(source, "last words\n")
    app = FakeApp("hello", 1, 1_700_000_000)
    instance = FakeInstance(1, "web", 1, "app-hello-1", "slipway-hello-1", app, FakeRelease(1))
    kept = logs.keep_logs(settings, OneVolume(volume), instance)  # type: ignore[arg-type]
    assert kept is not None
    (old,) = logs.old_sources(settings, app)  # type: ignore[arg-type]
    assert old.old and old.label == "web.1 (old v1)"
    assert logs.tail([old], 5) == ["web.1 (old v1) | served by v1", "web.1 (old v1) | last words"]
    # another app that later gets the same name never sees them
    assert logs.old_sources(settings, FakeApp("hello", 1, 1_700_000_500)) == []  # type: ignore[arg-type]
    assert logs.old_sources(settings, app, now=time.time() + 61) == []  # type: ignore[arg-type]
    assert not kept.exists()


def test_keeping_logs_never_raises(tmp_path: Path, settings: Settings) -> None:
    app = FakeApp("hello", 1, 0)
    instance = FakeInstance(1, "web", 1, "gone", "slipway-hello-1", app, FakeRelease(1))
    assert logs.keep_logs(settings, OneVolume(tmp_path), instance) is None  # type: ignore[arg-type]
