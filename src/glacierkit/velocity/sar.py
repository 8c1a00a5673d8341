"""SAR amplitude preparation for offset tracking (``kind="sar"``).

Speckle makes raw SAR amplitude a poor matching signal: its multiplicative noise has a
heavy-tailed distribution and bright targets dominate a chip's correlation. Offset tracking
on SAR amplitude therefore usually works on the **log-amplitude** (speckle becomes additive,
dynamic range compressed), optionally after a **Lee filter** (Lee 1980, IEEE TPAMI 2:165,
doi:10.1109/TPAMI.1980.4766994), which smooths homogeneous areas and keeps edges and point
targets.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from glacierkit.errors import InputError


def log_amplitude(amplitude: np.ndarray, *, floor: float | None = None) -> np.ndarray:
    """Natural-log amplitude of a SAR image ``(rows, cols)``; NaN and non-positive → NaN.

    Args:
        amplitude: Amplitude (not intensity, not dB) ``(rows, cols)``; NaN = nodata.
        floor: Values below ``floor`` are clipped to it before the log (default: the 0.1st
            percentile of the positive values), so that isolated zeros do not become −inf.

    Returns:
        ``ln(amplitude)`` as float32 (NaN for nodata and for non-positive input).
    """
    a = np.asarray(amplitude, dtype=np.float64)
    if a.ndim != 2:
        raise InputError(f"amplitude must be 2-D (rows, cols); got shape {a.shape}.")
    positive = np.isfinite(a) & (a > 0)
    if not positive.any():
        raise InputError("SAR amplitude has no positive values; is it in dB already? "
                         "Pass linear amplitude.")
    if floor is None:
        floor = float(np.percentile(a[positive], 0.1))
    out = np.full(a.shape, np.nan)
    out[positive] = np.log(np.maximum(a[positive], floor))
    return out.astype(np.float32)


def lee_filter(image: np.ndarray, *, window_px: int = 5, looks: float = 1.0) -> np.ndarray:
    """Lee speckle filter of an amplitude or intensity image ``(rows, cols)``, NaN-aware.

    ``out = mean + k (x − mean)`` with ``k = max(0, (var − mean² σv²) / var)`` computed in a
    ``window_px`` box; ``σv² = 1 / looks`` is the speckle variance of a normalised intensity
    (use the amplitude's equivalent number of looks).

    Args:
        image: Linear (not log, not dB) image; NaN = nodata.
        window_px: Odd window size (px), ≥ 3.
        looks: Equivalent number of looks (> 0).
    """
    if window_px < 3 or window_px % 2 == 0:
        raise InputError(f"window_px must be odd and ≥ 3; got {window_px}.")
    if not looks > 0:
        raise InputError(f"looks must be > 0; got {looks}.")
    a = np.asarray(image, dtype=np.float64)
    valid = np.isfinite(a)
    filled = np.where(valid, a, 0.0)
    n = ndimage.uniform_filter(valid.astype(np.float64), window_px, mode="nearest")
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = ndimage.uniform_filter(filled, window_px, mode="nearest") / n
        sq = ndimage.uniform_filter(filled**2, window_px, mode="nearest") / n
        var = np.maximum(sq - mean**2, 0.0)
        k = np.where(var > 0, np.clip((var - mean**2 / looks) / var, 0.0, 1.0), 0.0)
        out = mean + k * (filled - mean)
    return np.where(valid, out, np.nan).astype(np.float32)
