"""Correction estimators for offset and velocity fields (``fit`` / ``apply`` / ``+``).

* :mod:`~glacierkit.velocity.corrections.base` — :class:`Correction`, the
  :class:`CorrectionPipeline` built by ``a + b``, the robust solver and stable-ground
  statistics.
* :mod:`~glacierkit.velocity.corrections.stable` — :class:`ConstantShift`,
  :class:`Polynomial`, :class:`Plane` ("global deformation").
* :mod:`~glacierkit.velocity.corrections.dem` — :class:`ElevationRegression`
  ("topography-related offset") and :func:`slope_aspect`.
"""

from __future__ import annotations

from glacierkit.velocity.corrections.base import (
    Correction,
    CorrectionPipeline,
    Covariates,
    LinearCorrection,
    RobustFit,
    grid_coordinates,
    robust_lstsq,
    stable_stats,
)
from glacierkit.velocity.corrections.dem import ElevationRegression, slope_aspect
from glacierkit.velocity.corrections.stable import ConstantShift, Plane, Polynomial

__all__ = [
    "ConstantShift",
    "Correction",
    "CorrectionPipeline",
    "Covariates",
    "ElevationRegression",
    "LinearCorrection",
    "Plane",
    "Polynomial",
    "RobustFit",
    "grid_coordinates",
    "robust_lstsq",
    "slope_aspect",
    "stable_stats",
]
