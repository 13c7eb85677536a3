"""What Java and PHP version selection share: the versions the images offer, and the choice.

Each offered version is a pair of images, ``build-<variant>`` and ``run-<variant>``, built on the
Debian suite whose package it is; the variant is what a release records as its stack, so its
instances, release phases and one-off runs use the run image it was built for.
"""

from __future__ import annotations

from dataclasses import dataclass

from slipway import beneath

MAX_FILE = 64 * 1024  # a version file larger than this is not one


@dataclass(frozen=True)
class Offered:
    language: str  # "Java", "PHP": how the build log and the errors name it
    line: str  # "21", "8.4": the patch release is the suite's package of the day
    suite: str  # the Debian suite whose package it is
    variant: str  # the images are build-<variant> and run-<variant>; a release's stack


@dataclass(frozen=True)
class Choice:
    offered: Offered
    reason: str  # "system.properties asks for 21", for the build log


def offered_list(offered: tuple[Offered, ...]) -> str:
    """ "Java 21, Java 17": newest first, as the tuples are written."""
    return ", ".join(f"{o.language} {o.line}" for o in offered)


def default_of(offered: tuple[Offered, ...], variant: str) -> Offered:
    return next((o for o in offered if o.variant == variant), offered[-1])


def read_text(root: int, name: str, encoding: str = "utf-8") -> str | None:
    """A small regular file of the source's root as text; None when it is missing or odd."""
    if not beneath.is_regular(root, name):
        return None
    try:
        return beneath.read_small(root, name, MAX_FILE).decode(encoding, errors="replace")
    except OSError:
        return None
