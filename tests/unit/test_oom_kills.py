"""OOM kills of any process in an instance become one ``oom`` event each: the kernel's counter
read from the host, the victim's name from its log, and Navi's note of the same kill shared."""

# ruff: noqa: F811  # the fixtures imported from test_events_collector are requested by name

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from slipway.config import Settings
from slipway.db import session_scope
from slipway.models import Instance, Webhook
from slipway.runtime.base import ContainerInfo
from slipway.runtime.kernel import (
    OomVictim,
    counter_files,
    counter_files_of_pid,
    parse_victim,
    read_oom_kill,
)
from slipway.services import collector, webhooks
from slipway.services.oomkills import MAX_EVENTS_PER_PASS, OomWatch, oom_key
from slipway.volumes.directory import DirectoryProvider
from tests.fakes import FakeRuntime
from tests.unit.test_events_collector import (  # noqa: F401  (fixtures are used by name)
    events,
    factory,
    instance_id,
    navi_writes,
    sent,
    volumes,
)

CONTAINER = "c0ffee"  # the instance_id fixture's container
KMSG_LINE = (
    "6,1234,8882432510,-;oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset={id},"
    "mems_allowed=0,oom_memcg=/docker/{id},task_memcg=/docker/{id},task={task},pid=29976,"
    "uid=61000\n SUBSYSTEM=memory\n"
)


class FakeLog:
    """The kernel's log: victims handed out once, as /dev/kmsg does."""

    def __init__(self) -> None:
        self.pending: list[OomVictim] = []

    def kill(self, name: str, container: str = CONTAINER) -> None:
        self.pending.append(OomVictim(f"/docker/{container}", name))

    def read(self) -> list[OomVictim]:
        out, self.pending = self.pending, []
        return out


def running_runtime() -> FakeRuntime:
    runtime = FakeRuntime()
    runtime.containers[CONTAINER] = ContainerInfo(CONTAINER, "hello-web-1", "running", {}, None)
    return runtime


def watcher(
    factory: sessionmaker[Session],
    volumes: DirectoryProvider,
    settings: Settings,
    runtime: FakeRuntime,
    log: FakeLog,
) -> collector.Watcher:
    @contextmanager
    def open_session() -> Iterator[Session]:
        with session_scope(factory) as session:
            yield session

    return collector.Watcher(open_session, runtime, volumes, settings, oom_log=log)


def subscribe(factory: sessionmaker[Session], instance_id: int) -> None:
    with session_scope(factory) as session:
        instance = session.get(Instance, instance_id)
        assert instance is not None
        session.add(Webhook(app_id=instance.app_id, url="http://x/", events=["oom"], secret="s"))


# ----------------------------------------------------------------------------- the kernel


def test_the_kernels_log_names_the_victim_and_its_cgroup() -> None:
    victim = parse_victim(KMSG_LINE.format(id="ab12", task="gunicorn"))
    assert victim == OomVictim("/docker/ab12", "gunicorn")
    assert parse_victim("6,1,2,-;Memory cgroup out of memory: Killed process 1 (x)") is None
    assert parse_victim("no record at all") is None


def test_a_process_name_the_app_chose_is_tamed() -> None:
    tricky = KMSG_LINE.format(id="ab12", task="a,pid=1 <b>\\x1b[31m")
    victim = parse_victim(tricky)
    assert victim is not None and victim.cgroup == "/docker/ab12"
    assert victim.name == "a_pid_1__b__x1b_31m"


def test_the_counter_is_read_from_v1_and_v2_files(tmp_path: Path) -> None:
    v1, v2 = tmp_path / "oom_control", tmp_path / "events"
    v1.write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 3\n")
    v2.write_text("low 0\nhigh 0\nmax 12\noom 2\noom_kill 2\noom_group_kill 0\n")
    assert (read_oom_kill(v1), read_oom_kill(v2), read_oom_kill(tmp_path / "gone")) == (3, 2, None)


def test_the_counter_files_of_a_container_and_of_a_process(tmp_path: Path) -> None:
    paths = [str(p) for p in counter_files("ab12", tmp_path)]
    assert paths == [
        f"{tmp_path}/memory/docker/ab12/memory.oom_control",
        f"{tmp_path}/memory/system.slice/docker-ab12.scope/memory.oom_control",
        f"{tmp_path}/docker/ab12/memory.events",
        f"{tmp_path}/system.slice/docker-ab12.scope/memory.events",
    ]
    proc = tmp_path / "proc"
    (proc / "42").mkdir(parents=True)
    (proc / "42" / "cgroup").write_text(
        "12:pids:/custom/ab12\n9:memory:/custom/ab12\n0::/custom.slice/ab12\n"
    )
    found = counter_files_of_pid(42, tmp_path / "cg", proc)
    assert [str(p) for p in found] == [
        f"{tmp_path}/cg/memory/custom/ab12/memory.oom_control",
        f"{tmp_path}/cg/custom.slice/ab12/memory.events",
    ]
    assert counter_files_of_pid(43, tmp_path, proc) == []


# ----------------------------------------------------------------------------- the watch


