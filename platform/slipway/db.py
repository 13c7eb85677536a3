"""The database: engine, sessions, and the declarative ``Base`` every model derives from.

SQLite (WAL) is the embedded default; PostgreSQL is used when ``SLIPWAY_DATABASE_URL`` names one.
Sessions are opened at the edges (a request, a task, a CLI command), never inside services.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, MetaData, create_engine, event
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

from slipway.config import Settings

# One naming convention, so constraint names are stable across databases and migrations.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 15_000


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def database_url(settings: Settings) -> str:
    """The SQLAlchemy URL; a bare ``postgresql://`` URL is given the psycopg 3 driver."""
    url = settings.database
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.close()


def make_engine(settings: Settings) -> Engine:
    """An engine for the configured database (SQLite gets WAL, foreign keys, a busy timeout).

    SQLite keeps pysqlite's own transaction handling on purpose: reads run outside a transaction
    and the first write opens one and waits for the lock, so a reader never holds a stale snapshot
    that cannot be upgraded to a write. The price: SAVEPOINT (``begin_nested``) does not nest on
    SQLite, so services must not use it.
    """
    url = database_url(settings)
    if url.startswith("sqlite"):
        if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True)


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    # expire_on_commit=False: views serialise rows after the commit without another query.
    return sessionmaker(bind=engine, expire_on_commit=False)


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session that commits when the block ends and rolls back when it raises."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def alembic_config(settings: Settings) -> Any:
    """The Alembic configuration for ``migrations/``, pointed at this settings' database."""
    from alembic.config import Config

    config = Config(str(MIGRATIONS_DIR.parent / "alembic.ini"))
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["slipway_settings"] = settings
    return config


def upgrade_database(settings: Settings) -> None:
    """Bring the schema to the newest revision (``alembic upgrade head``)."""
    from alembic import command

    command.upgrade(alembic_config(settings), "head")
