"""`.gitignore`-style matching, for `.slipwayignore` and for directories that are not git trees.

Supported: blank lines and ``#`` comments, ``!`` negation, a leading or inner ``/`` anchoring the
pattern to its file's directory, a trailing ``/`` matching directories only, ``*``, ``?``,
``[...]`` and ``**``. The last matching rule wins, and nothing inside an ignored directory can be
re-included (as in git).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Rule:
    base: str  # directory of the ignore file, relative to the root ("" for the root)
    regex: re.Pattern[str]
    negated: bool
    dir_only: bool

    def matches(self, path: str, is_dir: bool) -> bool:
        if self.dir_only and not is_dir:
            return False
        if self.base:
            if not path.startswith(self.base + "/"):
                return False
            path = path[len(self.base) + 1 :]
        return self.regex.fullmatch(path) is not None


def _translate(glob: str) -> str:
    """A gitignore glob (without anchoring slashes) as a regular expression."""
    out: list[str] = []
    i = 0
    while i < len(glob):
        if glob.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif glob.startswith("**", i):
            out.append(".*")
            i += 2
        elif glob[i] == "*":
            out.append("[^/]*")
            i += 1
        elif glob[i] == "?":
            out.append("[^/]")
            i += 1
        elif glob[i] == "[" and "]" in glob[i + 2 :]:
            end = glob.index("]", i + 2)
            body = glob[i + 1 : end].replace("\\", "\\\\")
            out.append("[^" + body[1:] + "]" if body[:1] in "!^" and body else "[" + body + "]")
            i = end + 1
        elif glob[i] == "\\" and i + 1 < len(glob):
            out.append(re.escape(glob[i + 1]))
            i += 2
        else:
            out.append(re.escape(glob[i]))
            i += 1
    return "".join(out)


def parse_line(line: str, base: str = "") -> Rule | None:
    """One line of an ignore file as a :class:`Rule`, or None for blanks and comments."""
    line = line.rstrip("\n").rstrip("\r")
    if not line.endswith("\\ "):
        line = line.rstrip(" ")
    if not line or line.startswith("#"):
        return None
    negated = line.startswith("!")
    if negated or line.startswith("\\!") or line.startswith("\\#"):
        line = line[1:]
    dir_only = line.endswith("/")
    line = line.rstrip("/")
    if not line:
        return None
    anchored = "/" in line
    line = line.lstrip("/")
    regex = _translate(line)
    if not anchored:
        regex = "(?:.*/)?" + regex
    return Rule(base, re.compile(regex, re.DOTALL), negated, dir_only)


@dataclass
class IgnoreRules:
    rules: list[Rule] = field(default_factory=list)

    def add_file(self, path: Path, base: str = "") -> None:
        """Add the rules of one ignore file; ``base`` is its directory relative to the root."""
        try:
            text = path.read_text(errors="replace")
        except (FileNotFoundError, IsADirectoryError):
            return
        for line in text.splitlines():
            rule = parse_line(line, base)
            if rule:
                self.rules.append(rule)

    def _matched(self, path: str, is_dir: bool) -> bool:
        ignored = False
        for rule in self.rules:
            if rule.matches(path, is_dir):
                ignored = not rule.negated
        return ignored

    def is_ignored(self, path: str, is_dir: bool = False) -> bool:
        """Whether ``path`` (relative, with ``/``) is ignored, itself or through a parent."""
        parts = path.split("/")
        for n in range(1, len(parts)):
            if self._matched("/".join(parts[:n]), True):
                return True
        return self._matched(path, is_dir)
