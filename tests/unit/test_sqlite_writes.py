"""Writers of the gevent API process wait for each other cooperatively, not in SQLite's busy
handler (which would hold the whole process while the first writer cannot run to commit)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import gevent
import gevent.lock
import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import OperationalError

from slipway.host.sqlite_writes import serialize_writes

BUSY_TIMEOUT = 0.5  # seconds: SQLite's own wait, short so the failing case fails fast


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = create_engine(
        f"sqlite:///{tmp_path / 'db.sqlite'}", connect_args={"timeout": BUSY_TIMEOUT}
    )
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (who TEXT)"))
    yield engine
    engine.dispose()


def _writers(engine: Engine) -> list[str]:
    """Greenlet A writes, then waits (as on Docker) before it commits; B writes meanwhile."""
    done: list[str] = []

    def first() -> None:
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO t VALUES ('a')"))
            gevent.sleep(BUSY_TIMEOUT * 2)
        done.append("a")

    def second() -> None:
        gevent.sleep(0.05)
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO t VALUES ('b')"))
        done.append("b")

    greenlets = [gevent.spawn(first), gevent.spawn(second)]
    gevent.joinall(greenlets, timeout=30, raise_error=True)
    return done


def test_a_second_writer_waits_for_the_first_to_commit(engine: Engine) -> None:
    remove = serialize_writes(timeout=10, lock=gevent.lock.Semaphore())
    try:
        assert _writers(engine) == ["a", "b"]
    finally:
        remove()
    with engine.connect() as conn:
        assert conn.execute(text("SELECT who FROM t ORDER BY rowid")).scalars().all() == ["a", "b"]


def test_without_it_the_second_writer_stalls_the_loop_and_fails(engine: Engine) -> None:
    with pytest.raises(OperationalError, match="locked"):
        _writers(engine)


def test_a_rolled_back_or_returned_connection_gives_the_lock_back(engine: Engine) -> None:
    lock = gevent.lock.Semaphore()
    remove = serialize_writes(timeout=1, lock=lock)
    try:
        with pytest.raises(RuntimeError), engine.begin() as conn:
            conn.execute(text("INSERT INTO t VALUES ('x')"))
            raise RuntimeError("the request failed")
        assert not lock.locked()
        conn = engine.connect()
        conn.execute(text("INSERT INTO t VALUES ('y')"))
        assert lock.locked()
        conn.close()  # back to the pool without a commit: rolled back there
        assert not lock.locked()
        with engine.connect() as reader:
            reader.execute(text("SELECT count(*) FROM t")).scalar()
            assert not lock.locked()  # reads take nothing
    finally:
        remove()


def test_a_writer_of_another_process_is_waited_for_in_the_loop(
    engine: Engine, tmp_path: Path
) -> None:
    # Another connection (the worker's, in production) holds the write lock for longer than
    # SQLite's own busy wait; only a loop that keeps running lets it commit.
    other = sqlite3.connect(tmp_path / "db.sqlite", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO t VALUES ('worker')")
    ticks: list[int] = []

    def worker() -> None:
        for tick in range(int(BUSY_TIMEOUT * 2 / 0.05)):
            ticks.append(tick)
            gevent.sleep(0.05)
        other.execute("COMMIT")

    def writer() -> None:
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO t VALUES ('api')"))

    remove = serialize_writes(timeout=10, lock=gevent.lock.Semaphore(), pause=gevent.sleep)
    try:
        gevent.joinall([gevent.spawn(worker), gevent.spawn(writer)], timeout=30, raise_error=True)
    finally:
        remove()
        other.close()
    assert len(ticks) == int(BUSY_TIMEOUT * 2 / 0.05)  # the loop ran while the writer waited
    with engine.connect() as conn:
        assert conn.execute(text("SELECT who FROM t ORDER BY rowid")).scalars().all() == [
            "worker",
            "api",
        ]
