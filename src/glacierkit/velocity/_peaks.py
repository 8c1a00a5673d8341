"""Integer peak, signal-to-noise ratio and peak ratio of batched correlation surfaces."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Peaks:
    """Integer peak of each surface and its quality.

    Attributes:
        row: Peak row index in the surface, ``(n,)`` int.
        col: Peak column index in the surface, ``(n,)`` int.
        value: Peak score, ``(n,)`` float; NaN where the surface has no finite value.
        snr: Peak / mean |score| over the surface, ``(n,)``.
        ratio: Peak / second peak (outside the exclusion zone), ``(n,)``; ``inf`` when the
            second peak is ≤ 0, NaN when the surface has no value outside the zone.
        on_border: The peak lies on the outermost row or column of the surface, ``(n,)``.
    """

    row: np.ndarray
    col: np.ndarray
    value: np.ndarray
    snr: np.ndarray
    ratio: np.ndarray
    on_border: np.ndarray


def find_peaks(score: np.ndarray, *, exclusion_px: int) -> Peaks:
    """Locate the maximum of each surface and measure how distinct it is.

    Args:
        score: Surfaces, ``(n, S, S)``; NaN entries are ignored.
        exclusion_px: Half-width (Chebyshev distance, px) of the zone around the first peak
            that is skipped when looking for the second peak.

    Returns:
        The peaks; all fields have shape ``(n,)``.
    """
    n, size, _ = score.shape
    finite = np.isfinite(score)
    if finite.all():  # the common case: skip the masking passes
        filled, count = score, np.full(n, size * size)
        mean_abs = np.abs(score).sum(axis=(1, 2), dtype=np.float64) / (size * size)
    else:
        filled = np.where(finite, score, -np.inf)
        count = finite.sum(axis=(1, 2))
        # float64 sums as above, so that a node's SNR does not depend on its batch.
        mean_abs = (np.abs(np.where(finite, score, 0.0)).sum(axis=(1, 2), dtype=np.float64)
                    / np.maximum(count, 1))
    flat = filled.reshape(n, -1).argmax(axis=1)
    row, col = np.divmod(flat, size)
    value = filled.reshape(n, -1)[np.arange(n), flat].astype(np.float64)
    value[~np.isfinite(value)] = np.nan
    snr = _safe_ratio(value, np.where(count > 0, mean_abs, np.nan))
    ratio = _safe_ratio(value, _second_peak(filled, row, col, exclusion_px))
    on_border = (row == 0) | (col == 0) | (row == size - 1) | (col == size - 1)
    return Peaks(row, col, value, snr, ratio, on_border & (size > 1))


def _safe_ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den``: ``inf`` where ``den ≤ 0 < num``, NaN where undefined."""
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    both = np.isfinite(num) & np.isfinite(den)
    out = np.divide(num, den, out=np.full(num.shape, np.nan), where=both & (den > 0))
    return np.where(both & (den <= 0) & (num > 0), np.inf, out)


def _max3x3(filled: np.ndarray) -> np.ndarray:
    """Maximum over each 3 × 3 neighbourhood of a stack ``(n, S, S)`` (``-inf`` outside)."""
    n, size_r, size_c = filled.shape
    pad = np.full((n, size_r + 2, size_c + 2), -np.inf, dtype=filled.dtype)
    pad[:, 1:-1, 1:-1] = filled
    rows = np.maximum(np.maximum(pad[:, :, :-2], pad[:, :, 1:-1]), pad[:, :, 2:])
    return np.maximum(np.maximum(rows[:, :-2], rows[:, 1:-1]), rows[:, 2:])


def _second_peak(filled: np.ndarray, row: np.ndarray, col: np.ndarray,
                 exclusion_px: int) -> np.ndarray:
    """Highest local maximum outside the exclusion zone (else the highest value there).

    Returns:
        ``(n,)`` float64; NaN where no finite value lies outside the zone.
    """
    size_r, size_c = filled.shape[1:]
    local_max = filled == _max3x3(filled)
    far_r = np.abs(np.arange(size_r)[None, :] - row[:, None]) > exclusion_px
    far_c = np.abs(np.arange(size_c)[None, :] - col[:, None]) > exclusion_px
    outside = far_r[:, :, None] | far_c[:, None, :]
    outside_vals = np.where(outside, filled, -np.inf)  # filled is -inf where not finite
    fallback = outside_vals.max(axis=(1, 2))
    candidates = np.where(local_max, outside_vals, -np.inf).max(axis=(1, 2))
    second = np.where(np.isfinite(candidates), candidates, fallback).astype(np.float64)
    return np.where(np.isfinite(second), second, np.nan)
