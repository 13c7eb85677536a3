"""The image tree without the engine: parents, build order, content tags, and the helpers the
images run (Procfile parsing, WSGI discovery), plus the CLI with Docker unreachable."""

from __future__ import annotations

import importlib.util
import subprocess
from pathlib import Path
from types import ModuleType

import pytest
from click.testing import CliRunner

from slipway.cli.main import cli
from slipway.runtime.images import ImageBuildError, build_order, content_tags, read_tree
from tests.conftest import REPO

IMAGES = REPO / "images"


def _tree(root: Path, images: dict[str, str | None]) -> Path:
    """A fake images/ folder: name -> parent (None for base)."""
    images_dir = root / "images"
    for name, parent in images.items():
        folder = images_dir / name
        folder.mkdir(parents=True)
        if parent is None:
            (folder / "build-rootfs.sh").write_text("#!/bin/sh\n")
        else:
            (folder / "Dockerfile").write_text(f"# {name}\nFROM slipway/{parent}:latest\n")
    return images_dir


def test_the_real_tree_has_the_standard_shape() -> None:
    tree = read_tree(IMAGES)
    parents = {name: image.parent for name, image in tree.items()}
    assert parents == {
        "base": None,
        "base-forky": None,
        "base-trixie": None,
        "build-base": "base",
        "build-java": "build-base",
        "build-java-21": "base-trixie",
        "build-node": "build-base",
        "build-php": "build-base",
        "build-php-8.4": "base-trixie",
        "build-python": "build-base",
        "build-python-3.13": "base-trixie",
        "build-python-3.14": "base-forky",
        "build-static": "build-base",
        "run-base": "base",
        "run-java": "run-base",
        "run-java-21": "base-trixie",
        "run-node": "run-base",
        "run-php": "run-base",
        "run-php-8.4": "base-trixie",
        "run-python": "run-base",
        "run-python-3.13": "base-trixie",
        "run-python-3.14": "base-forky",
        "run-static": "run-base",
    }
    assert tree["run-base"].extra_files == ("navi/navi.py",)
    assert tree["base-trixie"].extra_files == ("images/base/build-rootfs.sh",)


@pytest.mark.parametrize(
    "folder",
    ["build-base", "build-java", "build-node", "build-php", "build-python", "build-static"],
)
def test_every_build_image_ships_an_executable_build(folder: str) -> None:
    assert (IMAGES / folder / "bin" / "build").stat().st_mode & 0o111


@pytest.mark.parametrize(
    "folder", ["run-base", "run-java", "run-node", "run-php", "run-python", "run-static"]
)
def test_every_run_image_ships_an_executable_start(folder: str) -> None:
    assert (IMAGES / folder / "bin" / "start").stat().st_mode & 0o111


def test_every_folder_with_a_rootfs_script_is_a_root(tmp_path: Path) -> None:
    images = {"base": None, "base-trixie": None, "run-python-3.13": "base-trixie"}
    tree = read_tree(_tree(tmp_path, images))
    assert {name: image.parent for name, image in tree.items()} == images
    order = build_order(tree, ["run-python-3.13"])
    assert [i.name for i in order] == ["base-trixie", "run-python-3.13"]


def test_naming_one_image_brings_its_ancestors_first(tmp_path: Path) -> None:
    tree = read_tree(_tree(tmp_path, {"base": None, "run-base": "base", "run-node": "run-base"}))
    assert [i.name for i in build_order(tree, ["run-node"])] == ["base", "run-base", "run-node"]
    assert [i.name for i in build_order(tree)] == ["base", "run-base", "run-node"]


def test_an_unknown_image_name_is_a_clear_error(tmp_path: Path) -> None:
    tree = read_tree(_tree(tmp_path, {"base": None}))
    with pytest.raises(ImageBuildError, match="no such image: run-go"):
        build_order(tree, ["run-go"])


def test_a_missing_parent_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ImageBuildError, match="FROM slipway/run-base, which is not here"):
        read_tree(_tree(tmp_path, {"base": None, "run-go": "run-base"}))


