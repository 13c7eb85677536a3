"""Settings: sizes people write, read into bytes, and a clear error for anything else."""

from __future__ import annotations

import pytest

from slipway.config import Settings, parse_size


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("512", 512),
        ("1M", 1024**2),
        ("256m", 256 * 1024**2),
        ("2GB", 2 * 1024**3),
        ("1.5G", 1536 * 1024**2),
        ("1GiB", 1024**3),
    ],
)
def test_sizes_read_as_bytes(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["lots", "", "M", "-5M", "nan", "12X"])
def test_anything_else_is_a_clear_error(text: str) -> None:
    with pytest.raises(ValueError, match="not a size"):
        parse_size(text)


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLIPWAY_DATA_DIR", "/srv/slipway")
    monkeypatch.setenv("SLIPWAY_DEFAULT_MEMORY", "256M")
    settings = Settings.from_env()
    assert str(settings.data_dir) == "/srv/slipway"
    assert settings.default_memory == 256 * 1024**2
    assert settings.database == "sqlite:////srv/slipway/slipway.db"
