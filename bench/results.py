"""The results file: the machine, then one section per figure with its table and verdict."""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path


@dataclass
class Figure:
    """One figure of the issue: how it was taken, a table, the target and whether it is met."""

    title: str
    how: str
    header: list[str]
    rows: list[list[str]] = field(default_factory=list)
    target: str = ""
    met: bool | None = None  # None: not decided (not measured, or nothing to compare)
    notes: list[str] = field(default_factory=list)

    def add(self, *cells: object) -> None:
        self.rows.append([str(cell) for cell in cells])


def machine() -> dict[str, str]:
    """Cores, memory and kernel of this host."""
    mem_kb = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kb = int(line.split()[1])
    return {
        "cores": str(os.cpu_count() or 0),
        "memory": f"{mem_kb / 1024**2:.1f} GiB",
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


def verdict(met: bool | None) -> str:
    return {True: "**met**", False: "**missed**", None: "not decided"}[met]


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return lines


def render(figures: list[Figure], started: datetime, seconds: float, host: dict[str, str]) -> str:
    """The whole RESULTS.md text."""
    lines = [
        "# Slipway benchmark results",
        "",
        f"Taken {started:%Y-%m-%d %H:%M} UTC by `make bench` in {seconds / 60:.1f} minutes, on "
        f"{host['cores']} cores and {host['memory']} of memory (Linux {host['kernel']}, "
        f"Python {host['python']}).",
        "",
        "Each figure gives the median of several runs and their spread (min–max, n = runs). "
        "Compared sides are measured in the same run, alternately. "
        "`bench/README.md` says how each figure is taken.",
        "",
        "| figure | target | verdict |",
        "| --- | --- | --- |",
    ]
    lines += [f"| {f.title} | {f.target} | {verdict(f.met)} |" for f in figures]
    for figure in figures:
        lines += ["", f"## {figure.title}", "", figure.how, ""]
        lines += _table(figure.header, figure.rows)
        lines += ["", f"Target: {figure.target} — {verdict(figure.met)}."]
        if figure.notes:
            lines += [""] + [f"- {note}" for note in figure.notes]
    return "\n".join(lines) + "\n"


def write(path: Path, text: str) -> None:
    """Write atomically, so a killed run never leaves half a file."""
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(text)
    os.replace(tmp, path)
