"""supervisord started as a script from this directory, so the light pkg_resources.py next to it
is imported instead of the real one (Python puts a script's directory first on sys.path). The
programs supervisord starts are new processes: they never see this directory.

supervisord starts its programs after the first turn of its main loop, and that turn waits up
to a second in poll() for something to read. An instance would sit idle for that second before
its app even begins, on every deploy and every wake of a sleeping app. The first poll here
returns at once; every later one waits as supervisord asks.
"""

import sys

from supervisor import poller
from supervisor.supervisord import main

_poll = poller.Poller.poll


def _first_poll_at_once(self, timeout):
    if not getattr(self, "_slipway_polled", False):
        self._slipway_polled = True
        timeout = 0
    return _poll(self, timeout)


poller.Poller.poll = _first_poll_at_once

sys.exit(main())
