"""Navi, the supervisord event listener, fed exchanges recorded from a real supervisord 4.2."""

from __future__ import annotations

import importlib.util
import io
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

NAVI_PATH = Path(__file__).resolve().parents[2] / "navi" / "navi.py"


def load_navi() -> ModuleType:
    spec = importlib.util.spec_from_file_location("navi_under_test", NAVI_PATH)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


navi = load_navi()

# Header + payload pairs exactly as supervisord 4.2.5 wrote them to a listener's stdin.
RECORDED = [
    (
        "ver:3.0 server:supervisor serial:0 pool:navi poolserial:0 "
        "eventname:PROCESS_STATE_STARTING len:58",
        "processname:navi groupname:navi from_state:STOPPED tries:0",
    ),
    (
        "ver:3.0 server:supervisor serial:3 pool:navi poolserial:3 "
        "eventname:PROCESS_STATE_STARTING len:56",
        "processname:web groupname:web from_state:STOPPED tries:0",
    ),
    (
        "ver:3.0 server:supervisor serial:4 pool:navi poolserial:4 "
        "eventname:PROCESS_STATE_BACKOFF len:61",
        "processname:quick groupname:quick from_state:STARTING tries:1",
    ),
    (
        "ver:3.0 server:supervisor serial:8 pool:navi poolserial:8 "
        "eventname:PROCESS_STATE_RUNNING len:58",
        "processname:web groupname:web from_state:STARTING pid:9932",
    ),
    (
        "ver:3.0 server:supervisor serial:9 pool:navi poolserial:9 "
        "eventname:PROCESS_STATE_EXITED len:74",
        "processname:killed groupname:killed from_state:RUNNING expected:0 pid:9923",
    ),
    (
        "ver:3.0 server:supervisor serial:11 pool:navi poolserial:11 "
        "eventname:PROCESS_STATE_FATAL len:52",
        "processname:quick groupname:quick from_state:BACKOFF",
    ),
    (
        "ver:3.0 server:supervisor serial:12 pool:navi poolserial:12 "
        "eventname:PROCESS_STATE_EXITED len:68",
        "processname:web groupname:web from_state:RUNNING expected:0 pid:9932",
    ),
    (
        "ver:3.0 server:supervisor serial:25 pool:navi poolserial:25 "
        "eventname:PROCESS_STATE_STOPPED len:59",
        "processname:web groupname:web from_state:STOPPING pid:10731",
    ),
]
EXITED_EXPECTED = (
    "ver:3.0 server:supervisor serial:30 pool:navi poolserial:30 "
    "eventname:PROCESS_STATE_EXITED len:68",
    "processname:web groupname:web from_state:RUNNING expected:1 pid:9940",
)
NAVI_EXITED = (
    "ver:3.0 server:supervisor serial:31 pool:navi poolserial:31 "
    "eventname:PROCESS_STATE_EXITED len:70",
    "processname:navi groupname:navi from_state:RUNNING expected:0 pid:9922",
)
SUPERVISORD_LOG = """\
2026-11-22 09:58:53,088 WARN exited: quick (exit status 1; not expected)
2026-11-22 09:58:54,569 WARN exited: killed (terminated by SIGKILL; not expected)
2026-11-22 09:58:55,105 WARN exited: web (exit status 3; not expected)
"""


def stream(*events: tuple[str, str]) -> io.BytesIO:
    data = b"".join(f"{header}\n{payload}".encode() for header, payload in events)
    return io.BytesIO(data)


class FakeSupervisor:
    def __init__(self, log: str | None) -> None:
        self.log = log

    def readLog(self, offset: int, length: int) -> str:  # noqa: N802 (supervisord's RPC name)
        if self.log is None:
            raise ConnectionRefusedError("no RPC here")
        return self.log


class FakeProxy:
    def __init__(self, log: str | None) -> None:
        self.supervisor = FakeSupervisor(log)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    notes = tmp_path / "notifications"
    notes.mkdir()
    app_log = tmp_path / "app.log"
    app_log.write_text("".join(f"line {i}\n" for i in range(50)))
    oom = tmp_path / "memory.oom_control"
    oom.write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 0\n")
    return {
        "NAVI_NOTIFICATIONS_DIR": str(notes),
        "NAVI_LOG_FILE": str(app_log),
        "NAVI_CGROUP_V1_OOM": str(oom),
        "NAVI_CGROUP_V2_EVENTS": str(tmp_path / "absent"),
        "SLIPWAY_APP": "hello",
        "SLIPWAY_INSTANCE": "hello-web-1",
        "SUPERVISOR_PROCESS_NAME": "navi",
    }


def run(env: dict[str, str], source: io.BytesIO, proxy: Any = None) -> tuple[bytes, str]:
    out, err = io.BytesIO(), io.StringIO()
    listener = navi.Navi(env, proxy=proxy or FakeProxy(SUPERVISORD_LOG))
    navi.main_loop(source, out, err, listener)
    return out.getvalue(), err.getvalue()


def notes(env: dict[str, str]) -> list[dict[str, Any]]:
    directory = Path(env["NAVI_NOTIFICATIONS_DIR"])
    return [json.loads(p.read_text()) for p in sorted(directory.iterdir())]


