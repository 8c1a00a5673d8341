"""The series package imports and runs with torch blocked."""

from __future__ import annotations

CODE = """
import numpy as np
import glacierkit.series, glacierkit.series.select, glacierkit.series.baseline
from glacierkit.series.baseline import sar_ratio
d = np.array(["2021-01-10", "2021-07-10"], dtype="datetime64[s]")
r = sar_ratio(np.array([[[0.0]], [[-5.0]]], dtype=np.float32), d)
assert r.classes.tolist() == [[1]]
"""


def test_series_imports_without_torch(run_without_torch):
    run_without_torch(CODE)
