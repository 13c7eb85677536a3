"""SQLite savepoints must stay inside the outer transaction (pysqlite's default breaks that)."""

from __future__ import annotations

from pathlib import Path

from slipway import db
from slipway.config import Settings
from slipway.models import User


def test_released_savepoint_is_undone_by_outer_rollback(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    db.upgrade_database(settings)
    factory = db.make_session_factory(db.make_engine(settings))
    with factory() as session:
        with session.begin_nested():
            session.add(User(username="inner", is_admin=False))
        session.rollback()
    with factory() as session:
        assert session.query(User).count() == 0
