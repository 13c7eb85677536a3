"""SQLite writers of the API process wait for each other in the gevent loop, not inside SQLite.

In the API process every request and every agent is a greenlet of one thread. SQLite lets one
connection write at a time; a second writer waits in SQLite's busy handler, a sleep in C that
holds the whole process. When the first writer's greenlet sits between two statements waiting
on Docker or the network, it can never run again to commit: the process would stand still
until the busy timeout fails the second writer (15 s, "database is locked").

So in that process a write transaction first takes a lock of the process, cooperatively (a
waiting greenlet lets the others run), and holds it until the transaction commits, rolls back
or its connection goes back to the pool. Reads take nothing (pysqlite opens a transaction only
at the first write). Writers in other processes (the worker) still meet SQLite's busy handler:
their transactions run on their own and end. Past the busy timeout the lock is not waited for
any longer and SQLite decides, as before.

A writer of another process (the worker) is waited for the same way: the transaction begins
with ``BEGIN IMMEDIATE`` tried without SQLite's busy wait, again and again with a pause that
lets the other greenlets run. Waiting inside SQLite instead could deadlock the platform: the
worker holds the write lock while it waits for the router's lock, which a greenlet of this
process holds around an nginx reload and could never give back while SQLite's wait holds the
whole process (seen as a 15 s "database is locked" during a deploy).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.pool import Pool

from slipway.db import SQLITE_BUSY_TIMEOUT_MS

HELD = "slipway_write_lock"
WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE")
PAUSE = 0.02  # seconds between tries for SQLite's write lock


def begin_write(dbapi: Any, timeout: float, pause: Callable[[float], None] = time.sleep) -> bool:
    """Begin an IMMEDIATE transaction on a pysqlite connection, trying without SQLite's busy
    wait until ``timeout``; ``pause`` between tries (gevent's sleep in the API process). False
    when a transaction was open already or the time ran out (SQLite then decides as before)."""
    if not isinstance(dbapi, sqlite3.Connection) or dbapi.in_transaction:
        return False
    busy = dbapi.execute("PRAGMA busy_timeout").fetchone()[0]
    dbapi.execute("PRAGMA busy_timeout=0")
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                dbapi.execute("BEGIN IMMEDIATE")
                return True
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
                if time.monotonic() >= deadline:
                    return False
                pause(PAUSE)
    finally:
        dbapi.execute(f"PRAGMA busy_timeout={int(busy)}")


def serialize_writes(
    timeout: float = SQLITE_BUSY_TIMEOUT_MS / 1000,
    lock: Any = None,
    pause: Callable[[float], None] = time.sleep,
) -> Callable[[], None]:
    """Make every SQLite engine of this process take one lock per write transaction.

    Call it after gevent patched ``threading`` (the lock is then gevent's), or pass a lock with
    ``acquire(timeout=...)`` and ``release()``. Returns a function that removes the hooks again.
    """
    lock = lock if lock is not None else threading.Lock()

    def before_execute(conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if conn.dialect.name != "sqlite" or conn.info.get(HELD):
            return
        if not statement.lstrip()[:8].upper().startswith(WRITES):
            return
        started = time.monotonic()
        if lock.acquire(timeout=timeout):
            conn.info[HELD] = True
        # Then the database's own write lock, which a writer of another process may hold.
        begin_write(_cursor.connection, max(0.0, timeout - (time.monotonic() - started)), pause)

    def release(info: dict[str, Any] | None) -> None:
        if info is not None and info.pop(HELD, False):
            lock.release()

    def on_end(conn: Any) -> None:
        release(conn.info)

    def on_checkin(_dbapi_connection: Any, record: Any) -> None:
        release(getattr(record, "info", None))

    hooks: list[tuple[Any, str, Callable[..., None]]] = [
        (Engine, "before_cursor_execute", before_execute),
        (Engine, "commit", on_end),
        (Engine, "rollback", on_end),
        (Pool, "checkin", on_checkin),
    ]
    for target, name, hook in hooks:
        event.listen(target, name, hook)

    def remove() -> None:
        for target, name, hook in hooks:
            event.remove(target, name, hook)

    return remove
