"""Blend weights for overlapping tiles, and weighted accumulation that sums to the right value.

Predictions of overlapping tiles are combined as a weighted mean: every tile adds
``weight * value`` to an accumulator and ``weight`` to a weight sum, and the result is
``accumulator / weight_sum``. Because each pixel's normalised weights sum to 1, a constant
field comes back unchanged whatever the tiling, and a seam between tiles fades smoothly from one
tile's prediction to the other's instead of jumping.

Weight windows are separable (outer product of two 1-D profiles) and sampled at pixel centres
``(i + 0.5) / n``, so they are *strictly positive* everywhere in the tile: the accumulated
weight can never vanish at a pixel that some tile covers, including the scene edges, where only
one tile contributes. Profiles (``n`` pixels, maximum 1):

* ``"cosine"``: Hann window ``sin²(π (i + 0.5) / n)``.
* ``"gaussian"``: ``exp(-½ ((i + 0.5 - n/2) / σ)²)`` with ``σ = sigma_frac · n``.
* ``"linear"``: triangle ``1 - |2 (i + 0.5) / n - 1|``.
* ``"none"``: boxcar (all ones): a plain mean of the overlapping predictions.

With ``taper_px`` the profile only tapers over the outer ``taper_px`` pixels of each side (the
rising/falling half of the window, stretched to ``taper_px``) and is 1 in between; with
``taper_px`` equal to the overlap, two neighbouring tiles cross-fade exactly over their shared
pixels.

NaN (and ±inf) predictions are treated as missing: they add neither value nor weight (see
:func:`weigh`), so one tile's NaN does not erase a neighbour's valid prediction, and a pixel no
tile predicted comes out as ``fill``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal, get_args

import numpy as np

from glacierkit.errors import InputError, TilingError
from glacierkit.tiling.grid import Tile

BlendMethod = Literal["cosine", "gaussian", "linear", "none"]
"""Weight window of a tile (see the module docstring)."""

TileBlend = Literal["cosine", "gaussian", "linear", "none", "core"]
"""A :data:`BlendMethod`, or ``"core"``: each pixel is taken from the one tile whose core
window holds it (no mixing; right for class labels)."""

BLEND_METHODS: tuple[str, ...] = get_args(BlendMethod)
TILE_BLENDS: tuple[str, ...] = get_args(TileBlend)


def blend_profile(n: int, method: BlendMethod = "cosine", *, taper_px: int | None = None,
                  sigma_frac: float = 0.125) -> np.ndarray:
    """1-D blend weights of ``n`` pixels, strictly positive, maximum 1.

    Args:
        n: Profile length in pixels (> 0).
        method: ``"cosine"``, ``"gaussian"``, ``"linear"`` or ``"none"``.
        taper_px: Taper only the outer ``taper_px`` pixels of each end (``None``: the whole
            profile is the window). Clipped to ``n // 2``.
        sigma_frac: Gaussian standard deviation as a fraction of the window length
            (``n``, or ``2 * taper_px`` with a taper).

    Returns:
        ``(n,)`` float64 weights in ``(0, 1]``.
    """
    if n <= 0:
        raise TilingError(f"blend window length must be > 0 px; got {n}.")
    if method not in BLEND_METHODS:
        raise TilingError(f"blend method must be one of {BLEND_METHODS}; got {method!r}.")
    if not sigma_frac > 0:
        raise TilingError(f"sigma_frac must be > 0; got {sigma_frac}.")
    if method == "none":
        return np.ones(n)
    if taper_px is None:
        return _window(np.arange(n) + 0.5, float(n), method, sigma_frac)
    if taper_px < 0:
        raise TilingError(f"taper_px must be >= 0; got {taper_px}.")
    t = min(int(taper_px), n // 2)
    prof = np.ones(n)
    if t > 0:
        ramp = _window(np.arange(t) + 0.5, 2.0 * t, method, sigma_frac)
        prof[:t] = ramp
        prof[n - t:] = ramp[::-1]
    return prof


def _window(x: np.ndarray, length: float, method: str, sigma_frac: float) -> np.ndarray:
    """Window of ``length`` px sampled at positions ``x`` (pixel centres), peak 1."""
    u = x / length
    if method == "cosine":
        w = np.sin(np.pi * u) ** 2
    elif method == "linear":
        w = 1.0 - np.abs(2.0 * u - 1.0)
    else:  # gaussian
        w = np.exp(-0.5 * ((u - 0.5) / sigma_frac) ** 2)
    # Pixel-centre sampling keeps every weight > 0; guard against underflow of long Gaussians.
    return np.maximum(w, np.finfo(np.float64).tiny)


def blend_weights(shape: tuple[int, int], method: BlendMethod = "cosine", *,
                  taper_px: int | tuple[int, int] | None = None,
                  sigma_frac: float = 0.125) -> np.ndarray:
    """2-D blend weights of a tile: the outer product of a row and a column profile.

    Args:
        shape: Tile shape ``(rows, cols)`` in pixels.
        method: ``"cosine"``, ``"gaussian"``, ``"linear"`` or ``"none"``.
        taper_px: Taper width in pixels (an int, or ``(rows, cols)``); ``None`` for a window
            over the whole tile. See :func:`blend_profile`.
        sigma_frac: Gaussian standard deviation as a fraction of the window length.

    Returns:
        ``(rows, cols)`` float64 weights in ``(0, 1]``.
    """
    rows, cols = shape
    t_rows, t_cols = taper_px if isinstance(taper_px, tuple) else (taper_px, taper_px)
    wr = blend_profile(rows, method, taper_px=t_rows, sigma_frac=sigma_frac)
    wc = blend_profile(cols, method, taper_px=t_cols, sigma_frac=sigma_frac)
    return np.outer(wr, wc)


def tile_weights(tile: Tile, method: TileBlend = "cosine", *,
                 taper_px: int | tuple[int, int] | None = None,
                 sigma_frac: float = 0.125) -> np.ndarray:
    """Blend weights of the readable part of ``tile`` (what it contributes to the scene).

    Args:
        tile: A tile of a :class:`~glacierkit.tiling.grid.TileGrid`.
        method: A :data:`BlendMethod`, or ``"core"``: weight 1 on the tile's core window and 0
            elsewhere, so every pixel comes from exactly one tile.
        taper_px: As for :func:`blend_weights` (ignored for ``"core"``).
        sigma_frac: As for :func:`blend_weights`.

    Returns:
        ``(read_rows, read_cols)`` float64 weights, the shape of ``tile.read_window``. For a
        padded tile, the window is computed over the full tile and cropped, so a padded tile
        weighs its pixels like any other tile.
    """
    if method not in TILE_BLENDS:
        raise TilingError(f"blend must be one of {TILE_BLENDS}; got {method!r}.")
    rs, cs = tile.read_slices
    if method == "core":
        w = np.zeros(tile.shape)
        w[tile.core_slices] = 1.0
    else:
        w = blend_weights(tile.shape, method, taper_px=taper_px, sigma_frac=sigma_frac)
    return w[rs, cs]


def sum_is_finite(a: np.ndarray) -> bool:
    """Whether the sum of ``a`` is finite, which proves every element finite.

    A NaN or ±inf element makes the sum NaN or ±inf, so ``True`` is a proof at the cost of
    one vectorised sum instead of an ``isfinite`` mask. ``False`` means some element is not
    finite *or* the sum overflowed: check element-wise then.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        return bool(np.isfinite(a.sum()))


