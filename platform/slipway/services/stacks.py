"""Which language stack a source tree is, and the build and run images that serve it.

A stack is recognised by its marker files at the root of the source, in the order of
:data:`STACKS`: the first stack with a marker present wins. Static comes last and is chosen
only for a site (an ``index.html``, or an explicit ``.static`` marker), never as a fallback: a
source no stack recognises fails at once with a sentence naming what was found.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from slipway import beneath
from slipway.config import Settings
from slipway.services.errors import SlipwayError


class Unrecognised(SlipwayError):
    """No build image recognises the source; the message names what was found."""


@dataclass(frozen=True)
class Stack:
    name: str  # the images are build-<name> and run-<name>
    title: str  # how the user reads it: "Slipway builds Node.js, Python and static sites"
    markers: tuple[str, ...]  # regular files (relative to the root), any of which recognises it


# Ordered: a Node.js app with a public/index.html is a Node.js app. New stacks go before static.
STACKS: tuple[Stack, ...] = (
    Stack("php", "PHP", ("composer.json",)),  # before node: PHP apps often bundle a package.json
    Stack("java", "Java", ("pom.xml", "gradlew", "build.gradle", "build.gradle.kts")),
    Stack("node", "Node.js", ("package.json",)),
    Stack("python", "Python", ("requirements.txt", "pyproject.toml", "Pipfile", "Pipfile.lock")),
    Stack("static", "static sites", ("index.html", "public/index.html", ".static")),
)

# Files that say what a source is meant to be even when no stack here builds it: named in the
# error, so the user reads "found go.mod" rather than a guess.
OTHER_MARKERS = (
    "go.mod",
    "Gemfile",
    "Cargo.toml",
    "mix.exs",
    "deno.json",
    "build.sbt",
    "pom.xml",
    "build.gradle",
    "build.gradle.kts",
    "gradlew",
    "composer.json",
    "index.php",
    "Dockerfile",
)


def detect_stack(source: Path) -> str:
    """The name of the stack that builds ``source``; see :func:`recognise`."""
    return recognise(source)[0].name


def recognise(source: Path) -> tuple[Stack, str]:
    """The first stack with a marker that is a regular file in ``source``, and that marker.

    The source is a user's: only regular files count, looked at beneath ``source`` (a link
    named ``package.json`` is not followed, wherever it points). :class:`Unrecognised` when no
    stack recognises it.
    """
    with beneath.opened(beneath.open_root(source)) as root:
        for stack in STACKS:
            for marker in stack.markers:
                if beneath.is_regular(root, marker):
                    return stack, marker
        names = set(beneath.list_dir(root, ""))
        notable = names & {*_expected_names(), *OTHER_MARKERS}
        odd = {name for name in notable if not beneath.is_regular(root, name)}
    raise Unrecognised(_unrecognised_sentence(names, odd))


def _unrecognised_sentence(names: set[str], not_regular: set[str]) -> str:
    """ "No build image recognises this app: found go.mod; Slipway builds ...", or "found no"
    followed by the files that would have been recognised."""
    expected = _expected_names()
    found = [name for name in dict.fromkeys([*expected, *OTHER_MARKERS]) if name in names]
    if found:
        shown = [f"{n} (not a regular file)" if n in not_regular else n for n in found]
        seen = "found " + ", ".join(shown)
    else:
        seen = "found no " + _listing(expected, "or")
    builds = _listing([stack.title for stack in STACKS], "and")
    return f"No build image recognises this app: {seen}; Slipway builds {builds}."


def _expected_names() -> list[str]:
    """A Procfile, then the stacks' root-level markers in order (not the ``.static`` one)."""
    markers = [m for stack in STACKS for m in stack.markers if "/" not in m and m != ".static"]
    return list(dict.fromkeys(["Procfile", *markers]))


def _listing(items: list[str], last_word: str) -> str:
    if len(items) < 2:
        return "".join(items)
    return f"{', '.join(items[:-1])} {last_word} {items[-1]}"


def build_image(settings: Settings, stack: str) -> str:
    return f"{settings.image_prefix}build-{stack}:latest"


def run_image(settings: Settings, stack: str) -> str:
    return f"{settings.image_prefix}run-{stack}:latest"
