"""Uploaded archives: every malicious entry is refused and nothing lands outside the target."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from slipway.config import Settings
from slipway.services import archives
from slipway.services.artifacts import FilesystemArtifacts
from slipway.services.errors import Invalid, TooLarge
from slipway.services.stacks import build_image, detect_stack, run_image


def _file(name: str, data: bytes = b"x") -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def _entry(name: str, kind: bytes, linkname: str = "") -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return info, b""


def make_tar(path: Path, entries: list[tuple[tarfile.TarInfo, bytes]]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return path


@pytest.fixture
def target(tmp_path: Path) -> Path:
    return tmp_path / "out" / "target"


def _nothing_outside(tmp_path: Path) -> bool:
    outside = tmp_path / "out"
    return all(
        p == outside / "target" or outside / "target" in p.parents for p in outside.rglob("*")
    )


MALICIOUS = [
    ([_file("/etc/evil")], "absolute path"),
    ([_file("a/../../evil")], "leaves its directory"),
    ([_file("../evil")], "leaves its directory"),
    ([_entry("link", tarfile.SYMTYPE, "/etc/passwd")], "link pointing outside"),
    ([_entry("link", tarfile.SYMTYPE, "../../etc")], "link pointing outside"),
    ([_entry("d/link", tarfile.SYMTYPE, "../..")], "link pointing outside"),
    ([_entry("hard", tarfile.LNKTYPE, "../outside")], "link pointing outside"),
    ([_entry("hard", tarfile.LNKTYPE, "/etc/shadow")], "link pointing outside"),
    ([_entry("dev", tarfile.CHRTYPE)], "device file"),
    ([_entry("blk", tarfile.BLKTYPE)], "device file"),
    ([_entry("pipe", tarfile.FIFOTYPE)], "fifo"),
]


@pytest.mark.parametrize(("entries", "words"), MALICIOUS)
def test_malicious_entries_are_refused(
    tmp_path: Path, target: Path, entries: list[tuple[tarfile.TarInfo, bytes]], words: str
) -> None:
    tar = make_tar(tmp_path / "a.tar.gz", [_file("index.html", b"hi"), *entries])
    with pytest.raises(Invalid, match=words):
        archives.extract_archive(tar, target)
    assert not target.exists()
    assert _nothing_outside(tmp_path)
    assert not (tmp_path / "evil").exists()


def test_link_through_symlinked_directory_is_refused(tmp_path: Path, target: Path) -> None:
    entries = [_entry("up", tarfile.SYMTYPE, ".."), _file("up/escaped")]
    tar = make_tar(tmp_path / "a.tar.gz", entries)
    with pytest.raises(Invalid):
        archives.extract_archive(tar, target)
    assert not (tmp_path / "out" / "escaped").exists()


def test_not_gzip_is_refused(tmp_path: Path, target: Path) -> None:
    path = tmp_path / "a.tar.gz"
    with tarfile.open(path, "w") as tar:  # an uncompressed tar
        info, data = _file("index.html")
        tar.addfile(info, io.BytesIO(data))
    with pytest.raises(Invalid, match="not a valid .tar.gz"):
        archives.extract_archive(path, target)


def test_corrupt_and_truncated_archives_are_refused(tmp_path: Path, target: Path) -> None:
    good = make_tar(tmp_path / "good.tar.gz", [_file("f", b"y" * 100_000)]).read_bytes()
    for name, data in [("trunc", good[: len(good) // 2]), ("junk", good[:10] + b"\0" * 200)]:
        path = tmp_path / f"{name}.tar.gz"
        path.write_bytes(data)
        with pytest.raises(Invalid, match="not a valid .tar.gz"):
            archives.inspect_archive(path)


def test_empty_archive_is_refused(tmp_path: Path, target: Path) -> None:
    empty = make_tar(tmp_path / "e.tar.gz", [])
    only_dirs = make_tar(tmp_path / "d.tar.gz", [_entry("src", tarfile.DIRTYPE)])
    for path in (empty, only_dirs):
        with pytest.raises(Invalid, match="empty"):
            archives.extract_archive(path, target)


def test_unpacked_size_is_capped(tmp_path: Path, target: Path) -> None:
    tar = make_tar(tmp_path / "big.tar.gz", [_file("zeros", b"\0" * 50_000)])
    with pytest.raises(TooLarge, match="unpacks to more than"):
        archives.extract_archive(tar, target, max_unpacked=10_000)
    assert not target.exists()


def test_good_archive_extracts_with_links_inside(tmp_path: Path, target: Path) -> None:
    entries = [
        _file("index.html", b"<h1>hi</h1>"),
        _file("lib/a.js", b"a"),
        _entry("lib/current", tarfile.SYMTYPE, "a.js"),
        _entry("copy.js", tarfile.LNKTYPE, "lib/a.js"),
    ]
    info = archives.extract_archive(make_tar(tmp_path / "a.tar.gz", entries), target)
    assert info.files == 2 and info.prefix is None
    assert (target / "index.html").read_bytes() == b"<h1>hi</h1>"
    assert (target / "lib" / "current").resolve() == (target / "lib" / "a.js").resolve()
    assert (target / "copy.js").read_bytes() == b"a"


def test_single_top_directory_is_unwrapped(tmp_path: Path, target: Path) -> None:
    entries = [
        _entry("repo-abc123", tarfile.DIRTYPE),
        _file("repo-abc123/package.json", b"{}"),
        _file("repo-abc123/src/app.js", b"js"),
        _entry("repo-abc123/link.js", tarfile.LNKTYPE, "repo-abc123/src/app.js"),
    ]
    info = archives.extract_archive(make_tar(tmp_path / "gh.tar.gz", entries), target)
    assert info.prefix == "repo-abc123"
    assert sorted(p.relative_to(target).as_posix() for p in target.rglob("*")) == [
        "link.js",
        "package.json",
        "src",
        "src/app.js",
    ]
    assert (target / "link.js").read_bytes() == b"js"


def test_a_single_file_at_the_top_is_not_unwrapped(tmp_path: Path, target: Path) -> None:
    info = archives.extract_archive(make_tar(tmp_path / "a.tar.gz", [_file("a.txt")]), target)
    assert info.prefix is None and (target / "a.txt").is_file()


def test_copy_limited_stops_past_the_limit(tmp_path: Path) -> None:
    out = io.BytesIO()
    assert archives.copy_limited(io.BytesIO(b"a" * 100), out, 100) == 100
    with pytest.raises(TooLarge, match="larger than the limit of 1 KB"):
        archives.copy_limited(io.BytesIO(b"a" * 5000), io.BytesIO(), 1024)


def test_artifact_store_never_keeps_a_partial_upload(tmp_path: Path) -> None:
    store = FilesystemArtifacts(tmp_path / "artifacts")
    with pytest.raises(TooLarge):
        store.save_source("hello", io.BytesIO(b"a" * 5000), 1000)
    assert list((tmp_path / "artifacts" / "sources" / "hello").iterdir()) == []
    saved = store.save_source("hello", io.BytesIO(b"abc"), 1000)
    assert saved.read_bytes() == b"abc" and saved.parent.name == "hello"
    store.delete(tmp_path / "elsewhere")  # outside the store: ignored, no error
    store.delete(saved)
    assert not saved.exists()
    store.new_slug_path("hello").write_bytes(b"slug")
    store.delete_app("hello")
    assert not (tmp_path / "artifacts" / "slugs" / "hello").exists()


def test_procfile_and_app_json(tmp_path: Path) -> None:
    (tmp_path / "Procfile").write_text("# comment\nweb: node server.js\n\nworker:  node w.js\n")
    (tmp_path / "app.json").write_text('{"healthchecks": {"path": "/health"}}')
    assert archives.read_procfile(tmp_path) == {"web": "node server.js", "worker": "node w.js"}
    assert archives.read_app_json(tmp_path)["healthchecks"] == {"path": "/health"}
    (tmp_path / "Procfile").write_text("just a command\n")
    with pytest.raises(Invalid, match="Procfile line 1"):
        archives.read_procfile(tmp_path)
    (tmp_path / "app.json").write_text("[1]")
    with pytest.raises(Invalid, match="JSON object"):
        archives.read_app_json(tmp_path)
    assert archives.read_procfile(tmp_path / "missing") == {}


def test_stack_detection(tmp_path: Path, settings: Settings) -> None:
    (tmp_path / "index.html").write_text("<h1>hi</h1>")
    assert detect_stack(tmp_path) == "static"
    (tmp_path / "requirements.txt").write_text("flask\n")
    assert detect_stack(tmp_path) == "python"
    (tmp_path / "package.json").write_text("{}")
    assert detect_stack(tmp_path) == "node"
    assert build_image(settings, "node") == "slipway/build-node:latest"
    assert run_image(settings, "static") == "slipway/run-static:latest"
