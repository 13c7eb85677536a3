"""Fixtures every test may use. Helpers live in tests/helpers.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from slipway.config import Settings

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings with a data directory of the test's own."""
    data = tmp_path / "data"
    data.mkdir()
    return Settings(data_dir=data)
