"""The model, service and API tests again, on a real PostgreSQL server started for this module.

The server runs as the ``postgres`` OS user from a temporary directory, listening only on a unix
socket in that directory (on a free port number), and is stopped afterwards. Each test gets a
database of its own, migrated with ``alembic upgrade head``.
"""

from __future__ import annotations

import itertools
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import psycopg
import pytest

from slipway.config import Settings
from tests.helpers import free_port
from tests.unit import test_api, test_apps, test_models, test_users
from tests.unit.test_api import api  # noqa: F401  (a fixture of the borrowed tests)
from tests.unit.test_apps import adapters, sender, session  # noqa: F401  (the same)

pytestmark = pytest.mark.slow

AS_POSTGRES = ["runuser", "-u", "postgres", "--"]
_database_numbers = itertools.count(1)


def _borrow(*modules: ModuleType) -> None:
    """Collect the modules' tests here too, where ``settings`` points at PostgreSQL."""
    for module in modules:
        for name, value in vars(module).items():
            if name.startswith("test_") and callable(value):
                assert name not in globals(), f"two borrowed tests are called {name}"
                globals()[name] = value


_borrow(test_models, test_users, test_apps, test_api)


def postgres_bin_dir() -> Path | None:
    """The newest installed server's bin directory (Debian: /usr/lib/postgresql/<major>/bin)."""
    found = [p for p in Path("/usr/lib/postgresql").glob("*/bin") if (p / "initdb").exists()]
    versions = sorted(found, key=lambda p: [int(n) for n in re.findall(r"\d+", p.parent.name)])
    return versions[-1] if versions else None


@dataclass(frozen=True)
class PostgresServer:
    socket_dir: Path
    port: int

    def url(self, database: str) -> str:
        return f"postgresql://postgres@/{database}?host={self.socket_dir}&port={self.port}"

    def execute(self, statement: str) -> None:
        with psycopg.connect(
            host=str(self.socket_dir), port=self.port, user="postgres", autocommit=True
        ) as connection:
            connection.execute(statement)


def _run_as_postgres(command: list[str]) -> None:
    subprocess.run([*AS_POSTGRES, *command], check=True, capture_output=True, timeout=120)


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        # `make test` installs it, so a missing server is a broken set-up, never a pass.
        pytest.fail("the PostgreSQL server is not installed: run `make test`, which installs it")
    # Not under pytest's tmp dir: that one is private to root and postgres could not enter it.
    root = Path(tempfile.mkdtemp(prefix="slipway-pg-"))
    shutil.chown(root, "postgres", "postgres")
    data, port = root / "data", free_port()
    try:
        _run_as_postgres([str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres"])
        with (data / "postgresql.conf").open("a") as conf:
            conf.write(f"port = {port}\nlisten_addresses = ''\n")
            conf.write(f"unix_socket_directories = '{root}'\nfsync = off\n")
        log = str(root / "server.log")
        _run_as_postgres([str(bin_dir / "pg_ctl"), "-D", str(data), "-l", log, "-w", "start"])
        yield PostgresServer(root, port)
    finally:
        if (data / "postmaster.pid").exists():
            stop = [str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"]
            _run_as_postgres(stop)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def settings(postgres: PostgresServer, tmp_path: Path) -> Iterator[Settings]:
    """The usual test settings, with a fresh PostgreSQL database instead of SQLite."""
    data = tmp_path / "data"
    data.mkdir()
    name = f"slipway_test_{next(_database_numbers)}"
    postgres.execute(f"CREATE DATABASE {name}")
    yield Settings(data_dir=data, database_url=postgres.url(name))
    postgres.execute(f"DROP DATABASE {name} WITH (FORCE)")


def test_the_database_really_is_postgresql(settings: Settings) -> None:
    from sqlalchemy import text

    from slipway.db import make_engine, upgrade_database

    upgrade_database(settings)
    engine = make_engine(settings)
    try:
        with engine.connect() as connection:
            assert engine.dialect.name == "postgresql"
            assert connection.scalar(text("SELECT version_num FROM alembic_version"))
    finally:
        engine.dispose()
