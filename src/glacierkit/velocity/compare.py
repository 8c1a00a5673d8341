"""Comparison with other tools' velocity products.

Readers that apply the other tool's conventions, sampling of a glacierkit node grid at their
nodes, and agreement statistics.

**CARST offset grids** (:func:`read_carst_offsets`). CARST's ``pixeltrack`` runs ROI_PAC's
``ampcor`` and converts its offsets with ``getxyzs.py`` into ``*_eastxyz`` / ``*_northxyz``
text files, later gridded (GMT ``xyz2grd``) and exported as GeoTIFF (nodata −32768). What the
values are was established from CARST's code and checked against an independent field
(``benchmarks/compare_carst_yahtse.py``):

* **units: metres of displacement over the pair**, not velocity. ``getxyzs.py`` multiplies the
  ampcor pixel offsets by the pixel size (``dx * input_res``); CARST's own documentation of
  these files says "E-W and N-S OFFSETS in METERS (NOT velocities)". On the Yahtse pair the
  robust slope of CARST's values against glacierkit's displacement in metres is ≈ 1 in
  magnitude (it would be 1/15 for pixels, 1/16 for m/day and 22.8 for m/yr over 16 days).
* **what is subtracted:** each value is ``affine prediction − observed position``: an affine
  function of the node position (6 parameters, least squares with one 1.5 σ rejection pass)
  fitted to *all* nodes with SNR > 0, glacier included, is removed. So the values are not
  referenced to stable ground; a plane remains on rock.
* **signs:** ampcor offsets are "secondary − reference position" in (sample → east,
  line → south) order, and the file stores the *negative* residual. The east file therefore
  holds ``−(east displacement − affine)`` and the north file ``north displacement − affine``
  (line offsets point south, so the double negation makes it north-positive).
* **node positions:** ampcor reports a 32 px window by the 1-based pixel just before its
  centre, i.e. the chip centre is at ``ul_x + res · x_ind``, ``ul_y − res · y_ind``.
  ``getxyzs.py`` places node ``(x_ind, y_ind)`` at column ``ceil(x_ind / step)`` but at row
  ``floor(y_ind / step) − 1`` of its grid, so every node is written one node spacing
  (``step · res``, 120 m here) too far **north**; ``registration="code"`` moves the node
  centres back by one spacing to the south, ``"file"`` keeps the file's georeferencing.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from scipy import stats

from glacierkit.errors import InputError
from glacierkit.io import Grid, open_raster
from glacierkit.velocity.field import DAYS_PER_YEAR
from glacierkit.velocity.quality import NMAD_FACTOR

#: Nodata value of CARST's exported GeoTIFF grids.
CARST_NODATA = -32768.0

Registration = Literal["code", "file"]


@dataclass(frozen=True)
class ExternalField:
    """Another tool's velocity field on its own node grid, in glacierkit's conventions.

    Attributes:
        vx: East velocity ``(rows, cols)`` float64 in ``units``; NaN = nodata.
        vy: North velocity, same shape.
        x: Node-centre eastings ``(rows, cols)`` (m) after ``registration``.
        y: Node-centre northings ``(rows, cols)`` (m) after ``registration``.
        grid: The grid as georeferenced in the file.
        units: ``"m/yr"`` or ``"m/day"``.
        notes: The conventions applied, one sentence each.
    """

    vx: np.ndarray
    vy: np.ndarray
    x: np.ndarray
    y: np.ndarray
    grid: Grid
    units: str
    notes: list[str] = field(default_factory=list)

    @property
    def speed(self) -> np.ndarray:
        """``hypot(vx, vy)`` in ``units``."""
        return np.hypot(self.vx, self.vy)


def _per_unit(dt_days: float, units: str) -> float:
    """Factor from metres over ``dt_days`` to ``units``."""
    if not (isinstance(dt_days, (int, float)) and math.isfinite(dt_days) and dt_days > 0):
        raise InputError(f"dt_days must be a positive number of days; got {dt_days!r}.")
    if units == "m/yr":
        return DAYS_PER_YEAR / dt_days
    if units == "m/day":
        return 1.0 / dt_days
    raise InputError(f"units must be 'm/yr' or 'm/day'; got {units!r}.")


def read_carst_offsets(east: str | os.PathLike[str], north: str | os.PathLike[str], *,
                       dt_days: float, units: str = "m/yr",
                       registration: Registration = "code") -> ExternalField:
    """Read a CARST ``*_eastxyz.tif`` / ``*_northxyz.tif`` pair as a velocity field.

    See the module docstring for the conventions (metres over the pair, east sign flipped,
    affine residual, one-node northward shift of the node positions).

    Args:
        east: CARST east-offset GeoTIFF (nodata −32768).
        north: CARST north-offset GeoTIFF on the same grid.
        dt_days: Time separation of the pair (days).
        units: ``"m/yr"`` (365.25 days per year, as glacierkit) or ``"m/day"``.
        registration: ``"code"`` corrects the node positions written by ``getxyzs.py`` (one
            node spacing south); ``"file"`` uses the file's georeferencing as is.

    Returns:
        The field (NaN where either file has nodata).

    Raises:
        InputError: Grids differ, bad ``dt_days``/``units``/``registration``.
    """
    if registration not in ("code", "file"):
        raise InputError(f"registration must be 'code' or 'file'; got {registration!r}.")
    scale = _per_unit(dt_days, units)
    e_r = open_raster(Path(east), bands=[1])
    n_r = open_raster(Path(north), bands=[1])
    if not e_r.grid.almost_equals(n_r.grid):
        raise InputError(f"CARST east and north grids differ: {e_r.grid.describe()} vs "
                         f"{n_r.grid.describe()}; pass the matching *_eastxyz / *_northxyz "
                         "pair.")
    e, n = e_r.data[0].astype(np.float64), n_r.data[0].astype(np.float64)
    for arr, r in ((e, e_r), (n, n_r)):
        # open_raster maps the declared nodata to NaN; guard files that declare none.
        if r.nodata is None:
            arr[arr == CARST_NODATA] = np.nan
    bad = ~(np.isfinite(e) & np.isfinite(n))
    vx = np.where(bad, np.nan, -e * scale)
    vy = np.where(bad, np.nan, n * scale)
    grid = e_r.grid
    rows, cols = np.meshgrid(np.arange(grid.height), np.arange(grid.width), indexing="ij")
    x, y = grid.xy(rows, cols)
    notes = ["values are metres of displacement over the pair (getxyzs.py: offset_px × "
             "pixel size), converted to " + units + f" with dt = {dt_days:.6g} days",
             "east file holds −(east displacement − affine fit); north file holds north "
             "displacement − affine fit; the affine fit (all nodes with SNR > 0) is not "
             "stable-ground referenced"]
    if registration == "code":
        y = y + grid.transform.e  # transform.e < 0: one node spacing to the south
        notes.append(f"node centres moved {abs(grid.transform.e):g} m south (getxyzs.py "
                     "writes row floor(y_ind/step) − 1 for column ceil(x_ind/step))")
    else:
        notes.append("node centres as georeferenced in the file")
    return ExternalField(vx, vy, x, y, grid, units, notes)


def sample_nodes(values: np.ndarray, grid: Grid, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Bilinear sample of a node-grid field at map points; NaN unless all 4 neighbours valid.

    Args:
        values: ``(rows, cols)`` field on ``grid`` (cell centres = node centres), NaN invalid.
        grid: Its grid.
        x: Eastings of the points (any shape).
        y: Northings, same shape.

    Returns:
        float64 array shaped like ``x``; NaN outside the node centres' hull or where any of
        the four surrounding nodes is NaN (a point midway between four nodes gets their mean).
    """
    values = np.asarray(values, dtype=np.float64)
    if values.shape != grid.shape:
        raise InputError(f"values shape {values.shape} does not match the grid {grid.shape}.")
    r, c = grid.rowcol(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64))
    r, c = r - 0.5, c - 0.5  # cell-centre index coordinates
    inside = (r >= 0) & (c >= 0) & (r <= values.shape[0] - 1) & (c <= values.shape[1] - 1)
    r0 = np.clip(np.floor(r), 0, max(values.shape[0] - 2, 0)).astype(np.intp)
    c0 = np.clip(np.floor(c), 0, max(values.shape[1] - 2, 0)).astype(np.intp)
    fr, fc = r - r0, c - c0
    r1 = np.minimum(r0 + 1, values.shape[0] - 1)
    c1 = np.minimum(c0 + 1, values.shape[1] - 1)
    out = ((1 - fr) * (1 - fc) * values[r0, c0] + (1 - fr) * fc * values[r0, c1]
           + fr * (1 - fc) * values[r1, c0] + fr * fc * values[r1, c1])
    return np.where(inside, out, np.nan)


