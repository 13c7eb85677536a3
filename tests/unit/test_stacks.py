"""Stack detection: what each marker means, static only for a site, and the sentence of a miss."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from slipway.services.stacks import STACKS, Unrecognised, detect_stack, recognise

TITLES = [stack.title for stack in STACKS]
BUILDS = f"Slipway builds {', '.join(TITLES[:-1])} and {TITLES[-1]}."


def tree(root: Path, *names: str) -> Path:
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("x\n")
    return root


@pytest.mark.parametrize(
    ("files", "stack", "marker"),
    [
        (["package.json", "public/index.html"], "node", "package.json"),
        (["requirements.txt", "index.html"], "python", "requirements.txt"),
        (["pyproject.toml"], "python", "pyproject.toml"),
        (["Pipfile", "Pipfile.lock", "app.py"], "python", "Pipfile"),
        (["Pipfile.lock"], "python", "Pipfile.lock"),
        (["pyproject.toml", "uv.lock"], "python", "pyproject.toml"),
        (["pyproject.toml", "poetry.lock"], "python", "pyproject.toml"),
        (["index.html", "style.css"], "static", "index.html"),
        (["public/index.html", "README.txt"], "static", "public/index.html"),
        ([".static", "site.txt"], "static", ".static"),
    ],
)
def test_each_marker_names_its_stack(
    tmp_path: Path, files: list[str], stack: str, marker: str
) -> None:
    found, seen = recognise(tree(tmp_path, *files))
    assert (found.name, seen) == (stack, marker)
    assert detect_stack(tmp_path) == stack


def test_a_go_app_is_not_taken_for_a_static_site(tmp_path: Path) -> None:
    with pytest.raises(Unrecognised) as missed:
        detect_stack(tree(tmp_path, "go.mod", "main.go", "README.md"))
    assert str(missed.value) == f"No build image recognises this app: found go.mod; {BUILDS}"


def test_every_notable_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(Unrecognised) as missed:
        detect_stack(tree(tmp_path, "Procfile", "app.py", "Gemfile", "Cargo.toml"))
    assert "found Procfile, Gemfile, Cargo.toml;" in str(missed.value)


def test_a_source_with_nothing_known_lists_what_would_have_been(tmp_path: Path) -> None:
    with pytest.raises(Unrecognised) as missed:
        detect_stack(tree(tmp_path, "notes.txt", "lib/index.html"))
    said = str(missed.value)
    assert said.startswith("No build image recognises this app: found no Procfile, ")
    assert said.endswith(f" or index.html; {BUILDS}")
    for name in ("package.json", "requirements.txt", "pyproject.toml", "Pipfile", "Pipfile.lock"):
        assert f" {name}" in said
    assert "Node.js, Python" in BUILDS and BUILDS.endswith("and static sites.")


def test_markers_that_are_links_or_directories_do_not_count(tmp_path: Path) -> None:
    outside = tree(tmp_path / "outside", "package.json", "index.html")
    source = tmp_path / "source"
    source.mkdir()
    os.symlink(outside / "package.json", source / "package.json")
    os.symlink(outside, source / "public")  # public/index.html through a link
    (source / "index.html").mkdir()
    with pytest.raises(Unrecognised) as missed:
        detect_stack(source)
    assert "found package.json (not a regular file), index.html (not a regular file);" in str(
        missed.value
    )
