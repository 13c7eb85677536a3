"""Which Java a Java app asks for, and whether the images offer it.

Read as Heroku reads it: ``java.runtime.version`` in ``system.properties`` at the root of the
source (``21``, ``21.0.2``, ``1.8`` for Java 8, or a vendor's name before it: ``zulu-21``). Only
Debian's OpenJDK is offered, so a vendor's name or a patch release is met by Debian's OpenJDK of
that major version, and the build log says so. The source is a user's: the file is read beneath
its root, never through a link. A Java no image offers fails the deploy at once, with a sentence
listing what is offered.
"""

from __future__ import annotations

import re
from pathlib import Path

from slipway import beneath
from slipway.services.errors import SlipwayError
from slipway.services.stack_versions import Choice, Offered, default_of, offered_list, read_text

PROPERTIES = "system.properties"
KEY = "java.runtime.version"

# Newest first. A line here is the OpenJDK of the Debian suite its images are built on.
OFFERED: tuple[Offered, ...] = (
    Offered("Java", "21", "trixie", "java-21"),
    Offered("Java", "17", "bookworm", "java"),
)
# An app that names no version gets the JDK every Java app got before there was a choice, so a
# redeploy never moves it to another JVM unasked.
DEFAULT_VARIANT = "java"


class JavaUnavailable(SlipwayError):
    """The app asks for a Java no image offers; the message lists the ones offered."""


def choose(source: Path, offered: tuple[Offered, ...] = OFFERED) -> Choice:
    """The offered Java that ``source`` asks for (17, the default, when it asks for none)."""
    with beneath.opened(beneath.open_root(source)) as root:
        # Java reads .properties files as ISO 8859-1.
        text = read_text(root, PROPERTIES, encoding="latin-1")
    wanted = runtime_version(text) if text is not None else None
    if not wanted:
        return Choice(default_of(offered, DEFAULT_VARIANT), f"no {KEY} in {PROPERTIES}")
    vendor, major, patch = _version_of(wanted, offered)
    for candidate in offered:
        if candidate.line == major:
            if vendor and vendor not in ("openjdk", "heroku"):  # Heroku's are OpenJDK builds
                return Choice(
                    candidate,
                    f"{PROPERTIES} asks for {wanted}; only Debian's OpenJDK {major} is offered",
                )
            if patch:
                return Choice(
                    candidate, f"{PROPERTIES} asks for {wanted}; Debian's OpenJDK {major} here"
                )
            return Choice(candidate, f"{PROPERTIES} asks for {wanted}")
    raise JavaUnavailable(
        f"{PROPERTIES} asks for Java {wanted}, which Slipway does not offer: it offers "
        f"{offered_list(offered)} (set {KEY} to one of them)."
    )


def runtime_version(text: str) -> str | None:
    """``java.runtime.version`` of a .properties file: ``key=value``, ``key: value`` or
    ``key value``; lines starting with ``#`` or ``!`` are comments. None when it is not set."""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#!":
            continue
        match = re.fullmatch(r"([^=:\s]+)\s*[=:\s]\s*(.*)", line)
        if match and match.group(1) == KEY:
            return match.group(2).strip() or None
    return None


# "21", "21.0.2", "1.8", "1.8.0_392", "zulu-21", "heroku-21", "openjdk-21.0.2"
_VERSION = re.compile(r"(?:([a-z][a-z0-9]*)-)?(1\.\d+|\d+)((?:\.\d+)*(?:_\d+)?)")


def _version_of(wanted: str, offered: tuple[Offered, ...]) -> tuple[str, str, str]:
    """(vendor, major, the rest) of a java.runtime.version: ("zulu", "21", ".0.2")."""
    match = _VERSION.fullmatch(wanted.lower())
    if match is None:
        raise JavaUnavailable(
            f"{PROPERTIES} sets {KEY} to {wanted[:40]!r}, which is no Java version: write a "
            f"major version such as {offered[0].line} (Slipway offers {offered_list(offered)})."
        )
    vendor, major, rest = match.groups()
    return vendor or "", major.removeprefix("1."), rest  # 1.8 is Java 8
