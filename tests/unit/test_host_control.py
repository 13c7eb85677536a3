"""The control plane's supervisord configuration and environment (nothing is started)."""

from __future__ import annotations

import configparser
import os
from pathlib import Path
from unittest import mock

from slipway.config import Settings
from slipway.host import control
from slipway.host.environment import process_env, settings_env
from slipway.host.supervisor import Program, Supervisor


def test_the_settings_survive_the_trip_through_the_environment(settings: Settings) -> None:
    tuned = settings.with_overrides(
        api_bind="127.0.0.1:7100", build_volume_size=3 * 1024**3, database_url="postgresql://x/y"
    )

    with mock.patch.dict(os.environ, settings_env(tuned), clear=True):
        assert Settings.from_env() == tuned


def test_other_slipway_variables_pass_through_and_the_system_path_is_added(
    settings: Settings,
) -> None:
    env = process_env(settings, {"SLIPWAY_FUTURE_KNOB": "7", "HOME": "/root", "PATH": "/bin"})

    assert env["SLIPWAY_FUTURE_KNOB"] == "7"
    assert env["SLIPWAY_DATA_DIR"] == str(settings.data_dir)
    assert "HOME" not in env
    assert env["PATH"].startswith("/bin:") and "/usr/sbin" in env["PATH"]


def test_supervisord_config_quotes_percent_signs_and_values(tmp_path: Path) -> None:
    supervisor = Supervisor(tmp_path, tmp_path / "logs", "slipway-test")
    program = Program("worker", ["celery", "--hostname", "w@%h"], 40, {"A": 'say "hi" 100%'})

    parsed = configparser.RawConfigParser()
    parsed.read_string(supervisor.render([program]))

    section = parsed["program:worker"]
    assert section["command"] == "celery --hostname w@%%h"
    assert section["environment"] == 'A="say \\"hi\\" 100%%"'
    assert parsed["unix_http_server"]["file"] == str(tmp_path / "supervisord.sock")


def test_redis_runs_locally_only_for_a_loopback_broker(settings: Settings) -> None:
    local = settings.with_overrides(redis_url="redis://127.0.0.1:6400/0")
    remote = settings.with_overrides(redis_url="redis://broker.internal:6379/0")

    assert control.local_redis(local) == ("127.0.0.1", 6400)
    assert control.local_redis(remote) is None
    assert "redis" in [p.name for p in control.programs(local)]
    assert "redis" not in [p.name for p in control.programs(remote)]


def test_every_program_gets_the_same_environment(settings: Settings) -> None:
    programs = control.programs(settings)

    assert [p.name for p in programs] == ["redis", "router", "api", "worker"]
    assert len({tuple(sorted(p.environment.items())) for p in programs}) == 1


def test_the_api_is_one_process_and_the_worker_runs_threads(settings: Settings) -> None:
    programs = {p.name: p for p in control.programs(settings)}

    assert programs["api"].command[-2:] == ["server", "api"]
    assert programs["api"].stopwaitsecs >= 25  # requests 5 s and agents 15 s, then SIGKILL
    worker = programs["worker"].command
    assert worker[worker.index("--pool") + 1] == "threads"
    assert worker[worker.index("--concurrency") + 1] == str(control.WORKER_CONCURRENCY)
    assert not any("gunicorn" in part for p in programs.values() for part in p.command)


def test_urls_reach_wildcard_binds_over_loopback() -> None:
    assert control.loopback_url("0.0.0.0:80") == "http://127.0.0.1:80"
    assert control.loopback_url("127.0.0.1:7000") == "http://127.0.0.1:7000"


def test_the_admin_token_file_is_written_0600(tmp_path: Path) -> None:
    path = tmp_path / "admin-token"

    control.write_secret(path, "secret\n")

    assert path.stat().st_mode & 0o777 == 0o600
    assert path.read_text() == "secret\n"
