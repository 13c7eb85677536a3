"""Which Python an app asks for: .python-version, runtime.txt, Pipfile, requires-python, misses."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from slipway.services.python_versions import Offered, PythonUnavailable, choose

OFFERED = (
    Offered("3.14", "forky", "python-3.14"),
    Offered("3.13", "trixie", "python-3.13"),
    Offered("3.11", "bookworm", "python"),
)
NOTHING_ASKED = "no .python-version, runtime.txt, Pipfile or requires-python"


def asked(root: Path, name: str, text: str) -> tuple[str, str]:
    (root / name).write_text(text)
    choice = choose(root, OFFERED)
    return choice.offered.line, choice.reason


def test_python_version_skips_comments_and_blank_lines_as_pyenv_and_uv_do(tmp_path: Path) -> None:
    text = "# The version of Python this app runs on\n\n3.13\n"
    assert asked(tmp_path, ".python-version", text) == (
        "3.13",
        ".python-version asks for 3.13",
    )


@pytest.mark.parametrize(
    ("text", "version"),
    [("3.11\n", "3.11"), ("3.13.5", "3.13"), ("  3.14 \n3.11\n", "3.14"), ("3", None)],
)
def test_python_version_lines(tmp_path: Path, text: str, version: str | None) -> None:
    if version is None:
        with pytest.raises(PythonUnavailable, match="which is no Python version"):
            asked(tmp_path, ".python-version", text)
    else:
        assert asked(tmp_path, ".python-version", text)[0] == version


def test_a_patch_release_is_met_by_debians_release_of_its_line(tmp_path: Path) -> None:
    assert asked(tmp_path, "runtime.txt", "python-3.13.2\n") == (
        "3.13",
        "runtime.txt asks for 3.13.2; Debian's 3.13 here",
    )


def test_runtime_txt_comes_next(tmp_path: Path) -> None:
    assert asked(tmp_path, "runtime.txt", "python-3.11\n") == ("3.11", "runtime.txt asks for 3.11")
    (tmp_path / ".python-version").write_text("# only a comment\n")
    assert choose(tmp_path, OFFERED).reason == "runtime.txt asks for 3.11"


def test_requires_python_picks_the_newest_that_meets_it(tmp_path: Path) -> None:
    project = '[project]\nname = "x"\nrequires-python = ">=3.11,<3.14"\n'
    assert asked(tmp_path, "pyproject.toml", project) == (
        "3.13",
        "requires-python >=3.11,<3.14 in pyproject.toml",
    )
    assert asked(tmp_path, "pyproject.toml", '[project]\nrequires-python = "~=3.11.0"\n')[0] == (
        "3.11"
    )
    assert asked(tmp_path, "pyproject.toml", '[project]\nrequires-python = "==3.13.*"\n')[0] == (
        "3.13"
    )


def test_nothing_asked_keeps_the_python_apps_had_before(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text("flask\n")
    choice = choose(tmp_path, OFFERED)
    assert (choice.offered.line, choice.offered.variant) == ("3.11", "python")
    assert choice.reason == NOTHING_ASKED


def test_a_version_not_offered_says_what_is(tmp_path: Path) -> None:
    (tmp_path / ".python-version").write_text("# comment\n3.12\n")
    with pytest.raises(PythonUnavailable) as missed:
        choose(tmp_path, OFFERED)
    assert str(missed.value) == (
        ".python-version asks for Python 3.12, which Slipway does not offer: it offers "
        "Python 3.14, Python 3.13, Python 3.11 (change .python-version)."
    )
    (tmp_path / ".python-version").unlink()
    (tmp_path / "pyproject.toml").write_text('[project]\nrequires-python = ">=3.15"\n')
    with pytest.raises(PythonUnavailable, match="requires-python >=3.15, which no Python"):
        choose(tmp_path, OFFERED)


def test_version_files_that_are_links_are_not_read(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.write_text("3.12\n")
    root = tmp_path / "source"
    root.mkdir()
    os.symlink(outside, root / ".python-version")
    assert choose(root, OFFERED).reason == NOTHING_ASKED


PIPFILE = '[packages]\nflask = "*"\n\n[requires]\n{requires}\n'


def test_a_pipfile_python_version_comes_after_runtime_txt_and_before_requires_python(
    tmp_path: Path,
) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nrequires-python = ">=3.11"\n')
    pipfile = PIPFILE.format(requires='python_version = "3.13"')
    assert asked(tmp_path, "Pipfile", pipfile) == ("3.13", "Pipfile asks for 3.13")
    assert asked(tmp_path, "runtime.txt", "python-3.11\n") == ("3.11", "runtime.txt asks for 3.11")


def test_a_pipfile_python_full_version_is_read_first_as_pipenv_does(tmp_path: Path) -> None:
    requires = 'python_version = "3.13"\npython_full_version = "3.14.1"'
    assert asked(tmp_path, "Pipfile", PIPFILE.format(requires=requires)) == (
        "3.14",
        "Pipfile asks for 3.14.1; Debian's 3.14 here",
    )


@pytest.mark.parametrize(
    "text",
    ['[packages]\nflask = "*"\n', PIPFILE.format(requires=""), "[requires\nbroken", "[requires]\n"],
)
def test_a_pipfile_without_a_python_version_asks_for_none(tmp_path: Path, text: str) -> None:
    assert asked(tmp_path, "Pipfile", text) == (
        "3.11",
        NOTHING_ASKED,
    )


def test_a_pipfile_python_version_not_offered_or_not_a_version_fails(tmp_path: Path) -> None:
    (tmp_path / "Pipfile").write_text(PIPFILE.format(requires='python_version = "3.12"'))
    with pytest.raises(PythonUnavailable) as missed:
        choose(tmp_path, OFFERED)
    assert str(missed.value) == (
        "Pipfile asks for Python 3.12, which Slipway does not offer: it offers "
        "Python 3.14, Python 3.13, Python 3.11 (change Pipfile)."
    )
    (tmp_path / "Pipfile").write_text(PIPFILE.format(requires='python_version = "latest"'))
    with pytest.raises(PythonUnavailable, match="Pipfile's python_version says 'latest'"):
        choose(tmp_path, OFFERED)


def test_a_pipfile_that_is_a_link_is_not_read(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.write_text(PIPFILE.format(requires='python_version = "3.13"'))
    root = tmp_path / "source"
    root.mkdir()
    os.symlink(outside, root / "Pipfile")
    assert choose(root, OFFERED).offered.line == "3.11"
