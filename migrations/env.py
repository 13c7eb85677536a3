"""Alembic environment: the URL comes from Slipway's Settings, never from alembic.ini."""

from __future__ import annotations

from logging.config import fileConfig

from alembic import context
from slipway import models
from slipway.config import Settings, get_settings
from slipway.db import make_engine

config = context.config
target_metadata = models.Base.metadata

# Programmatic runs (upgrade_database) pass their Settings; the alembic CLI uses the environment.
settings: Settings = config.attributes.get("slipway_settings") or get_settings()

if config.config_file_name is not None and "slipway_settings" not in config.attributes:
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def _is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def run_migrations_offline() -> None:
    url = settings.database
    context.configure(
        url=url,
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=_is_sqlite(url),
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = make_engine(settings)
    try:
        with engine.connect() as connection:
            context.configure(
                connection=connection,
                target_metadata=target_metadata,
                render_as_batch=connection.dialect.name == "sqlite",
                compare_type=True,
            )
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
