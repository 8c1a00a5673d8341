"""The torch-free modules import with torch blocked."""

from __future__ import annotations

CODE = """
import glacierkit.metrics, glacierkit.mapping.baseline, glacierkit.mapping
import glacierkit.io, glacierkit.tiling, glacierkit.velocity
import glacierkit.viz.reliability
import numpy as np
from glacierkit.metrics import TemperatureScaling, evaluate_outlines
TemperatureScaling(2.0).apply(np.zeros((1, 2)))
"""


def test_torch_free_modules_import_without_torch(run_without_torch):
    run_without_torch(CODE)
