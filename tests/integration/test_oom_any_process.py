"""An OOM kill of a process other than supervisord's program is an ``oom`` event, for real.

The app's web process (the program supervisord runs) starts a child that allocates past the
app's memory limit, or forks a worker that does, as gunicorn's workers are forked. The kernel
kills the child; the web process lives on, so supervisord and Navi see nothing. The collector
counts the kill in the container's memory cgroup, names it from the kernel's log, records one
``oom`` event and the worker POSTs it, signed, to a real receiver on 127.0.0.1.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.platform import Platform
from tests.integration.test_e2e_api import tar_files
from tests.integration.test_notifications_e2e import (
    CHAIN_TIMEOUT,
    MB,
    Watched,
    assert_notified,
    wait_for,
    watched_app,
)

pytestmark = pytest.mark.slow

# /child starts `python3 -c HOG` renamed "memhog"; /fork forks a worker (still "python3") that
# allocates; each fills HOG_STEPS * 100 MB, three times the limit. /children lists their ends.
APP = """\
import ctypes
import os
import subprocess
import sys
import threading
from wsgiref.simple_server import make_server

HOG = '''
import ctypes, sys
if sys.argv[1:] == ["rename"]:
    ctypes.CDLL(None).prctl(15, b"memhog", 0, 0, 0)  # PR_SET_NAME: the name the kernel logs
blocks = []
for step in range(HOG_STEPS):
    blocks.append(b"\\\\xff" * (100 * 1024 * 1024))  # filled, so every page is resident
    print("hog holding", (step + 1) * 100, "MB", flush=True)
print("the memory limit never struck", flush=True)
'''
ENDS = []


def reap(pid):
    ENDS.append(os.waitpid(pid, 0)[1])


def start_child():
    child = subprocess.Popen([sys.executable, "-c", HOG, "rename"])
    threading.Thread(target=reap, args=(child.pid,), daemon=True).start()


def fork_worker():
    pid = os.fork()
    if pid == 0:
        try:
            exec(HOG, {"sys": sys, "ctypes": ctypes})
        finally:
            os._exit(0)
    threading.Thread(target=reap, args=(pid,), daemon=True).start()


def application(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    if path == "/child":
        start_child()
    elif path == "/fork":
        fork_worker()
    ends = " ".join(str(status) for status in ENDS)
    body = ("ok " + path + " ends [" + ends + "] pid " + str(os.getpid()) + "\\n").encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


make_server("0.0.0.0", int(os.environ["PORT"]), application).serve_forever()
"""
SIGKILL_STATUS = "9"  # os.waitpid's status of a process killed by signal 9


def source(memory_limit: int) -> bytes:
    steps = 3 * memory_limit // (100 * MB) + 1
    code = APP.replace("HOG_STEPS", str(steps))
    return tar_files({"requirements.txt": "", "Procfile": "web: python3 app.py\n", "app.py": code})


@pytest.fixture(scope="module")
def app(running_platform: Platform) -> Iterator[Watched]:
    memory = running_platform.settings.default_memory
    with watched_app(running_platform, "oomkid", source(memory)) as watched:
        yield watched


def ends(app: Watched) -> list[str]:
    answer = app.get("/")
    assert answer is not None and answer.status_code == 200, answer
    return answer.text.split("[", 1)[1].split("]", 1)[0].split()


def kill_one(app: Watched, path: str) -> dict[str, Any]:
    """GET ``path``; the one ``oom`` event the child's kill raised, once the child is reaped."""
    pid = wait_for(app.pid, CHAIN_TIMEOUT, f"{app.name} does not answer before {path}")
    before, ended = app.last_event_id(), len(ends(app))
    answered = app.platform.http_get_app(app.name, path, timeout=30)
    assert answered.status_code == 200, answered.text
    event = wait_for(
        lambda: app.new_event("oom", before), CHAIN_TIMEOUT, f"no oom event after GET {path}"
    )
    # The child was killed by SIGKILL, and the web process that started it lives on.
    wait_for(lambda: len(ends(app)) > ended or None, CHAIN_TIMEOUT, "the child never ended")
    assert ends(app)[ended:] == [SIGKILL_STATUS]
    assert app.pid() == pid
    # Once per kill: a few more collector passes add nothing, and nothing crashed.
    time.sleep(3 * app.platform.settings.notifications_poll)
    newer = [e for e in app.events("oom") if e["id"] > before]
    assert [e["id"] for e in newer] == [event["id"]]
    assert app.new_event("crash", before) is None
    return event


def test_a_child_process_killed_for_memory_is_one_oom_event_and_a_signed_delivery(
    app: Watched,
) -> None:
    event = kill_one(app, "/child")

    assert event["data"]["source"] == "cgroup"
    assert event["data"]["process"] == "memhog"  # named from the kernel's log
    assert event["data"]["oom_kills"] >= 1
    assert event["instance_id"] is not None
    assert event["message"].startswith("Process memhog of ")
    payload = assert_notified(app, event)
    assert payload["data"]["process"] == "memhog"
    assert app.web_process()["state"] == "RUNNING"


def test_a_forked_worker_killed_for_memory_is_another_oom_event(app: Watched) -> None:
    earlier = [e["data"]["oom_kills"] for e in app.events("oom")]

    event = kill_one(app, "/fork")

    assert (event["data"]["source"], event["data"]["process"]) == ("cgroup", "python3")
    assert event["data"]["oom_kills"] > max(earlier, default=0)
    assert_notified(app, event)
