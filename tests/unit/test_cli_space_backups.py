"""`slipway spaces:restore` and `spaces:backups` against the fake API of test_cli.py (the
streamed download is tested on a real platform, tests/integration/test_space_backups.py)."""

from __future__ import annotations

from pathlib import Path

from tests.unit.test_cli import FakeApi, api, run

__all__ = ["api"]  # the fixture, used by name

SPACE = {"name": "copy", "size": 2 * 1024**3}


def test_restore_uploads_the_file_with_the_new_name_and_size(api: FakeApi, tmp_path: Path) -> None:
    backup = tmp_path / "data.backup.tar.zst"
    backup.write_bytes(b"backup bytes")
    api.on("POST", "/spaces/restore", (201, SPACE))
    result = run("spaces:restore", str(backup), "copy", "--size", "2G")
    assert result.exit_code == 0, result.output
    seen = api.last("POST", "/spaces/restore")
    assert seen.query == {"name": ["copy"], "size": ["2G"]}
    assert seen.body == b"backup bytes"
    assert seen.headers["Content-Type"] == "application/zstd"
    assert "Restored data.backup.tar.zst into the new space copy" in result.output
    assert "spaces:attach copy" in result.output


def test_a_refused_restore_is_the_api_sentence(api: FakeApi, tmp_path: Path) -> None:
    backup = tmp_path / "random.bin"
    backup.write_bytes(b"nope")
    sentence = "This file is not a Slipway space backup (it has no backup header)."
    api.on("POST", "/spaces/restore", (422, {"error": sentence}))
    result = run("spaces:restore", str(backup), "copy")
    assert result.exit_code == 1
    assert f"error: {sentence}" in result.output


def test_backups_lists_the_kept_ones(api: FakeApi) -> None:
    row = {
        "id": 7,
        "space": "data",
        "file": "data-20261128T040000Z.backup.tar.zst",
        "size": 1234,
        "sha256": "ab" * 32,
        "scheduled": True,
        "created_at": "2026-11-28T04:00:00+00:00",
    }
    api.on("GET", "/spaces/data/backups", (200, [row]))
    result = run("spaces:backups", "data")
    assert result.exit_code == 0, result.output
    assert "data-20261128T040000Z.backup.tar.zst" in result.output
    assert "abababababab" in result.output and "ab" * 32 not in result.output
    api.on("GET", "/spaces/data/backups", (200, []))
    assert "No backups of data are kept." in run("spaces:backups", "data").output
