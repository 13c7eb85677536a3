"""Run ``wrk --latency`` (bounded) and read its report: requests/s and latency percentiles."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60_000.0}
_PERCENTILE = re.compile(r"^\s*(\d+(?:\.\d+)?)%\s+([\d.]+)(us|ms|s|m)\s*$", re.MULTILINE)
_RATE = re.compile(r"^Requests/sec:\s+([\d.]+)", re.MULTILINE)
_TOTAL = re.compile(r"^\s*(\d+) requests in", re.MULTILINE)
_NON_2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
_SOCKET_ERRORS = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")


class WrkError(Exception):
    """wrk is missing, failed, or printed something that is not a report."""


@dataclass(frozen=True)
class WrkResult:
    requests_per_sec: float
    requests: int
    latency_ms: dict[float, float]  # percentile (50, 75, 90, 99) → milliseconds
    errors: int  # non-2xx/3xx answers plus socket errors

    @property
    def p50(self) -> float:
        return self.latency_ms[50.0]

    @property
    def p99(self) -> float:
        return self.latency_ms[99.0]


def parse_wrk(text: str) -> WrkResult:
    """Read the report of ``wrk --latency``."""
    rate, total = _RATE.search(text), _TOTAL.search(text)
    latencies = {float(p): float(v) * _UNITS[u] for p, v, u in _PERCENTILE.findall(text)}
    if rate is None or total is None or 50.0 not in latencies or 99.0 not in latencies:
        raise WrkError(f"not a wrk --latency report:\n{text[-500:]}")
    errors = sum(int(n) for n in _NON_2XX.findall(text))
    socket_errors = _SOCKET_ERRORS.search(text)
    if socket_errors:
        errors += sum(int(n) for n in socket_errors.groups())
    return WrkResult(float(rate.group(1)), int(total.group(1)), latencies, errors)


def run_wrk(
    url: str,
    duration: int = 5,
    connections: int = 16,
    threads: int = 1,
    host: str | None = None,
) -> WrkResult:
    """Load ``url`` for ``duration`` seconds; ``host`` sets the Host header (router by name)."""
    binary = shutil.which("wrk")
    if binary is None:
        raise WrkError("wrk is not installed (Debian package wrk)")
    command = [binary, "--latency", "-t", str(threads), "-c", str(connections)]
    command += ["-d", f"{duration}s", "--timeout", "5s"]
    if host:
        command += ["-H", f"Host: {host}"]
    done = subprocess.run(
        [*command, url], capture_output=True, text=True, timeout=duration + 30, check=False
    )
    if done.returncode != 0:
        raise WrkError(f"wrk failed ({done.returncode}): {done.stderr.strip()}")
    return parse_wrk(done.stdout)