def _corr(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Pearson and Spearman correlation (NaN with fewer than 3 points or no spread)."""
    if a.size < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan"), float("nan")
    return float(np.corrcoef(a, b)[0, 1]), float(stats.spearmanr(a, b)[0])


def agreement(ours: tuple[np.ndarray, np.ndarray], theirs: tuple[np.ndarray, np.ndarray],
              mask: np.ndarray | None = None) -> dict[str, Any]:
    """Agreement of two velocity fields at the same points.

    Args:
        ours: ``(vx, vy)`` arrays (same shape).
        theirs: ``(vx, vy)`` at the same points, same units.
        mask: Points to use (default all); points with any NaN are skipped.

    Returns:
        ``{"n", "speed"|"vx"|"vy": {"pearson", "spearman", "median_diff", "nmad_diff"}}``;
        differences are ours − theirs, in the fields' units; NMAD =
        1.4826 · median(|d − median(d)|).
    """
    ovx, ovy = (np.asarray(a, dtype=np.float64) for a in ours)
    tvx, tvy = (np.asarray(a, dtype=np.float64) for a in theirs)
    sel = np.isfinite(ovx) & np.isfinite(ovy) & np.isfinite(tvx) & np.isfinite(tvy)
    if mask is not None:
        sel &= np.asarray(mask, dtype=bool)
    out: dict[str, Any] = {"n": int(sel.sum())}
    comps = {"speed": (np.hypot(ovx, ovy)[sel], np.hypot(tvx, tvy)[sel]),
             "vx": (ovx[sel], tvx[sel]), "vy": (ovy[sel], tvy[sel])}
    for name, (a, b) in comps.items():
        pearson, spearman = _corr(a, b)
        d = a - b
        med = float(np.median(d)) if d.size else float("nan")
        nmad = float(NMAD_FACTOR * np.median(np.abs(d - med))) if d.size else float("nan")
        out[name] = {"pearson": pearson, "spearman": spearman, "median_diff": med,
                     "nmad_diff": nmad}
    return out


def local_outliers(vx: np.ndarray, vy: np.ndarray, *, tol: float, floor: float) -> np.ndarray:
    """Nodes whose vector differs from the median of their valid 3 × 3 neighbours.

    A node is an outlier when ``|v − median_neighbours(v)| > max(tol · |median|, floor)``
    (vector difference), or when it has fewer than 3 valid neighbours.

    Args:
        vx: East component ``(rows, cols)``, NaN invalid.
        vy: North component.
        tol: Relative tolerance (fraction of the neighbours' median speed).
        floor: Absolute tolerance (units of the field).

    Returns:
        Boolean ``(rows, cols)``; False at NaN nodes.
    """
    def neighbour_median(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        pad = np.pad(a, 1, constant_values=np.nan)
        h, w = a.shape
        stack = np.stack([pad[i:i + h, j:j + w] for i in range(3) for j in range(3)
                          if (i, j) != (1, 1)])
        count = np.isfinite(stack).sum(axis=0)
        ordered = np.sort(stack, axis=0)  # NaN last
        lo = np.maximum((count - 1) // 2, 0)
        hi = np.maximum(count // 2, 0)
        med = 0.5 * (np.take_along_axis(ordered, lo[None], 0)[0]
                     + np.take_along_axis(ordered, hi[None], 0)[0])
        return med, count

    mx, count = neighbour_median(np.asarray(vx, dtype=np.float64))
    my, _ = neighbour_median(np.asarray(vy, dtype=np.float64))
    valid = np.isfinite(vx) & np.isfinite(vy)
    with np.errstate(invalid="ignore"):
        dev = np.hypot(vx - mx, vy - my)
        limit = np.maximum(tol * np.hypot(mx, my), floor)
        bad = (count < 3) | ~(dev <= limit)
    return valid & bad


def robust_slope(x: np.ndarray, y: np.ndarray) -> float:
    """Theil–Sen slope of ``y`` on ``x`` (on at most 2000 evenly spaced points)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if x.size < 3:
        return float("nan")
    if x.size > 2000:
        idx = np.linspace(0, x.size - 1, 2000).astype(np.intp)
        x, y = x[idx], y[idx]
    return float(stats.theilslopes(y, x)[0])


__all__ = ["CARST_NODATA", "ExternalField", "agreement", "local_outliers", "read_carst_offsets",
           "robust_slope", "sample_nodes"]
