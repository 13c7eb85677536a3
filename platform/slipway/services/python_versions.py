"""Which Python a Python app asks for, and whether the images offer it.

Read as pyenv and uv read it: ``.python-version`` (its first line that is neither blank nor a
comment: ``3.13`` or ``3.13.2``), else ``runtime.txt`` (``python-3.13.2``), else the
``[requires]`` of a ``Pipfile`` (``python_full_version``, else ``python_version``), else
``requires-python`` in ``pyproject.toml`` (``>=3.11``). The source is a user's: every file is read
beneath its root, never through a link. A version no image offers fails the deploy at once, with
a sentence listing what is offered.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from slipway import beneath
from slipway.services.errors import SlipwayError

MAX_FILE = 64 * 1024  # a version file larger than this is not one


@dataclass(frozen=True)
class Offered:
    line: str  # "3.13": the patch release is the suite's python3 of the day (the build says it)
    suite: str  # the Debian suite whose python3 it is
    variant: str  # the images are build-<variant> and run-<variant>; a release's stack


# Newest first. A line here is the python3 of the Debian suite its images are built on.
OFFERED: tuple[Offered, ...] = (
    Offered("3.14", "forky", "python-3.14"),
    Offered("3.13", "trixie", "python-3.13"),
    Offered("3.11", "bookworm", "python"),
)
# An app that names no version gets the Python every app got before there was a choice, so a
# redeploy never moves it to another interpreter unasked.
DEFAULT_VARIANT = "python"


class PythonUnavailable(SlipwayError):
    """The app asks for a Python no image offers; the message lists the ones offered."""


@dataclass(frozen=True)
class Choice:
    offered: Offered
    reason: str  # "(.python-version asks for 3.11)", for the build log


def choose(source: Path, offered: tuple[Offered, ...] = OFFERED) -> Choice:
    """The offered Python that ``source`` asks for (the newest one when it asks for none)."""
    with beneath.opened(beneath.open_root(source)) as root:
        asked = _asked_version(root)
        if asked is None:
            specifier = _requires_python(root)
            if specifier is None:
                default = next((o for o in offered if o.variant == DEFAULT_VARIANT), offered[0])
                reason = "no .python-version, runtime.txt, Pipfile or requires-python"
                return Choice(default, reason)
            return _satisfying(specifier, offered)
    where, wanted = asked
    for candidate in offered:
        if _parts(candidate.line) == _parts(wanted):
            return Choice(candidate, f"{where} asks for {wanted}")
    for candidate in offered:  # 3.13.2 asked: Debian's patch release of the 3.13 line is it
        if _parts(candidate.line) == _parts(wanted)[:2]:
            return Choice(candidate, f"{where} asks for {wanted}; Debian's {candidate.line} here")
    raise PythonUnavailable(
        f"{where} asks for Python {wanted}, which Slipway does not offer: it offers "
        f"{_offered_list(offered)} (change {where})."
    )


def _asked_version(root: int) -> tuple[str, str] | None:
    """("<file>", "3.13") from .python-version, runtime.txt or Pipfile; None when none says."""
    text = _read(root, ".python-version")
    if text is not None:
        lines = [line.strip() for line in text.splitlines()]
        versions = [line for line in lines if line and not line.startswith("#")]
        if versions:
            return ".python-version", _checked(".python-version", versions[0], "")
    text = _read(root, "runtime.txt")
    if text is not None and text.strip():
        return "runtime.txt", _checked("runtime.txt", text.strip().splitlines()[0], "python-")
    return _pipfile_version(root)


def _pipfile_version(root: int) -> tuple[str, str] | None:
    """The version ``[requires]`` of the Pipfile names; pipenv prefers the full one."""
    text = _read(root, "Pipfile")
    if text is None:
        return None
    try:
        requires = tomllib.loads(text).get("requires", {})
    except tomllib.TOMLDecodeError:
        return None  # pipenv reports a broken Pipfile better, with its line
    if not isinstance(requires, dict):
        return None
    for key in ("python_full_version", "python_version"):
        value = requires.get(key)
        if isinstance(value, str) and value.strip():
            return "Pipfile", _checked(f"Pipfile's {key}", value.strip(), "")
    return None


_VERSION_LINE = re.compile(r"(?:c?python-?)?(3(?:\.\d+){1,2})")


def _checked(where: str, line: str, example_prefix: str) -> str:
    """The version of a line such as ``3.13``, ``python-3.13.2`` or ``cpython-3.13``."""
    match = _VERSION_LINE.fullmatch(line)
    if match is None:
        raise PythonUnavailable(
            f"{where} says {line[:40]!r}, which is no Python version: write one such as "
            f"{example_prefix}3.13 or {example_prefix}3.13.2."
        )
    return match.group(1)


def _requires_python(root: int) -> str | None:
    text = _read(root, "pyproject.toml")
    if text is None:
        return None
    try:
        project = tomllib.loads(text).get("project", {})
    except tomllib.TOMLDecodeError:
        return None  # pip reports a broken pyproject.toml better, with its line
    value = project.get("requires-python") if isinstance(project, dict) else None
    return value.strip() if isinstance(value, str) and value.strip() else None


def _satisfying(specifier: str, offered: tuple[Offered, ...]) -> Choice:
    for candidate in offered:  # the line's own x.y.0 stands for it: >=3.13.2 is not met by 3.13
        if _satisfies(candidate.line, specifier):
            return Choice(candidate, f"requires-python {specifier} in pyproject.toml")
    raise PythonUnavailable(
        f"pyproject.toml has requires-python {specifier}, which no Python Slipway offers "
        f"meets: it offers {_offered_list(offered)} (change requires-python)."
    )


_CLAUSE = re.compile(r"^(~=|===|==|!=|<=|>=|<|>)\s*([0-9][0-9.]*)(\.\*)?$")


def _satisfies(version: str, specifier: str) -> bool:
    """Whether ``version`` meets a PEP 440 specifier set of plain release numbers."""
    have = _parts(version)
    for clause in (c.strip() for c in specifier.split(",")):
        match = _CLAUSE.match(clause)
        if match is None:
            raise PythonUnavailable(
                f"pyproject.toml has requires-python {specifier}, which Slipway cannot read: "
                "write it as, say, >=3.11 or >=3.11,<3.14."
            )
        op, text, wildcard = match.groups()
        want = _parts(text)
        if not _meets(have, op, want, bool(wildcard)):
            return False
    return True


def _meets(have: list[int], op: str, want: list[int], wildcard: bool) -> bool:
    if op in ("==", "===", "!=") and wildcard:
        same = have[: len(want)] == want
        return same if op != "!=" else not same
    size = max(len(have), len(want))
    have, padded = have + [0] * (size - len(have)), want + [0] * (size - len(want))
    if op == "~=":
        return have >= padded and have[: len(want) - 1] == want[:-1]
    return {
        "==": have == padded,
        "===": have == padded,
        "!=": have != padded,
        "<=": have <= padded,
        ">=": have >= padded,
        "<": have < padded,
        ">": have > padded,
    }[op]


def _parts(version: str) -> list[int]:
    return [int(part) for part in version.split(".") if part]


def _offered_list(offered: tuple[Offered, ...]) -> str:
    return ", ".join(f"Python {o.line}" for o in offered)


def _read(root: int, name: str) -> str | None:
    """A small regular file of the source's root as text; None when it is missing or odd."""
    if not beneath.is_regular(root, name):
        return None
    try:
        return beneath.read_small(root, name, MAX_FILE).decode("utf-8", errors="replace")
    except OSError:
        return None
