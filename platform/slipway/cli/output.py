"""Printing: aligned tables for people, JSON for scripts."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))


def cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(cell(v) for v in value) or "-"
    if isinstance(value, dict):
        return " ".join(f"{k}={cell(v)}" for k, v in value.items()) or "-"
    return str(value)


def print_table(rows: Sequence[dict[str, Any]], columns: Sequence[str], empty: str) -> None:
    """One line per row, columns aligned, a header in capitals; ``empty`` when there are none."""
    if not rows:
        click.echo(empty)
        return
    cells = [[cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    click.echo("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    for r in cells:
        click.echo("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())


def print_fields(data: dict[str, Any], keys: Sequence[str]) -> None:
    """``key: value`` lines for one object, keys aligned."""
    shown = [k for k in keys if k in data]
    width = max((len(k) for k in shown), default=0)
    for k in shown:
        click.echo(f"{k + ':':<{width + 1}} {cell(data[k])}")
