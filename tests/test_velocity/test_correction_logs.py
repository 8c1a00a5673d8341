"""Correction fits log one readable line (terms with standard errors and units), not a dict."""

from __future__ import annotations

import logging
import re

import numpy as np

from glacierkit.velocity.corrections import ConstantShift, Plane


def test_fit_log_line_is_readable(caplog):
    rng = np.random.default_rng(0)
    dx = 0.3 + 0.05 * rng.standard_normal((40, 50))
    dy = -0.2 + 0.05 * rng.standard_normal((40, 50))
    stable = np.zeros((40, 50), dtype=bool)
    stable[:, :20] = True
    with caplog.at_level(logging.DEBUG, logger="glacierkit.velocity.corrections"):
        (ConstantShift() + Plane()).fit(dx, dy, stable, units="px")
    info = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert len(info) == 2
    shift = info[0]
    assert "ConstantShift fitted on 800 stable nodes" in shift
    assert re.search(r"dx: shift 0\.(29|30)\d* ± 0\.00\d+ px", shift), shift
    assert re.search(r"dy: shift -0\.(19|20)\d* ± 0\.00\d+ px", shift), shift
    assert " px" in shift and "residual NMAD" in shift
    assert all("{" not in m and "'value'" not in m for m in info)
    # the full parameters are still there, at DEBUG level
    debug = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    assert any("'stderr'" in m for m in debug)
