"""Which PHP a PHP app asks for, and whether the images offer it.

Read as Composer and Heroku read it: ``require.php`` in ``composer.json``, a Composer version
constraint (``^8.2``, ``>=8.1 <8.5``, ``~8.3.0``, ``8.4.*``, ``^8.2 || ^8.3``). The newest offered
PHP line that the constraint lets in is used; since each line is Debian's PHP of one suite, the
build image then checks Debian's patch release against the constraint with Composer's own rules
(``>=8.4.99`` lets the 8.4 line in, and the build says that 8.4.x does not meet it). The source is
a user's: composer.json is read beneath its root, never through a link. A constraint no offered
PHP meets fails the deploy at once, with a sentence listing what is offered.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from slipway import beneath
from slipway.services.errors import SlipwayError
from slipway.services.stack_versions import Choice, Offered, default_of, offered_list, read_text

# Newest first. A line here is the PHP of the Debian suite its images are built on.
OFFERED: tuple[Offered, ...] = (
    Offered("PHP", "8.4", "trixie", "php-8.4"),
    Offered("PHP", "8.2", "bookworm", "php"),
)
# An app that names no version gets the PHP every PHP app got before there was a choice, so a
# redeploy never moves it to another PHP unasked.
DEFAULT_VARIANT = "php"
MAX_CONSTRAINT = 256  # characters: require.php is a short string

Version = tuple[int, int, int, int]  # Composer normalises every version to four parts
Clause = tuple[str, Version]  # (">=", (8, 2, 0, 0)); the operators are >= > <= < == !=


class PhpUnavailable(SlipwayError):
    """The app asks for a PHP no image offers; the message lists the ones offered."""


def choose(source: Path, offered: tuple[Offered, ...] = OFFERED) -> Choice:
    """The newest offered PHP that ``source`` lets in (8.2, the default, when it names none)."""
    with beneath.opened(beneath.open_root(source)) as root:
        text = read_text(root, "composer.json")
    constraint = require_php(text) if text is not None else None
    if constraint is None:
        return Choice(default_of(offered, DEFAULT_VARIANT), "no require.php in composer.json")
    try:
        alternatives = parse(constraint)
    except ValueError as exc:
        raise PhpUnavailable(
            f"composer.json requires php {constraint[:60]!r}, which Slipway cannot read as a "
            f"Composer version constraint ({exc}): write one such as ^8.2 or >=8.2 <8.5."
        ) from exc
    for candidate in offered:
        if any(_admits_line(clauses, candidate.line) for clauses in alternatives):
            return Choice(candidate, f"composer.json requires php {constraint}")
    raise PhpUnavailable(
        f"composer.json requires php {constraint}, which no PHP Slipway offers meets: it offers "
        f"{offered_list(offered)} (change require.php)."
    )


def require_php(text: str) -> str | None:
    """``require.php`` of a composer.json; None when it has none (or is no JSON object: the
    build says why with PHP's own words)."""
    try:
        document = json.loads(text)
    except ValueError:
        return None
    require = document.get("require") if isinstance(document, dict) else None
    value = require.get("php") if isinstance(require, dict) else None
    return value.strip() if isinstance(value, str) and value.strip() else None


# ---------------------------------------------------------------------------------------------
# Composer's constraint syntax (composer/semver's VersionParser::parseConstraints)

_OPERATOR = r"(?:>=|<=|<>|!=|==|=|>|<|~|\^)"
_OPERATOR_SPACE = re.compile(rf"({_OPERATOR})\s+")
_HYPHEN = re.compile(r"(\S+)\s+-\s+(\S+)")
_TOKEN = re.compile(
    rf"({_OPERATOR})?v?(\d+(?:\.\d+){{0,3}}(?:\.[*xX])?|[*xX])(?:-[0-9A-Za-z.]+)?(?:@\w+)?"
)


def parse(constraint: str) -> list[list[Clause]]:
    """The constraint as alternatives (``||``), each a list of clauses that must all hold;
    ValueError naming the part that is not Composer's syntax."""
    if len(constraint) > MAX_CONSTRAINT:
        raise ValueError(f"longer than {MAX_CONSTRAINT} characters")
    return [_conjunction(part) for part in re.split(r"\s*\|\|?\s*", constraint.strip())]


def _conjunction(text: str) -> list[Clause]:
    hyphen = _HYPHEN.fullmatch(text.strip())
    if hyphen:
        low, high = _numbers(hyphen[1]), _numbers(hyphen[2])
        # A partial upper end is a wildcard: 8.1 - 8.3 is >=8.1 <8.4; 8.1 - 8.3.2 is <=8.3.2.
        upper = ("<=", _version(high)) if len(high) >= 3 else ("<", _bump(high, len(high) - 1))
        return [(">=", _version(low)), upper]
    tokens = [t for t in re.split(r"\s*,\s*|\s+", _OPERATOR_SPACE.sub(r"\1", text.strip())) if t]
    if not tokens:
        raise ValueError("an empty alternative")
    return [clause for token in tokens for clause in _clauses(token)]


def _clauses(token: str) -> list[Clause]:
    match = _TOKEN.fullmatch(token)
    if match is None:
        raise ValueError(f"{token[:40]!r}")
    op, text = match[1] or "", match[2]
    if text in ("*", "x", "X"):
        return []  # any version
    wildcard = text[-1] in "*xX"
    parts = [int(p) for p in text.split(".") if p not in ("*", "x", "X")]
    if wildcard and op in ("", "==", "="):  # 8.4.* is >=8.4 <8.5
        return [(">=", _version(parts)), ("<", _bump(parts, len(parts) - 1))]
    if wildcard and op in ("!=", "<>"):
        raise ValueError(f"{token[:40]!r}: a wildcard cannot be excluded")
    if op == "~":  # ~8.3 is >=8.3 <9.0; ~8.3.0 is >=8.3.0 <8.4
        return [(">=", _version(parts)), ("<", _bump(parts, max(len(parts) - 2, 0)))]
    if op == "^":  # ^8.2 is >=8.2 <9.0; ^0.3 is >=0.3 <0.4
        first = next((i for i, p in enumerate(parts) if p), len(parts) - 1)
        return [(">=", _version(parts)), ("<", _bump(parts, first))]
    normal = {"": "==", "=": "==", "<>": "!="}.get(op, op)
    return [(normal, _version(parts))]


def _numbers(text: str) -> list[int]:
    match = re.fullmatch(r"v?(\d+(?:\.\d+){0,3})(?:-[0-9A-Za-z.]+)?", text)
    if match is None:
        raise ValueError(f"{text[:40]!r}")
    return [int(p) for p in match[1].split(".")]


def _version(parts: list[int]) -> Version:
    padded = (parts + [0, 0, 0, 0])[:4]
    return (padded[0], padded[1], padded[2], padded[3])


def _bump(parts: list[int], index: int) -> Version:
    """The version after every one that starts with ``parts[:index + 1]``."""
    return _version(parts[:index] + [parts[index] + 1])


@dataclass
class _Span:
    """The versions between two ends, less some single versions (what ``!=`` leaves out)."""

    low: Version
    low_in: bool
    high: Version | None  # None: no upper end
    high_in: bool
    left_out: set[Version] = field(default_factory=set)

    def narrow(self, op: str, want: Version) -> None:
        if op in (">=", ">") and (want, op == ">") > (self.low, not self.low_in):
            self.low, self.low_in = want, op == ">="
        elif op in ("<=", "<") and (
            self.high is None or (want, op == "<=") < (self.high, self.high_in)
        ):
            self.high, self.high_in = want, op == "<="
        elif op == "==":
            self.narrow(">=", want)
            self.narrow("<=", want)
        elif op == "!=":
            self.left_out.add(want)

    def empty(self) -> bool:
        if self.high is None or self.low < self.high:
            return False  # more versions than any list of exclusions
        return not (self.low == self.high and self.low_in and self.high_in) or (
            self.low in self.left_out
        )


def _admits_line(clauses: list[Clause], line: str) -> bool:
    """Whether some release of the line (8.4: 8.4.0 up to, not including, 8.5) meets them all."""
    parts = [int(p) for p in line.split(".")]
    span = _Span(_version(parts), True, _bump(parts, len(parts) - 1), False)
    for op, want in clauses:
        span.narrow(op, want)
    return not span.empty()
