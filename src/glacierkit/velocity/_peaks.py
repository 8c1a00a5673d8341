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
    filled = np.where(finite, score, -np.inf)
    flat = filled.reshape(n, -1).argmax(axis=1)
    row, col = np.divmod(flat, size)
    value = filled.reshape(n, -1)[np.arange(n), flat]
    has = np.isfinite(value)
    value = np.where(has, value, np.nan)
    count = finite.sum(axis=(1, 2))
    mean_abs = np.where(finite, np.abs(score), 0.0).sum(axis=(1, 2)) / np.maximum(count, 1)
    snr = _safe_ratio(value, mean_abs)
    ratio = _peak_ratio(filled, row, col, value, exclusion_px)
    on_border = (row == 0) | (col == 0) | (row == size - 1) | (col == size - 1)
    return Peaks(row, col, value, snr, ratio, on_border & (size > 1))


def _safe_ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den``: ``inf`` where ``den ≤ 0 < num``, NaN where undefined."""
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    ok = np.isfinite(num) & np.isfinite(den) & (den > 0)
    out = np.divide(num, den, out=np.full(num.shape, np.nan), where=ok)
    return np.where(np.isfinite(num) & np.isfinite(den) & (den <= 0) & (num > 0), np.inf, out)


def _local_maxima(filled: np.ndarray) -> np.ndarray:
    """True where a value is ≥ its 8 neighbours (surfaces padded with ``-inf``)."""
    padded = np.pad(filled, ((0, 0), (1, 1), (1, 1)), constant_values=-np.inf)
    size_r, size_c = filled.shape[1:]
    centre = padded[:, 1:-1, 1:-1]
    is_max = np.isfinite(centre)
    for dr in (-1, 0, 1):
        for dc in (-1, 0, 1):
            if dr or dc:
                is_max &= centre >= padded[:, 1 + dr:1 + dr + size_r, 1 + dc:1 + dc + size_c]
    return is_max


def _peak_ratio(filled: np.ndarray, row: np.ndarray, col: np.ndarray, value: np.ndarray,
                exclusion_px: int) -> np.ndarray:
    """First peak / highest local maximum outside the exclusion zone (see :class:`Peaks`)."""
    size_r, size_c = filled.shape[1:]
    rr = np.arange(size_r)[None, :, None]
    cc = np.arange(size_c)[None, None, :]
    outside = np.maximum(np.abs(rr - row[:, None, None]),
                         np.abs(cc - col[:, None, None])) > exclusion_px
    outside = outside & np.isfinite(filled)
    candidates = np.where(outside & _local_maxima(filled), filled, -np.inf).max(axis=(1, 2))
    fallback = np.where(outside, filled, -np.inf).max(axis=(1, 2))
    second = np.where(np.isfinite(candidates), candidates, fallback)
    second = np.where(np.isfinite(second), second, np.nan)
    return _safe_ratio(value, second)
