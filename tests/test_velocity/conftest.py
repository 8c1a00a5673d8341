"""Fixtures for offset-tracking tests: crops of the real Yahtse Landsat-8 pan image."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from velocity_synth import REFERENCE_TIF, SECONDARY_TIF, read_band


@pytest.fixture(scope="session")
def yahtse_reference(yahtse: Path) -> np.ndarray:
    """Full reference scene (2016-07-18), float64 DN, ``(1087, 1698)``."""
    return read_band(yahtse / REFERENCE_TIF)


@pytest.fixture(scope="session")
def yahtse_secondary(yahtse: Path) -> np.ndarray:
    """Full secondary scene (2016-08-03), float64 DN."""
    return read_band(yahtse / SECONDARY_TIF)


@pytest.fixture(scope="session")
def textured(yahtse_reference: np.ndarray):
    """``crop(rows, cols, margin)``: a textured (rock and snow) area with a border margin."""

    def crop(rows: int = 256, cols: int = 256, margin: int = 64, *, origin=(300, 300)):
        r0, c0 = origin
        return yahtse_reference[r0 - margin:r0 + rows + margin, c0 - margin:c0 + cols + margin]

    return crop
