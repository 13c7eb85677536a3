"""Small statistics over a few runs: the median and the spread, nothing that needs numpy."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Summary:
    """The median of some runs with their spread (min/max and the quartiles)."""

    median: float
    low: float
    high: float
    q1: float
    q3: float
    n: int

    def text(self, unit: str = "s", digits: int = 2) -> str:
        """``"1.23 s (1.10–1.40, n=3)"``: the median, then min–max and the number of runs."""
        if self.n == 0:
            return "not measured"
        fmt = f"{{:.{digits}f}}"
        if self.n == 1:
            return f"{fmt.format(self.median)} {unit} (n=1)"
        spread = f"{fmt.format(self.low)}–{fmt.format(self.high)}"
        return f"{fmt.format(self.median)} {unit} ({spread}, n={self.n})".replace("  ", " ")


def summarize(values: Sequence[float]) -> Summary:
    """Median, min, max and quartiles of ``values``; all NaN when there are none."""
    data = sorted(values)
    if not data:
        nan = float("nan")
        return Summary(nan, nan, nan, nan, nan, 0)
    if len(data) == 1:
        only = data[0]
        return Summary(only, only, only, only, only, 1)
    q1, _, q3 = statistics.quantiles(data, n=4, method="inclusive")
    return Summary(statistics.median(data), data[0], data[-1], q1, q3, len(data))


def percentile(values: Sequence[float], pct: float) -> float:
    """The ``pct`` percentile (0–100) by linear interpolation between the closest ranks."""
    data = sorted(values)
    if not data:
        raise ValueError("no values")
    rank = (len(data) - 1) * pct / 100
    low = int(rank)
    high = min(low + 1, len(data) - 1)
    return data[low] + (data[high] - data[low]) * (rank - low)


def ratio(numerator: float, denominator: float) -> float:
    """numerator / denominator, NaN when the denominator is zero or missing."""
    if not denominator or denominator != denominator:
        return float("nan")
    return numerator / denominator
