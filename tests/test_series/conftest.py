"""Fixtures of the series tests: the real Tsho Rolpa Sentinel-1 stack."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tsho_dir() -> Path:
    """The real Tsho Rolpa Sentinel-1 RTC folder (``tif/``); skips when absent."""
    from glacierkit import examples
    from glacierkit.errors import DatasetNotFoundError

    try:
        return examples.path("s1_rtc_tsho_rolpa_series") / "tif"
    except DatasetNotFoundError:
        pytest.skip("example dataset s1_rtc_tsho_rolpa_series not available")