def test_replayed_exchange_answers_every_event_and_writes_crash_files(env: dict[str, str]) -> None:
    out, err = run(env, stream(*RECORDED))

    assert out == b"READY\nRESULT 2\nOK" * len(RECORDED) + b"READY\n"
    assert err == ""
    written = notes(env)
    assert [(n["process"], n["state"]) for n in written] == [
        ("quick", "BACKOFF"),
        ("killed", "EXITED"),
        ("quick", "FATAL"),
        ("web", "EXITED"),
    ]
    killed = written[1]
    assert killed["type"] == "crash"
    assert (killed["app"], killed["instance"], killed["pid"]) == ("hello", "hello-web-1", 9923)
    assert killed["signal"] == "SIGKILL"
    assert written[3]["exit_status"] == 3
    assert killed["log_tail"] == [f"line {i}" for i in range(30, 50)]
    assert killed["time_iso"].startswith("20")
    assert isinstance(killed["time"], float)


def test_file_names_and_no_temporary_files_left(env: dict[str, str]) -> None:
    run(env, stream(RECORDED[4]))

    names = [p.name for p in Path(env["NAVI_NOTIFICATIONS_DIR"]).iterdir()]
    assert len(names) == 1
    stamp, process, kind = names[0].removesuffix(".json").split("-")
    assert stamp.isdigit() and process == "killed" and kind == "crash"


def test_expected_exit_and_its_own_exit_are_ignored(env: dict[str, str]) -> None:
    out, _ = run(env, stream(EXITED_EXPECTED, NAVI_EXITED))

    assert out.count(b"RESULT 2\nOK") == 2
    assert notes(env) == []


def test_oom_when_the_cgroup_counter_rose(env: dict[str, str]) -> None:
    listener = navi.Navi(env, proxy=FakeProxy(SUPERVISORD_LOG))
    Path(env["NAVI_CGROUP_V1_OOM"]).write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n")
    navi.main_loop(stream(RECORDED[4], RECORDED[6]), io.BytesIO(), io.StringIO(), listener)

    first, second = notes(env)
    assert (first["type"], first["oom_kills"]) == ("oom", 2)
    assert (second["type"], second["oom_kills"]) == ("crash", 2)  # no new kill since


def test_a_program_that_exits_with_a_status_crashed_though_the_counter_rose(
    env: dict[str, str],
) -> None:
    listener = navi.Navi(env, proxy=FakeProxy(SUPERVISORD_LOG))
    # A worker was killed for memory (the platform counts that one), then web exited with 3.
    Path(env["NAVI_CGROUP_V1_OOM"]).write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 1\n")
    navi.main_loop(stream(RECORDED[6]), io.BytesIO(), io.StringIO(), listener)

    (note,) = notes(env)
    assert (note["process"], note["exit_status"]) == ("web", 3)
    assert (note["type"], note["oom_kills"]) == ("crash", 1)


def test_cgroup_v2_memory_events(tmp_path: Path) -> None:
    events = tmp_path / "memory.events"
    events.write_text("low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\noom_group_kill 0\n")

    assert navi.read_oom_kills(str(tmp_path / "absent"), str(events)) == 1
    assert navi.read_oom_kills(str(tmp_path / "a"), str(tmp_path / "b")) is None


def test_malformed_events_still_get_an_answer(env: dict[str, str]) -> None:
    bad_length = ("ver:3.0 eventname:PROCESS_STATE_FATAL len:abc", "")
    no_process = ("ver:3.0 eventname:PROCESS_STATE_FATAL len:18", "groupname:whatever")
    garbage = ("this is not a header", "")
    out, err = run(env, stream(bad_length, no_process, garbage, RECORDED[4]))

    assert out == b"READY\nRESULT 2\nOK" * 4 + b"READY\n"
    assert "cannot read event" in err and "cannot handle event" in err
    assert [n["process"] for n in notes(env)] == ["killed"]


def test_write_failure_still_answers_ok(env: dict[str, str]) -> None:
    env["NAVI_NOTIFICATIONS_DIR"] = str(Path(env["NAVI_NOTIFICATIONS_DIR"]) / "missing")
    out, err = run(env, stream(RECORDED[4], RECORDED[5]))

    assert out == b"READY\nRESULT 2\nOK" * 2 + b"READY\n"
    assert err.count("cannot handle event PROCESS_STATE_") == 2


def test_unreachable_supervisord_rpc_still_writes_the_file(env: dict[str, str]) -> None:
    run(env, stream(RECORDED[4]), proxy=FakeProxy(None))

    (note,) = notes(env)
    assert "exit_status" not in note and "signal" not in note
    assert note["process"] == "killed"


def test_exit_reason_takes_the_latest_line_for_that_process() -> None:
    log = SUPERVISORD_LOG + "2026-11-22 10:00:00,000 WARN exited: web (exit status 7; x)\n"

    assert navi.exit_reason(log, "web") == {"exit_status": 7}
    assert navi.exit_reason(log, "killed") == {"signal": "SIGKILL"}
    assert navi.exit_reason(log, "other") == {}
