"""Coarse-to-fine bookkeeping: sparse coarse nodes and the prediction passed to finer levels.

A coarse level matches only every ``stride``-th node of the fine node grid (its chips are large,
so its field is smooth). Its offsets are cleaned by a NaN-aware 3 × 3 median, gaps are filled
from the nearest valid node, and the result is interpolated bilinearly (in node-index space) to
every fine node, where it becomes the centre of the next, narrower search.
"""

from __future__ import annotations

import numpy as np
import scipy.ndimage as ndi


def coarse_indices(n: int, stride: int) -> np.ndarray:
    """Indices ``0, stride, 2 stride, ...`` along one node axis, always including ``n - 1``."""
    idx = np.arange(0, n, max(1, stride))
    if idx[-1] != n - 1:
        idx = np.append(idx, n - 1)
    return idx


def nan_median3(field: np.ndarray) -> np.ndarray:
    """NaN-aware 3 × 3 median of a 2-D field (NaN where the whole neighbourhood is NaN).

    Args:
        field: ``(rows, cols)`` float.

    Returns:
        ``(rows, cols)`` float64.
    """
    padded = np.pad(field.astype(np.float64), 1, constant_values=np.nan)
    rows, cols = field.shape
    stack = np.stack([padded[i:i + rows, j:j + cols] for i in range(3) for j in range(3)])
    count = np.isfinite(stack).sum(axis=0)
    ordered = np.sort(stack, axis=0)  # NaN sort last
    lo = np.maximum((count - 1) // 2, 0)
    hi = np.maximum(count // 2, 0)
    med = 0.5 * (np.take_along_axis(ordered, lo[None], 0)[0]
                 + np.take_along_axis(ordered, hi[None], 0)[0])
    return np.where(count > 0, med, np.nan)


def fill_nearest(field: np.ndarray) -> np.ndarray:
    """Fill NaN from the nearest finite value (zeros when there is none)."""
    bad = ~np.isfinite(field)
    if not bad.any():
        return field
    if bad.all():
        return np.zeros_like(field)
    _, (ir, ic) = ndi.distance_transform_edt(bad, return_indices=True)
    return field[ir, ic]


def clean(field: np.ndarray) -> np.ndarray:
    """Median-smooth then gap-fill a coarse offset component (px)."""
    return fill_nearest(nan_median3(field))


def to_fine(field: np.ndarray, row_idx: np.ndarray, col_idx: np.ndarray,
            shape: tuple[int, int]) -> np.ndarray:
    """Bilinear interpolation of a coarse node field onto the full node grid.

    Args:
        field: ``(len(row_idx), len(col_idx))`` values at the coarse nodes, no NaN.
        row_idx: Fine node row index of each coarse row (increasing).
        col_idx: Fine node column index of each coarse column (increasing).
        shape: Fine node grid shape.

    Returns:
        ``shape`` float64.
    """
    fr = np.interp(np.arange(shape[0]), row_idx, np.arange(row_idx.size))
    fc = np.interp(np.arange(shape[1]), col_idx, np.arange(col_idx.size))
    rr, cc = np.meshgrid(fr, fc, indexing="ij")
    return ndi.map_coordinates(field, [rr, cc], order=1, mode="nearest")
