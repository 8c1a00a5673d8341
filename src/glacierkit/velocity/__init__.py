"""Glacier surface velocity by offset tracking (array level; never imports torch).

* :mod:`~glacierkit.velocity.prefilter` — pre-filters (none, Gaussian high-pass, Wallis,
  orientation).
* :mod:`~glacierkit.velocity.kernels` — matching on a node grid: :func:`match`, its
  :class:`MatchResult` and the sign convention of every offset in this package.
* :mod:`~glacierkit.velocity.status` — per-node :class:`Status` codes.
* :mod:`~glacierkit.velocity.filtering` — outlier filters (NDC, MAD, clumps), smoothing,
  gap-fill.
* :mod:`~glacierkit.velocity.corrections` — stable-ground estimators (``fit``/``apply``/``+``).
* :mod:`~glacierkit.velocity.pipeline` — :func:`run_velocity`, files in, products out.
"""

from __future__ import annotations

from glacierkit.velocity.corrections import (
    ConstantShift,
    CorrectionPipeline,
    ElevationRegression,
    Plane,
    Polynomial,
)
from glacierkit.velocity.filtering import FilterConfig, filter_field
from glacierkit.velocity.kernels import MatchResult, match, node_grid
from glacierkit.velocity.pipeline import TrackingParams, run_velocity, track_pair
from glacierkit.velocity.prefilter import (
    apply_prefilter,
    gaussian_highpass,
    no_filter,
    orientation,
    wallis,
)
from glacierkit.velocity.status import Status

__all__ = [
    "ConstantShift",
    "CorrectionPipeline",
    "ElevationRegression",
    "FilterConfig",
    "MatchResult",
    "Plane",
    "Polynomial",
    "Status",
    "TrackingParams",
    "apply_prefilter",
    "filter_field",
    "gaussian_highpass",
    "match",
    "no_filter",
    "node_grid",
    "orientation",
    "run_velocity",
    "track_pair",
    "wallis",
]