def test_content_tags_follow_files_and_parents(tmp_path: Path) -> None:
    images_dir = _tree(tmp_path, {"base": None, "run-base": "base", "build-base": "base"})
    before = content_tags(read_tree(images_dir), tmp_path)
    assert content_tags(read_tree(images_dir), tmp_path) == before  # stable

    (images_dir / "base" / "build-rootfs.sh").write_text("#!/bin/sh\necho changed\n")
    after = content_tags(read_tree(images_dir), tmp_path)
    assert all(after[name] != before[name] for name in before)  # the children follow

    (images_dir / "run-base" / "start").write_text("#!/bin/sh\n")
    again = content_tags(read_tree(images_dir), tmp_path)
    assert again["run-base"] != after["run-base"]
    assert again["build-base"] == after["build-base"]


def test_extra_files_are_inputs_and_must_exist(tmp_path: Path) -> None:
    images_dir = _tree(tmp_path, {"base": None, "run-base": "base"})
    (images_dir / "run-base" / "extra-files").write_text("# comment\nnavi/navi.py\n")
    with pytest.raises(ImageBuildError, match="run-base needs navi/navi.py"):
        content_tags(read_tree(images_dir), tmp_path)

    (tmp_path / "navi").mkdir()
    (tmp_path / "navi" / "navi.py").write_text("print('v1')\n")
    first = content_tags(read_tree(images_dir), tmp_path)
    (tmp_path / "navi" / "navi.py").write_text("print('v2')\n")
    assert content_tags(read_tree(images_dir), tmp_path)["run-base"] != first["run-base"]


def test_docker_unreachable_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    result = CliRunner().invoke(cli, ["server", "images", "build"])
    assert result.exit_code == 1
    assert "cannot reach the Docker engine" in result.output
    assert "Traceback" not in result.output


# -- what runs inside the images ----------------------------------------------------------------


def _find_wsgi() -> ModuleType:
    path = IMAGES / "run-python" / "lib" / "find_wsgi.py"
    spec = importlib.util.spec_from_file_location("find_wsgi", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("files", "target"),
    [
        ({"wsgi.py": "from flask import Flask\napp = Flask(__name__)\n"}, "wsgi:app"),
        ({"app.py": "def application(environ, start_response): ...\n"}, "app:application"),
        ({"main.py": "app = 1\napplication = 2\n"}, "main:application"),
        ({"wsgi.py": "x = 1\n", "app.py": "app = 1\n"}, "app:app"),
        ({"app.py": "def create_app(): ...\n"}, "app:create_app()"),
        ({"tool.py": "app = 1\n"}, None),
        ({"wsgi.py": "def broken(:\n"}, None),
    ],
)
def test_find_wsgi(tmp_path: Path, files: dict[str, str], target: str | None) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    assert _find_wsgi().find_target(tmp_path) == target


def _procfile_command(app_dir: Path, process_type: str) -> str:
    lib = IMAGES / "run-base" / "lib" / "start-common.sh"
    done = subprocess.run(
        ["bash", "-c", 'source "$0" "$1"; procfile_command "$1"', str(lib), process_type],
        env={"APP_DIR": str(app_dir), "PORT": "5000", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    )
    return done.stdout


def test_procfile_lines_are_found_by_type(tmp_path: Path) -> None:
    (tmp_path / "Procfile").write_text(
        "# processes\nweb: gunicorn app:app --bind 0.0.0.0:$PORT\r\nworker:python3 w.py\n"
        "web-2: other\nclock: sleep 1"
    )
    assert _procfile_command(tmp_path, "web") == "gunicorn app:app --bind 0.0.0.0:$PORT"
    assert _procfile_command(tmp_path, "worker") == "python3 w.py"
    assert _procfile_command(tmp_path, "clock") == "sleep 1"  # no final newline
    assert _procfile_command(tmp_path, "release") == ""


def test_no_procfile_means_no_command(tmp_path: Path) -> None:
    assert _procfile_command(tmp_path, "web") == ""
