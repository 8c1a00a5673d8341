"""glacierkit.massbalance (and its CLI) import and run with torch blocked."""

from __future__ import annotations

CODE = """
import glacierkit.massbalance
import glacierkit.massbalance.study
import glacierkit.cli.massbalance
from glacierkit.massbalance import Hypsometry, fit_linear
fit_linear([0, 1, 2, 3], [1, 0, -1, -2.5])
Hypsometry.uniform(2000, 3000, 1.0).aar_from_ela(2500)
"""


def test_massbalance_imports_without_torch(run_without_torch):
    run_without_torch(CODE)
