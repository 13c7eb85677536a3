"""npm's semver ranges (``engines.node``), matched against plain ``X.Y.Z`` release versions.

The grammar is node-semver's: ranges joined by ``||``; each a space-separated list of
comparators (``>=20``, ``<23``, ``=22.1.0``), tilde (``~22.1``), caret (``^22.1``), x-ranges
(``22``, ``22.x``, ``*``) and hyphen ranges (``20 - 22.4``). Only releases are matched, so
prerelease tags in a range are dropped (``<23.0.0-0`` means ``<23.0.0``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from slipway.services.errors import Invalid

Version = tuple[int, int, int]
Partial = tuple[int | None, int | None, int | None]
Comparator = tuple[str, Version]

_PART = r"0|[1-9]\d*|[xX*]"
_PARTIAL = re.compile(
    rf"v?({_PART})(?:\.({_PART})(?:\.({_PART}))?)?(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?"
)
_TOKEN = re.compile(r"(<=|>=|<|>|=|~>|~|\^)?=?\s*(.*)")
_HYPHEN = re.compile(r"^\s*(\S+)\s+-\s+(\S+)\s*$")
_OPERATOR_SPACE = re.compile(r"(<=|>=|<|>|=|~>|~|\^)\s+")
_NEVER: list[Comparator] = [("<", (0, 0, 0))]
MAX_RANGE = 256  # characters: engines.node is a short string


def parse_version(text: str) -> Version | None:
    """``22.1.0`` (or ``v22.1.0``) as a tuple; None for anything else (prereleases included)."""
    match = re.fullmatch(r"v?(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)", text.strip())
    return (int(match[1]), int(match[2]), int(match[3])) if match else None


def parse_range(text: str) -> list[list[Comparator]]:
    """The range as alternatives of comparator lists; Invalid when it is not a semver range."""
    if len(text) > MAX_RANGE:
        raise Invalid(f"The version range is longer than {MAX_RANGE} characters.")
    return [_comparator_set(part) for part in text.split("||")]


def satisfies(version: Version, text: str) -> bool:
    return any(
        all(_holds(version, op, bound) for op, bound in alternative)
        for alternative in parse_range(text)
    )


def max_satisfying(versions: Iterable[Version], text: str) -> Version | None:
    """The newest version in the range (None when none is)."""
    alternatives = parse_range(text)
    matching = [
        version
        for version in versions
        if any(all(_holds(version, op, bound) for op, bound in alt) for alt in alternatives)
    ]
    return max(matching, default=None)


def _comparator_set(text: str) -> list[Comparator]:
    hyphen = _HYPHEN.match(text)
    if hyphen:
        low, high = _partial(hyphen[1], text), _partial(hyphen[2], text)
        return _desugar(">=", low) + _desugar("<=", high)
    comparators: list[Comparator] = []
    for token in _OPERATOR_SPACE.sub(r"\1", text.strip()).split():
        match = _TOKEN.fullmatch(token)
        if match is None:  # pragma: no cover - the pattern matches any token
            raise _invalid(text)
        comparators += _desugar(match[1] or "=", _partial(match[2], text))
    return comparators


def _partial(text: str, whole: str) -> Partial:
    match = _PARTIAL.fullmatch(text)
    if match is None:
        raise _invalid(whole)
    parts: list[int | None] = []
    for part in match.groups():
        if part is None or part in "xX*" or (parts and parts[-1] is None):
            parts.append(None)
        else:
            parts.append(int(part))
    return parts[0], parts[1], parts[2]


def _invalid(text: str) -> Invalid:
    return Invalid(f"{text.strip()!r} is not a semver range (like 22, ^20.11 or >=20 <23).")


def _desugar(op: str, partial: Partial) -> list[Comparator]:
    """One comparator of the range grammar as plain comparisons on full versions."""
    major, minor, patch = partial
    floor = (major or 0, minor or 0, patch or 0)
    if op in ("~", "~>"):
        op = "~" if minor is not None else "="  # ~22 is 22.x
    if major is None:  # *, x, >=*: anything; <*, >*: nothing
        return _NEVER if op in ("<", ">") else []
    if op == "=":
        if minor is None:
            return [(">=", floor), ("<", (major + 1, 0, 0))]
        if patch is None:
            return [(">=", floor), ("<", (major, minor + 1, 0))]
        return [("=", floor)]
    if op == "~":
        return [(">=", floor), ("<", (major, (minor or 0) + 1, 0))]
    if op == "^":
        if major > 0 or minor is None:
            upper = (major + 1, 0, 0)
        elif minor > 0 or patch is None:
            upper = (0, minor + 1, 0)
        else:
            upper = (0, 0, patch + 1)
        return [(">=", floor), ("<", upper)]
    if op == ">" and minor is None:
        return [(">=", (major + 1, 0, 0))]
    if op == ">" and patch is None:
        return [(">=", (major, (minor or 0) + 1, 0))]
    if op == "<=" and minor is None:
        return [("<", (major + 1, 0, 0))]
    if op == "<=" and patch is None:
        return [("<", (major, (minor or 0) + 1, 0))]
    return [(op, floor)]


def _holds(version: Version, op: str, bound: Version) -> bool:
    if op == "=":
        return version == bound
    if op == ">=":
        return version >= bound
    if op == ">":
        return version > bound
    if op == "<":
        return version < bound
    return version <= bound
