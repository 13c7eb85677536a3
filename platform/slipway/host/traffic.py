"""When each app last had a request, read from the router's traffic log.

nginx writes one ``<unix time> <proxy host>`` line per request (``log_format slipway_traffic``);
the proxy host of a request passed to an app is ``up_<app>``, and ``-`` for requests nginx
answered itself (404, 503). The reader keeps its offset, so each look reads only new lines, and
empties the file once it grew past ``max_size``: nginx opens its logs for appending, so its next
write lands at the new end. Lines nginx writes between the last read and that truncation are
lost; they only ever make an app look idle a few seconds early.
"""

from __future__ import annotations

import os
from pathlib import Path

UPSTREAM_PREFIX = "up_"
MAX_SIZE = 4 * 1024**2
READ_CHUNK = 1024**2


class TrafficLog:
    """Reads new lines of the traffic log: ``{app: unix time of its last request}``."""

    def __init__(self, path: Path, max_size: int = MAX_SIZE) -> None:
        self.path = path
        self.max_size = max_size
        self.offset = 0

    def read(self) -> dict[str, float]:
        """The last request of each app among the lines written since the previous read."""
        try:
            with self.path.open("rb") as handle:
                size = os.fstat(handle.fileno()).st_size
                if size < self.offset:  # emptied by someone else: start again
                    self.offset = 0
                handle.seek(self.offset)
                last: dict[str, float] = {}
                while True:
                    data = handle.read(READ_CHUNK)
                    end = data.rfind(b"\n") + 1
                    _parse(data[:end], last)
                    self.offset += end
                    if len(data) < READ_CHUNK:
                        break  # the end; a line still being written is read next time
                    if end == 0:  # a whole chunk without a line end is no line of ours
                        self.offset += len(data)
                    handle.seek(self.offset)
        except FileNotFoundError:
            self.offset = 0
            return {}
        if self.offset >= self.max_size:
            os.truncate(self.path, 0)
            self.offset = 0
        return last


def _parse(data: bytes, last: dict[str, float]) -> None:
    for line in data.decode("ascii", errors="replace").splitlines():
        parts = line.split()
        if len(parts) != 2 or not parts[1].startswith(UPSTREAM_PREFIX):
            continue
        try:
            when = float(parts[0])
        except ValueError:
            continue
        app = parts[1][len(UPSTREAM_PREFIX) :]
        if when > last.get(app, 0.0):
            last[app] = when