def test_a_worker_killed_for_memory_is_one_oom_event_naming_it_and_its_webhook_fires(
    factory: sessionmaker[Session],
    volumes: DirectoryProvider,
    instance_id: int,
    settings: Settings,
    sent: list[tuple[str, tuple[object, ...]]],
) -> None:
    subscribe(factory, instance_id)
    runtime, log = running_runtime(), FakeLog()
    watch = watcher(factory, volumes, settings, runtime, log)
    watch.poll_once()
    runtime.oom_counts[CONTAINER] = 1
    log.kill("gunicorn")

    assert watch.poll_once() == []  # counted: Navi gets a pass to write its note first
    [recorded] = watch.poll_once()
    assert watch.poll_once() == [] and watch.poll_once() == []  # once per kill

    [event] = events(factory)
    assert event.id == recorded and event.type == "oom" and event.instance_id == instance_id
    assert event.data == {"source": "cgroup", "oom_kills": 1, "process": "gunicorn"}
    assert event.dedupe_key == oom_key(CONTAINER, 1)
    assert (
        event.message == "Process gunicorn of hello-web-1 ran out of memory (killed by the kernel)."
    )
    assert [name for name, _ in sent] == [webhooks.DELIVER_TASK]  # its delivery, queued


def test_a_kill_navi_noted_is_not_stored_twice(
    factory: sessionmaker[Session],
    volumes: DirectoryProvider,
    instance_id: int,
    settings: Settings,
) -> None:
    runtime, log = running_runtime(), FakeLog()
    watch = watcher(factory, volumes, settings, runtime, log)
    watch.poll_once()
    navi_writes(volumes, oom=True)  # supervisord's program, SIGKILLed as the counter went to 1
    runtime.oom_counts[CONTAINER] = 1
    log.kill("python3")

    for _ in range(4):
        watch.poll_once()

    [event] = events(factory)
    assert event.data["source"] == "navi" and event.data["oom_kills"] == 1
    assert event.dedupe_key == oom_key(CONTAINER, 1)


def test_a_name_with_no_log_and_a_storm_of_kills_in_one_pass(
    factory: sessionmaker[Session],
    volumes: DirectoryProvider,
    instance_id: int,
    settings: Settings,
) -> None:
    runtime = running_runtime()
    watch = watcher(factory, volumes, settings, runtime, FakeLog())
    watch.poll_once()
    runtime.oom_counts[CONTAINER] = 1
    watch.poll_once()
    watch.poll_once()
    storm = MAX_EVENTS_PER_PASS + 3
    runtime.oom_counts[CONTAINER] = 1 + storm
    watch.poll_once()
    watch.poll_once()

    single, many = events(factory)
    assert single.message == "A process of hello-web-1 ran out of memory (killed by the kernel)."
    assert "process" not in single.data
    assert many.data == {"source": "cgroup", "oom_kills": 1 + storm, "kills": storm}
    assert many.message.startswith(f"{storm} processes of hello-web-1 ran out of memory")


def test_a_restarted_collector_stores_only_the_kills_not_stored_yet(
    factory: sessionmaker[Session],
    volumes: DirectoryProvider,
    instance_id: int,
    settings: Settings,
) -> None:
    runtime, log = running_runtime(), FakeLog()
    first = watcher(factory, volumes, settings, runtime, log)
    runtime.oom_counts[CONTAINER] = 2
    log.kill("one")
    log.kill("two")
    first.poll_once()
    first.poll_once()
    assert [e.data["process"] for e in events(factory)] == ["one", "two"]

    runtime.oom_counts[CONTAINER] = 3  # one more while the collector was down
    log.pending = [OomVictim("/docker/c0ffee", n) for n in ("one", "two", "three")]  # replayed
    again = watcher(factory, volumes, settings, runtime, log)
    again.poll_once()
    again.poll_once()

    assert [e.data["process"] for e in events(factory)] == ["one", "two", "three"]


def test_a_gone_container_and_other_containers_victims_make_nothing(
    factory: sessionmaker[Session],
    instance_id: int,
) -> None:
    runtime, log = running_runtime(), FakeLog()
    watch = OomWatch(runtime, log)
    log.kill("elsewhere", container="beef")
    with session_scope(factory) as session:
        [instance] = session.query(Instance).all()
        assert watch.poll(session, [instance]) == []
        runtime.oom_counts[CONTAINER] = 1
        assert watch.poll(session, [instance]) == []
        runtime.containers.clear()  # died with its kill pending: Docker's die tells of it
        assert watch.poll(session, [instance]) == []
        assert watch.poll(session, [instance]) == []
    assert events(factory) == []
    assert watch.recorded == {} and watch.victims == {}


def test_kills_count_towards_a_crash_loop(
    factory: sessionmaker[Session],
    volumes: DirectoryProvider,
    instance_id: int,
    settings: Settings,
) -> None:
    looping = settings.with_overrides(crash_loop_count=3, crash_loop_window=60)
    runtime = running_runtime()
    watch = watcher(factory, volumes, looping, runtime, FakeLog())
    for count in (1, 2, 3):
        runtime.oom_counts[CONTAINER] = count
        watch.poll_once()
    watch.poll_once()

    assert [e.type for e in events(factory)] == ["oom"] * 3 + ["crash_loop"]
