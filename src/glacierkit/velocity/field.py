"""From pixel offsets on the node grid to georeferenced displacement and velocity.

Conventions (defined here once):

* Pixel offsets ``(dy_px, dx_px)`` follow :mod:`glacierkit.velocity.kernels`: displacement of
  features from the reference to the secondary image, along rows (down) and columns (right).
* Map components are ``dx``/``vx`` towards +x of the CRS (east for the usual projected CRSs)
  and ``dy``/``vy`` towards +y (north). For an affine transform ``(a, b, c, d, e, f)``::

      dx_m = a · dx_px + b · dy_px        dy_m = d · dx_px + e · dy_px

  so on a north-up grid ``dx_m = res · dx_px`` and ``dy_m = −res · dy_px``.
* **Node-centre georeferencing.** The output grid has one cell per node, ``step_px`` image
  pixels wide; the *centre* of cell ``(i, j)`` is the centre of the chip of node ``(i, j)``
  (``MatchResult.rows[i]``, ``MatchResult.cols[j]``). Outputs are therefore pixel-is-area
  rasters whose cell centres are the measurement points; a GIS places every value where it
  was measured.
* Velocity ``v = d / dt``: m/yr uses 365.25 days per year; m/day divides by ``dt_days``.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from affine import Affine

from glacierkit.errors import InputError
from glacierkit.io.grid import Grid

DAYS_PER_YEAR = 365.25
VelocityUnits = Literal["m/yr", "m/day"]


def node_grid_georef(image_grid: Grid, rows: np.ndarray, cols: np.ndarray,
                     step_px: int) -> Grid:
    """Grid of the node raster: cell ``(i, j)`` centred on node ``(rows[i], cols[j])``.

    Args:
        image_grid: Grid of the tracked images.
        rows: Node centre rows ``(n_rows,)`` in pixel-index coordinates (centres at integers).
        cols: Node centre columns ``(n_cols,)``.
        step_px: Node spacing (px); must equal the spacing of ``rows`` and ``cols``.
    """
    if rows.size > 1 and not np.allclose(np.diff(rows), step_px):
        raise InputError("node rows are not spaced by step_px.")
    if cols.size > 1 and not np.allclose(np.diff(cols), step_px):
        raise InputError("node cols are not spaced by step_px.")
    half = step_px / 2.0
    t = (image_grid.transform
         @ Affine.translation(float(cols[0]) + 0.5 - half, float(rows[0]) + 0.5 - half)
         @ Affine.scale(step_px))
    return Grid(crs=image_grid.crs, transform=t, shape=(rows.size, cols.size), pixel_is="area")


def pixel_to_map(dy_px: np.ndarray, dx_px: np.ndarray,
                 image_grid: Grid) -> tuple[np.ndarray, np.ndarray]:
    """Pixel offsets → map displacement ``(dx_m, dy_m)`` (CRS units, +x east, +y north)."""
    t = image_grid.transform
    dx_m = t.a * dx_px + t.b * dy_px
    dy_m = t.d * dx_px + t.e * dy_px
    return dx_m.astype(np.float32), dy_m.astype(np.float32)


def map_to_pixel(dx_m: np.ndarray, dy_m: np.ndarray,
                 image_grid: Grid) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`pixel_to_map`: map displacement → ``(dy_px, dx_px)``."""
    t = image_grid.transform
    det = t.a * t.e - t.b * t.d
    dx_px = (t.e * dx_m - t.b * dy_m) / det
    dy_px = (-t.d * dx_m + t.a * dy_m) / det
    return dy_px, dx_px


def velocity(dx_m: np.ndarray, dy_m: np.ndarray, dt_days: float, *,
             units: VelocityUnits = "m/yr") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Displacement (m) over ``dt_days`` → ``(vx, vy, speed)`` in ``units``.

    Raises:
        InputError: ``dt_days`` ≤ 0 or unknown units.
    """
    if not dt_days > 0:
        raise InputError(f"dt_days must be > 0; got {dt_days}.")
    if units == "m/yr":
        scale = DAYS_PER_YEAR / dt_days
    elif units == "m/day":
        scale = 1.0 / dt_days
    else:
        raise InputError(f"units must be 'm/yr' or 'm/day'; got {units!r}.")
    vx = (dx_m * scale).astype(np.float32)
    vy = (dy_m * scale).astype(np.float32)
    return vx, vy, np.hypot(vx, vy).astype(np.float32)