def weigh(values: np.ndarray, weights: np.ndarray, *,
          dtype: str | np.dtype = "float64") -> tuple[np.ndarray, np.ndarray]:
    """Weighted contribution of one tile, treating NaN values as missing.

    Args:
        values: Prediction ``(bands, rows, cols)``, any real dtype.
        weights: ``(rows, cols)`` weights, >= 0.
        dtype: Precision of the weighted values: ``"float64"`` (default, exact for any input
            dtype) or ``"float32"`` (half the memory traffic; enough for values such as
            probabilities, where the relative rounding of about 6e-8 is far below their
            meaning).

    Returns:
        ``(weighted, weight)``: ``weighted`` is ``(bands, rows, cols)`` ``weights * values``
        in ``dtype`` with 0 where ``values`` is NaN; ``weight`` is the weight that goes with
        it: ``weights`` as given when every value is finite, else ``(bands, rows, cols)`` with
        0 where ``values`` is NaN. Add both to accumulators (broadcasting over bands).
    """
    dt = np.dtype(dtype)
    if dt not in (np.float64, np.float32):
        raise InputError(f"weigh: dtype must be float64 or float32; got {dt}.")
    v = np.asarray(values)
    if v.ndim != 3 or v.shape[1:] != weights.shape:
        raise InputError(f"values must have shape (bands, {weights.shape[0]}, "
                         f"{weights.shape[1]}); got {np.shape(values)}.")
    # One pass and one array: the inputs are cast to ``dt`` inside the multiplication.
    weighted = np.multiply(v, weights, dtype=dt)
    if sum_is_finite(weighted):  # the usual case, without a mask
        return weighted, weights
    finite = np.isfinite(weighted)
    if finite.all():  # the sum overflowed, the terms did not
        return weighted, weights
    weighted[~finite] = 0.0
    return weighted, np.where(finite, weights, 0.0).astype(dt, copy=False)


