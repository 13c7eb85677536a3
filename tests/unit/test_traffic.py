"""The traffic log reader and the sleeper's look (a real file; fakes for Docker and the router)."""

# ruff: noqa: F811  # the fixtures imported from test_pipeline are requested by parameter name

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy.orm import Session

from slipway.adapters import Adapters
from slipway.config import Settings
from slipway.host.sleeper import ACTIVE_STAMP_EVERY, Sleeper
from slipway.host.traffic import TrafficLog
from slipway.models import App
from slipway.router.nginx import NginxRouter, traffic_log_path
from tests.fakes import RecordingSender
from tests.unit.test_pipeline import (  # noqa: F401  (fixtures are used by name)
    STATIC,
    adapters,
    app,
    deploy,
    live,
    sent,
    session,
    settings,
)


def _append(path: Path, text: str) -> None:
    with path.open("a") as handle:
        handle.write(text)


def test_each_app_gets_its_last_request_and_only_new_lines_are_read(tmp_path: Path) -> None:
    path = tmp_path / "traffic.log"
    _append(path, "1700000000.100 up_hello\n1700000005.250 up_other\n1700000003.000 up_hello\n")
    _append(path, "1700000006.000 -\nnot a line\n1700000007.000 up_hello extra\nabc up_x\n")
    log = TrafficLog(path)

    assert log.read() == {"hello": 1700000003.0, "other": 1700000005.25}  # the latest, not the last
    assert log.read() == {}  # nothing new
    _append(path, "1700000010.000 up_other\n")
    assert log.read() == {"other": 1700000010.0}


def test_a_line_still_being_written_is_read_once_it_ends(tmp_path: Path) -> None:
    path = tmp_path / "traffic.log"
    _append(path, "1700000000.000 up_hello\n1700000001.000 up_ot")
    log = TrafficLog(path)

    assert log.read() == {"hello": 1700000000.0}
    _append(path, "her\n")
    assert log.read() == {"other": 1700000001.0}


def test_a_missing_or_truncated_file_starts_again(tmp_path: Path) -> None:
    path = tmp_path / "traffic.log"
    log = TrafficLog(path)
    assert log.read() == {}  # nginx has not written it yet

    _append(path, "1700000000.000 up_hello\n" * 10)
    assert log.read() == {"hello": 1700000000.0}
    path.write_text("1700000100.000 up_b\n")  # emptied (by logrotate, say) and written again
    assert log.read() == {"b": 1700000100.0}


def test_the_reader_empties_the_file_past_its_size_limit(tmp_path: Path) -> None:
    path = tmp_path / "traffic.log"
    line = "1700000000.000 up_hello\n"
    log = TrafficLog(path, max_size=len(line) * 3)
    _append(path, line * 2)
    assert log.read() == {"hello": 1700000000.0}
    assert path.stat().st_size == len(line) * 2

    _append(path, "1700000001.000 up_hello\n")
    assert log.read() == {"hello": 1700000001.0}
    assert path.stat().st_size == 0 and log.offset == 0
    _append(path, "1700000002.000 up_hello\n")  # nginx appends: it lands at the new end
    assert log.read() == {"hello": 1700000002.0}


def test_the_router_writes_where_the_sleeper_reads(settings: Settings) -> None:
    router = NginxRouter(settings)

    assert f'"{traffic_log_path(settings)}" slipway_traffic' in router.render_main(
        router.sites_conf
    )
    assert Sleeper(settings).traffic.path == traffic_log_path(settings)


# ----------------------------------------------------------------------------- the sleeper


def test_the_sleeper_stores_activity_at_most_every_30_seconds_and_sleeps_idle_apps(
    session: Session,
    app: App,
    adapters: Adapters,
    settings: Settings,
    sent: RecordingSender,
    tmp_path: Path,
) -> None:
    assert deploy(session, app, adapters, settings, STATIC).state == "succeeded"
    app.sleep_after = 60
    app.active_at = datetime.now(UTC) - timedelta(hours=1)
    session.commit()
    path = tmp_path / "traffic.log"
    sleeper = Sleeper(settings, TrafficLog(path))
    now = time.time()

    _append(path, f"{now - 20:.3f} up_hello\n")
    assert sleeper.look(session, adapters, now) == []
    session.refresh(app)
    assert app.active_at is not None and abs(app.active_at.timestamp() - (now - 20)) < 0.01

    _append(path, f"{now - 5:.3f} up_hello\n")  # within 30 s of the stored one: not written
    assert sleeper.look(session, adapters, now) == []
    session.refresh(app)
    assert abs(app.active_at.timestamp() - (now - 20)) < 0.01
    assert abs(sleeper.last_requests["hello"] - (now - 5)) < 0.01

    later = now + ACTIVE_STAMP_EVERY + 1
    _append(path, f"{later - 1:.3f} up_hello\n")
    assert sleeper.look(session, adapters, later) == []
    session.refresh(app)
    assert abs(app.active_at.timestamp() - (later - 1)) < 0.01

    # A restart forgets the traffic read so far; the stored active_at keeps the app awake.
    fresh = Sleeper(settings, TrafficLog(tmp_path / "new.log"))
    assert fresh.look(session, adapters, later + 30) == []
    assert fresh.look(session, adapters, later + 61) == ["hello"]
    session.refresh(app)
    assert app.sleeping and live(session, app) == []
