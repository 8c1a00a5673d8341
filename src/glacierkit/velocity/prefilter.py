"""Pre-filters applied to both images of a pair before matching.

All filters take a 2-D float array ``(rows, cols)`` with NaN for nodata and return an array of
the same shape in which nodata stays NaN (or 0 for the complex orientation image, where 0 means
"no orientation"). Local statistics are NaN-aware (normalised convolution), so nodata never
leaks into valid pixels as fake texture.

* :func:`no_filter` — the image as float32.
* :func:`gaussian_highpass` — removes illumination gradients and shading at scales larger
  than ``sigma_px`` (image units kept).
* :func:`wallis` — local contrast equalisation (Wallis 1976; formulation of Baltsavias 1991,
  "Multiphoto geometrically constrained matching", PhD thesis, ETH Zürich,
  doi:10.3929/ethz-a-000603923): dimensionless, in units of the target standard deviation.
* :func:`orientation` — unit gradient-orientation vectors ``(gx + i gy) / |gx + i gy|``
  (Fitch et al. 2002, "Orientation correlation", BMVC, doi:10.5244/C.16.11; Heid & Kääb 2012,
  Remote Sens. Environ. 118:339–355, doi:10.1016/j.rse.2011.11.024). GIV's NAOF filter
  (Van Wyk de Vries & Wickert 2021, The Cryosphere 15:2115, doi:10.5194/tc-15-2115-2021) is a
  real-valued relative built from the same idea: keep the orientation of local structure,
  discard its amplitude, so that illumination and contrast changes do not matter.

:func:`apply_prefilter` selects one by name (``"none"``, ``"highpass"``, ``"wallis"``,
``"orientation"``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import cv2
import numpy as np

from glacierkit.errors import InputError

PrefilterName = Literal["none", "highpass", "wallis", "orientation"]


def _as_2d_float(image: np.ndarray, name: str = "image") -> np.ndarray:
    """Validate a 2-D real array and return it as float64 (a copy)."""
    arr = np.asarray(image)
    if arr.ndim != 2:
        raise InputError(f"{name} must be a 2-D array (rows, cols); got shape {arr.shape}. "
                         "Pass one band, e.g. data[0].")
    if np.iscomplexobj(arr) or not np.issubdtype(arr.dtype, np.number):
        raise InputError(f"{name} must hold real numbers; got dtype {arr.dtype}.")
    return arr.astype(np.float64)


def _local_mean(image: np.ndarray, valid: np.ndarray, *, sigma_px: float | None = None,
                window_px: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """NaN-aware local mean (Gaussian ``sigma_px`` or box ``window_px``) and its weight.

    Returns:
        ``(mean, weight)``: ``mean`` is NaN where no valid pixel is in reach; ``weight`` is
        the fraction of the kernel that fell on valid pixels.
    """
    vals = np.where(valid, image, 0.0)
    wts = valid.astype(np.float64)
    if sigma_px is not None:
        vsum = cv2.GaussianBlur(vals, (0, 0), sigma_px, borderType=cv2.BORDER_REFLECT)
        wsum = cv2.GaussianBlur(wts, (0, 0), sigma_px, borderType=cv2.BORDER_REFLECT)
    else:
        size = (int(window_px), int(window_px))
        vsum = cv2.blur(vals, size, borderType=cv2.BORDER_REFLECT)
        wsum = cv2.blur(wts, size, borderType=cv2.BORDER_REFLECT)
    ok = wsum > 1e-6
    mean = np.divide(vsum, wsum, out=np.full_like(vsum, np.nan), where=ok)
    return mean, wsum


def no_filter(image: np.ndarray) -> np.ndarray:
    """Return the image unchanged, as float32 with NaN for nodata.

    Args:
        image: ``(rows, cols)`` real array; NaN = nodata.

    Returns:
        ``(rows, cols)`` float32, same units as ``image``.
    """
    return _as_2d_float(image).astype(np.float32)


def gaussian_highpass(image: np.ndarray, *, sigma_px: float = 3.0) -> np.ndarray:
    """Subtract a NaN-aware Gaussian low-pass: keeps texture finer than ``sigma_px``.

    Args:
        image: ``(rows, cols)`` real array; NaN = nodata.
        sigma_px: Standard deviation of the Gaussian low-pass (px), > 0. Structures much
            larger than about ``2 sigma_px`` (shading, haze gradients) are removed.

    Returns:
        ``(rows, cols)`` float32 in the units of ``image``, NaN where ``image`` is NaN.

    Raises:
        InputError: ``image`` is not 2-D real, or ``sigma_px`` ≤ 0.
    """
    img = _as_2d_float(image)
    if not sigma_px > 0:
        raise InputError(f"sigma_px must be > 0 px; got {sigma_px}.")
    valid = np.isfinite(img)
    low, _ = _local_mean(img, valid, sigma_px=float(sigma_px))
    out = np.where(valid, img - np.nan_to_num(low), np.nan)
    return out.astype(np.float32)


def wallis(image: np.ndarray, *, window_px: int = 21, target_mean: float = 0.0,
           target_std: float = 1.0, contrast: float = 1.0, brightness: float = 1.0,
           min_std: float | None = None) -> np.ndarray:
    """Wallis filter: force local mean and standard deviation towards target values.

    ``g = (f - m) · c s_t / (c s + (1 - c) s_t) + b m_t + (1 - b) m`` with the local mean
    ``m`` and standard deviation ``s`` of ``f`` over a ``window_px`` square window, targets
    ``m_t``, ``s_t``, contrast ``c`` and brightness ``b``. With the defaults (``c = b = 1``,
    ``m_t = 0``, ``s_t = 1``) this is ``(f - m) / s``: every window gets zero mean and unit
    standard deviation, equalising contrast between sunlit and shaded slopes.

    Args:
        image: ``(rows, cols)`` real array; NaN = nodata.
        window_px: Side of the square window of local statistics (px), odd, ≥ 3.
        target_mean: Target local mean ``m_t`` (output units).
        target_std: Target local standard deviation ``s_t`` (output units), > 0.
        contrast: ``c`` in ``[0, 1]``; < 1 limits the gain in flat areas.
        brightness: ``b`` in ``[0, 1]``; 1 replaces the local mean by ``target_mean``.
        min_std: Floor (image units) on ``s`` to avoid dividing by ~0 in flat areas; default
            1e-6 × the image's standard deviation.

    Returns:
        ``(rows, cols)`` float32, dimensionless (units of ``target_std``), NaN at nodata.

    Raises:
        InputError: Invalid argument values.
    """
    img = _as_2d_float(image)
    if window_px < 3 or window_px % 2 == 0:
        raise InputError(f"window_px must be an odd integer ≥ 3; got {window_px}.")
    if not (0.0 <= contrast <= 1.0 and 0.0 <= brightness <= 1.0 and target_std > 0):
        raise InputError("contrast and brightness must lie in [0, 1] and target_std > 0; got "
                         f"contrast={contrast}, brightness={brightness}, "
                         f"target_std={target_std}.")
    valid = np.isfinite(img)
    if not valid.any():
        return np.full(img.shape, np.nan, dtype=np.float32)
    mean, _ = _local_mean(img, valid, window_px=window_px)
    sq, _ = _local_mean(np.where(valid, img * img, 0.0), valid, window_px=window_px)
    std = np.sqrt(np.maximum(np.nan_to_num(sq) - np.nan_to_num(mean) ** 2, 0.0))
    floor = min_std if min_std is not None else 1e-6 * max(float(np.std(img[valid])), 1e-30)
    std = np.maximum(std, floor)
    gain = contrast * target_std / (contrast * std + (1.0 - contrast) * target_std)
    mean = np.nan_to_num(mean)
    out = (img - mean) * gain + brightness * target_mean + (1.0 - brightness) * mean
    return np.where(valid, out, np.nan).astype(np.float32)


def orientation(image: np.ndarray) -> np.ndarray:
    """Unit gradient-orientation image for orientation correlation.

    Central differences give ``gy`` (along rows, down) and ``gx`` (along columns, right); the
    result is ``(gx + i gy) / |gx + i gy|``, and 0 where the gradient is zero or touches
    nodata, and on the one-pixel image border.

    Args:
        image: ``(rows, cols)`` real array; NaN = nodata.

    Returns:
        ``(rows, cols)`` complex64 with modulus 1 (oriented) or 0 (no orientation).
    """
    img = _as_2d_float(image)
    g = np.zeros(img.shape, dtype=np.complex128)
    g[1:-1, 1:-1] = (0.5 * (img[1:-1, 2:] - img[1:-1, :-2])
                     + 0.5j * (img[2:, 1:-1] - img[:-2, 1:-1]))
    mag = np.abs(g)
    ok = np.isfinite(mag) & (mag > 0)
    out = np.divide(g, mag, out=np.zeros_like(g), where=ok)
    return out.astype(np.complex64)


_FILTERS: dict[str, Callable[..., np.ndarray]] = {
    "none": no_filter,
    "highpass": gaussian_highpass,
    "wallis": wallis,
    "orientation": orientation,
}


def apply_prefilter(image: np.ndarray, name: PrefilterName = "none", **kwargs: Any) -> np.ndarray:
    """Apply a pre-filter by name.

    Args:
        image: ``(rows, cols)`` real array; NaN = nodata.
        name: ``"none"``, ``"highpass"``, ``"wallis"`` or ``"orientation"``.
        **kwargs: Keyword arguments of the chosen filter.

    Returns:
        The filtered image (see each filter for dtype and units).

    Raises:
        InputError: Unknown ``name``.
    """
    try:
        func = _FILTERS[name]
    except KeyError:
        raise InputError(f"unknown prefilter {name!r}; choose one of {sorted(_FILTERS)}.") from None
    return func(image, **kwargs)