def accumulate(acc: np.ndarray, weight_sum: np.ndarray, values: np.ndarray,
               weights: np.ndarray) -> None:
    """Add one tile's weighted prediction to accumulators, in place (NaN values skipped).

    Args:
        acc: ``(bands, rows, cols)`` float64 accumulator of ``weight * value`` (a view of the
            tile's footprint in a larger array).
        weight_sum: ``(bands, rows, cols)`` float64 accumulator of weights, same footprint.
        values: ``(bands, rows, cols)`` prediction.
        weights: ``(rows, cols)`` weights from :func:`tile_weights`.
    """
    weighted, w = weigh(values, weights)
    acc += weighted
    weight_sum += w


def normalise(acc: np.ndarray, weight_sum: np.ndarray, *, fill: float = float("nan"),
              out: np.ndarray | None = None) -> np.ndarray:
    """Weighted mean ``acc / weight_sum``; ``fill`` where no weight was accumulated.

    Args:
        acc: ``(bands, rows, cols)`` accumulated ``weight * value``.
        weight_sum: Accumulated weights, same shape as ``acc``.
        fill: Value where ``weight_sum == 0`` (no tile predicted the pixel). Default NaN.
        out: Optional float64 array of ``acc``'s shape to write into (may be ``acc`` itself,
            to normalise in place without a temporary).

    Returns:
        ``(bands, rows, cols)`` float64 blended values (``out`` when given).
    """
    if acc.shape != weight_sum.shape:
        raise InputError(f"acc {acc.shape} and weight_sum {weight_sum.shape} must have the "
                         f"same shape.")
    covered = weight_sum > 0
    if out is None:
        out = np.empty(acc.shape)
    np.divide(acc, weight_sum, out=out, where=covered)
    out[~covered] = fill
    return out


def blend_tiles(shape: tuple[int, int], tiles: Iterable[Tile],
                predictions: Iterable[np.ndarray], method: TileBlend = "cosine", *,
                taper_px: int | tuple[int, int] | None = None, sigma_frac: float = 0.125,
                fill: float = float("nan")) -> np.ndarray:
    """Blend full-tile predictions into one in-memory scene (small scenes and tests).

    For scenes larger than memory use :func:`glacierkit.tiling.run_tiled`, which streams.

    Args:
        shape: Scene shape ``(rows, cols)``.
        tiles: Tiles of a :class:`~glacierkit.tiling.grid.TileGrid` over ``shape``.
        predictions: One ``(bands, tile_rows, tile_cols)`` or ``(tile_rows, tile_cols)`` array
            per tile (the full tile, padding included).
        method: Blend (see :func:`tile_weights`).
        taper_px: As for :func:`blend_weights`.
        sigma_frac: As for :func:`blend_weights`.
        fill: Value of pixels no tile predicted.

    Returns:
        ``(bands, rows, cols)`` float64 scene.
    """
    acc: np.ndarray | None = None
    wsum: np.ndarray | None = None
    for tile, pred in zip(tiles, predictions, strict=True):
        p = np.asarray(pred)
        p = p[None] if p.ndim == 2 else p
        if p.ndim != 3 or p.shape[1:] != tile.shape:
            raise InputError(f"prediction of tile {tile.index} must have shape "
                             f"(bands, {tile.shape[0]}, {tile.shape[1]}); got {np.shape(pred)}.")
        if acc is None or wsum is None:
            acc = np.zeros((p.shape[0], *shape))
            wsum = np.zeros_like(acc)
        rs, cs = tile.read_slices
        r0, c0 = int(tile.read_window.row_off), int(tile.read_window.col_off)
        h, w = int(tile.read_window.height), int(tile.read_window.width)
        win = (slice(None), slice(r0, r0 + h), slice(c0, c0 + w))
        accumulate(acc[win], wsum[win], p[:, rs, cs],
                   tile_weights(tile, method, taper_px=taper_px, sigma_frac=sigma_frac))
    if acc is None or wsum is None:
        raise InputError("blend_tiles needs at least one tile.")
    return normalise(acc, wsum, fill=fill)
