"""``/apps/<app>/run``: a one-off command in a fresh container, its output streamed.

The answer is JSON lines (``application/x-ndjson``), one object per line: ``{"info": "..."}``
first (what runs), ``{"line": "..."}`` for each line of output, ``{"keepalive": true}`` while
the command is quiet, and last ``{"exit_status": N, "timed_out": false, "duration": 1.2}`` (or
``{"error": "..."}`` when the container could not run). The command is stopped when the client
goes away.
"""

from __future__ import annotations

import contextlib
import json
import queue
import threading
from collections.abc import Iterator
from typing import Any

from flask import Response

from slipway.adapters import Adapters
from slipway.api.body import json_object
from slipway.api.context import adapters, current_user, db, settings
from slipway.config import Settings
from slipway.services import apps, oneoff
from slipway.services.errors import SlipwayError

KEEPALIVE = 10.0  # seconds of silence before a keepalive line (it also detects a gone client)
OFFER_TIMEOUT = 30.0
_DONE = object()


def run_command(name: str) -> Response:
    app = apps.get_app(db(), current_user(), name)
    plan = oneoff.plan_run(db(), adapters(), app, json_object().get("command"))
    stream = _stream(adapters(), settings(), plan)
    return Response(stream, mimetype="application/x-ndjson", headers={"X-Accel-Buffering": "no"})


def _stream(adapters: Adapters, settings: Settings, plan: oneoff.RunPlan) -> Iterator[bytes]:
    lines: queue.Queue[Any] = queue.Queue(maxsize=10_000)
    worker = threading.Thread(
        target=_execute, args=(adapters, settings, plan, lines), name=plan.name, daemon=True
    )
    worker.start()
    finished = False
    try:
        yield _json({"info": oneoff.describe(plan)})
        while True:
            try:
                item = lines.get(timeout=KEEPALIVE)
            except queue.Empty:
                yield _json({"keepalive": True})
                continue
            if item is _DONE:
                finished = True
                return
            yield _json(item)
    finally:
        if not finished:  # the client went away: stop the command; the worker cleans up
            oneoff.cancel(adapters, plan)


def _execute(
    adapters: Adapters, settings: Settings, plan: oneoff.RunPlan, out: queue.Queue[Any]
) -> None:
    try:
        result = oneoff.execute(adapters, settings, plan, lambda line: _offer(out, {"line": line}))
        _offer(
            out,
            {
                "exit_status": result.exit_status,
                "timed_out": result.timed_out,
                "duration": round(result.duration, 3),
            },
        )
    except SlipwayError as exc:
        _offer(out, {"error": str(exc)})
    except Exception as exc:  # the stream has started: report in it, not as a 500
        _offer(out, {"error": f"The one-off run failed: {exc}"})
    finally:
        _offer(out, _DONE)


def _offer(out: queue.Queue[Any], item: Any) -> None:
    # A client that stopped reading must not block the run (and its cleanup) forever.
    with contextlib.suppress(queue.Full):
        out.put(item, timeout=OFFER_TIMEOUT)


def _json(data: dict[str, Any]) -> bytes:
    return (json.dumps(data) + "\n").encode()
