"""Glacier area from calibrated probabilities, with an interval.

The *expected* glacier area of a probability map is ``Σ p_i × pixel area``: with calibrated
probabilities (a pixel given 0.7 is glacier 70 % of the time) it is an unbiased estimate of
the true area, and it does not depend on a threshold. Two intervals are offered; both cut the
map into square blocks (``block_px`` × ``block_px`` pixels; partial blocks at the right and
bottom edges and blocks with nodata keep their valid pixels; blocks without a valid pixel are
dropped).

``method="block-bootstrap"`` — ICEmapper's interval (Maslov et al. 2024, 3.2 km blocks):
the block sums of ``p`` are resampled with replacement (``n_resamples`` times, as many blocks
as there are) and the interval is the percentile interval of the resampled totals. Here the
total of a resample is scaled as a ratio, ``Σ S*_b / Σ N*_b × N`` (``S`` block sums, ``N``
valid pixels), which equals the plain sum ``Σ S*_b`` when every block is full and keeps a
region of fixed size when blocks are partial. **What it measures**: how much the glacier share
varies *between blocks* — the sampling variability of the area of a region *drawn at random*
from a population of such blocks. The mapped region is not such a draw (it is fixed), so this
is not the uncertainty of its area: a map that is certain everywhere (``p ∈ {0, 1}``) but
half glacier, half rock gets a wide interval although its area is exactly known, and a map of
``p = 0.5`` everywhere gets a zero-width interval although half of its area is unknown.

``method="bernoulli-blocks"`` — the uncertainty of *this* region's area given the calibrated
probabilities. Each pixel is glacier with probability ``p_i`` (calibration); errors are
spatially correlated, which is modelled by ``pixels_per_sample`` (``c``): the number of
pixels that share one error, i.e. the variance inflation of a block's glacier count. Blocks
are independent; a block's glacier count has mean ``Σ p_i`` and variance
``c · Σ p_i (1 − p_i)`` (exact for independent pixels, ``c = 1``; exact for errors shared by
groups of ``c`` pixels with equal ``p``). Each block's count is drawn from a beta distribution
on ``[0, N_b]`` with that mean and variance, the draws are summed, and the interval is the
percentile interval of ``n_resamples`` totals. Assumptions, to be stated with the result: the
probabilities are calibrated *for area* (per pixel, on data like this scene), and ``c`` is the
error correlation area in pixels (estimate it from the autocorrelation of ``y − p`` on
validation data; ``c = block_px²`` treats every block as one sample, the conservative end).
Pixels with ``p ∈ {0, 1}`` contribute no uncertainty: the interval covers classification
uncertainty as the calibration states it, not omissions at ``p = 0``.

Reference: Maslov, K. A., Persello, C., Schellenberger, T., Stein, A. (2024): Globally
scalable glacier mapping by deep learning matches expert delineation accuracy,
arXiv:2401.15113.

Numpy only; never imports torch.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np

from glacierkit.errors import InputError

__all__ = ["AREA_METHODS", "area_from_blocks", "area_with_interval", "block_sums"]

AREA_METHODS = ("block-bootstrap", "bernoulli-blocks")
"""The interval methods of :func:`area_with_interval`."""

_CHUNK_ELEMENTS = 1 << 22   # ≈ 32 MB of float64 per chunk of resamples × blocks


def block_sums(probability: np.ndarray, block_px: int
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-block sums of ``p``, of ``p (1 − p)`` and valid-pixel counts.

    Args:
        probability: ``(H, W)`` glacier probability in [0, 1], NaN nodata.
        block_px: Block edge (pixels); partial blocks at the right/bottom edges are kept.

    Returns:
        ``(S, V, N)``: float64, float64 and int64 arrays of shape ``(B,)`` over the ``B``
        blocks that hold at least one valid pixel (row-major block order).
    """
    p = np.asarray(probability, dtype=np.float64)
    h, w = p.shape
    nb_r, nb_c = -(-h // block_px), -(-w // block_px)
    valid = np.isfinite(p)
    q = np.where(valid, p, 0.0)
    rows = np.arange(h) // block_px
    cols = np.arange(w) // block_px
    ids = (rows[:, None] * nb_c + cols[None, :]).ravel()
    n_blocks = nb_r * nb_c
    s = np.bincount(ids, weights=q.ravel(), minlength=n_blocks)
    v = np.bincount(ids, weights=(q * (1.0 - q)).ravel(), minlength=n_blocks)
    n = np.bincount(ids, weights=valid.ravel().astype(np.float64),
                    minlength=n_blocks).astype(np.int64)
    keep = n > 0
    return s[keep], v[keep], n[keep]


def _check(probability: np.ndarray) -> np.ndarray:
    p = np.asarray(probability)
    if p.ndim != 2 or p.size == 0:
        raise InputError(f"probability must be a non-empty 2-D array (H, W); got shape "
                         f"{p.shape}.")
    if not np.issubdtype(p.dtype, np.floating):
        raise InputError(f"probability must be float (calibrated glacier probability, NaN "
                         f"nodata); got {p.dtype}. Divide scaled integers (e.g. 0–255) first.")
    p = p.astype(np.float64, copy=False)
    fin = np.isfinite(p)
    if np.isinf(p).any():
        raise InputError("probability holds ±inf; only values in [0, 1] and NaN (nodata) are "
                         "allowed.")
    if not fin.any():
        raise InputError("probability holds no valid pixel (all NaN).")
    lo, hi = float(p[fin].min()), float(p[fin].max())
    if lo < 0.0 or hi > 1.0:
        raise InputError(f"probability must lie in [0, 1]; got values in [{lo:.4g}, {hi:.4g}]. "
                         f"Pass calibrated probabilities, not logits or percentages.")
    return p


def _block_px(block_px: int | None, block_m: float | None, pixel_area_m2: float,
              pixel_size_m: float | None, shape: tuple[int, int]) -> int:
    if block_px is not None and block_m is not None:
        raise InputError("give block_px or block_m, not both.")
    if block_px is None:
        if block_m is None or not block_m > 0:
            raise InputError(f"block_m must be > 0 metres; got {block_m}.")
        size = pixel_size_m if pixel_size_m is not None else math.sqrt(pixel_area_m2)
        if not size > 0:
            raise InputError(f"pixel_size_m must be > 0; got {pixel_size_m}.")
        block_px = max(1, round(block_m / size))
    if isinstance(block_px, bool) or int(block_px) != block_px or block_px < 1:
        raise InputError(f"block_px must be a positive integer; got {block_px!r}.")
    block_px = int(block_px)
    if block_px > min(shape):
        raise InputError(f"block of {block_px} px is larger than the image {shape}; use "
                         f"block_px <= {min(shape)} (or a smaller block_m).")
    return block_px


def _beta_sums(mean: np.ndarray, var: np.ndarray, n: np.ndarray, n_resamples: int,
               rng: np.random.Generator) -> np.ndarray:
    """Totals of independent per-block beta draws on [0, N_b] with the given moments."""
    total = np.full(n_resamples, float(mean.sum()))
    rnd = var > 0
    if not rnd.any():
        return total
    m = mean[rnd] / n[rnd]
    s2 = var[rnd] / n[rnd].astype(np.float64) ** 2
    # variance of a [0, 1] beta is below m (1 − m); c ≤ N keeps s2 ≤ m(1 − m)/N·c ≤ m(1 − m)
    k = np.maximum(m * (1.0 - m) / s2 - 1.0, 1e-9)
    a, b, scale = m * k, (1.0 - m) * k, n[rnd].astype(np.float64)
    base = float(mean[~rnd].sum())
    chunk = max(1, _CHUNK_ELEMENTS // a.size)
    for start in range(0, n_resamples, chunk):
        stop = min(n_resamples, start + chunk)
        draw = rng.beta(a, b, size=(stop - start, a.size))
        total[start:stop] = base + draw @ scale
    return total


def _bootstrap(s: np.ndarray, n: np.ndarray, n_resamples: int,
               rng: np.random.Generator) -> np.ndarray:
    """Ratio totals ``Σ S* / Σ N* × N`` of block resamples with replacement."""
    b = s.size
    n_tot = float(n.sum())
    out = np.empty(n_resamples)
    chunk = max(1, _CHUNK_ELEMENTS // b)
    nf = n.astype(np.float64)
    for start in range(0, n_resamples, chunk):
        stop = min(n_resamples, start + chunk)
        idx = rng.integers(0, b, size=(stop - start, b))
        out[start:stop] = s[idx].sum(axis=1) / nf[idx].sum(axis=1) * n_tot
    return out


def area_with_interval(probability: np.ndarray, *, pixel_area_m2: float,
                       block_px: int | None = None, block_m: float | None = None,
                       pixel_size_m: float | None = None,
                       method: Literal["block-bootstrap", "bernoulli-blocks"] =
                       "bernoulli-blocks", pixels_per_sample: float = 1.0,
                       n_resamples: int = 10_000, level: float = 0.95,
                       seed: int | np.random.Generator = 0) -> dict[str, Any]:
    """Expected glacier area of a calibrated probability map and an interval for it.

    See the module docstring for what the two intervals mean; the default,
    ``"bernoulli-blocks"``, is the uncertainty of this region's area under calibrated
    probabilities and an error correlation area of ``pixels_per_sample`` pixels.

    Args:
        probability: ``(H, W)`` float calibrated glacier probability in [0, 1]; NaN is
            nodata (left out of the area and of the blocks).
        pixel_area_m2: Area of one pixel (m²).
        block_px: Block edge (pixels). Give this or ``block_m``.
        block_m: Block edge (m), converted with ``pixel_size_m`` (default
            ``sqrt(pixel_area_m2)``); used when ``block_px`` is None (3200 m in ICEmapper).
        pixel_size_m: Pixel edge (m) for ``block_m``.
        method: ``"bernoulli-blocks"`` (default) or ``"block-bootstrap"`` (ICEmapper).
        pixels_per_sample: For ``"bernoulli-blocks"``: pixels per independent error sample
            (≥ 1, at most the pixel count of a full block).
        n_resamples: Number of resampled totals (≥ 100).
        level: Interval coverage in (0, 1), e.g. 0.95.
        seed: Seed or generator of the resampling.

    Returns:
        ``{"expected_km2", "lower_km2", "upper_km2", "std_km2", "level", "method",
        "n_blocks", "block_px", "n_resamples", "pixels_per_sample" (None for the bootstrap),
        "valid_area_km2"}``; areas in km².

    Raises:
        InputError: probability not a 2-D float array in [0, 1] (NaN allowed) or all NaN; a
            block larger than the image; both or neither of ``block_px`` / ``block_m``; level
            outside (0, 1); fewer than 100 resamples; an unknown method; ``pixels_per_sample``
            outside [1, block_px²].
    """
    p = _check(probability)
    try:
        pixel_area_m2 = float(pixel_area_m2)
    except (TypeError, ValueError):
        raise InputError(f"pixel_area_m2 must be a positive number of m²; got "
                         f"{pixel_area_m2!r}.") from None
    if not (math.isfinite(pixel_area_m2) and pixel_area_m2 > 0):
        raise InputError(f"pixel_area_m2 must be a positive number of m²; got {pixel_area_m2}.")
    if block_px is None and block_m is None:
        raise InputError("give the block size: block_px (pixels) or block_m (metres; "
                         "ICEmapper uses 3200 m).")
    bpx = _block_px(block_px, block_m, pixel_area_m2, pixel_size_m, p.shape)
    if not 0.0 < level < 1.0:
        raise InputError(f"level must be in (0, 1), e.g. 0.95; got {level}.")
    if isinstance(n_resamples, bool) or int(n_resamples) != n_resamples or n_resamples < 100:
        raise InputError(f"n_resamples must be an integer >= 100; got {n_resamples!r}.")
    n_resamples = int(n_resamples)
    if method not in AREA_METHODS:
        raise InputError(f"method must be one of {AREA_METHODS}; got {method!r}.")
    if method == "bernoulli-blocks" and not 1.0 <= pixels_per_sample <= bpx * bpx:
        raise InputError(f"pixels_per_sample must be in [1, block_px² = {bpx * bpx}]; got "
                         f"{pixels_per_sample}. Use larger blocks for a longer error "
                         f"correlation.")
    s, v, n = block_sums(p, bpx)
    return area_from_blocks(s, v, n, pixel_area_m2=pixel_area_m2, block_px=bpx, method=method,
                            pixels_per_sample=pixels_per_sample, n_resamples=n_resamples,
                            level=level, seed=seed)


def area_from_blocks(s: np.ndarray, v: np.ndarray, n: np.ndarray, *, pixel_area_m2: float,
                     block_px: int, method: Literal["block-bootstrap", "bernoulli-blocks"] =
                     "bernoulli-blocks", pixels_per_sample: float = 1.0,
                     n_resamples: int = 10_000, level: float = 0.95,
                     seed: int | np.random.Generator = 0) -> dict[str, Any]:
    """:func:`area_with_interval` from per-block statistics (:func:`block_sums`).

    For maps too large to hold at once: accumulate ``(S, V, N)`` per block strip by strip
    (``S`` sum of ``p``, ``V`` sum of ``p (1 − p)``, ``N`` valid pixels; blocks without a
    valid pixel left out), then call this. Same result and keys as
    :func:`area_with_interval`.
    """
    s = np.asarray(s, dtype=np.float64).reshape(-1)
    v = np.asarray(v, dtype=np.float64).reshape(-1)
    n = np.asarray(n, dtype=np.int64).reshape(-1)
    if not s.size or s.shape != v.shape or s.shape != n.shape or np.any(n < 1):
        raise InputError("block statistics must be equal-length arrays over blocks with at "
                         "least one valid pixel each (and at least one block).")
    if method not in AREA_METHODS:
        raise InputError(f"method must be one of {AREA_METHODS}; got {method!r}.")
    if not 0.0 < level < 1.0:
        raise InputError(f"level must be in (0, 1), e.g. 0.95; got {level}.")
    if isinstance(n_resamples, bool) or int(n_resamples) != n_resamples or n_resamples < 100:
        raise InputError(f"n_resamples must be an integer >= 100; got {n_resamples!r}.")
    n_resamples = int(n_resamples)
    bpx = int(block_px)
    if method == "bernoulli-blocks" and not 1.0 <= pixels_per_sample <= bpx * bpx:
        raise InputError(f"pixels_per_sample must be in [1, block_px² = {bpx * bpx}]; got "
                         f"{pixels_per_sample}. Use larger blocks for a longer error "
                         f"correlation.")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    to_km2 = float(pixel_area_m2) / 1e6
    expected = float(s.sum())
    if method == "block-bootstrap":
        totals = _bootstrap(s, n, n_resamples, rng)
        pps = None
    else:
        var = np.minimum(pixels_per_sample * v, s * (n - s))   # never above the [0, N] max
        totals = _beta_sums(s, var, n, n_resamples, rng)
        pps = float(pixels_per_sample)
    alpha = 1.0 - level
    lo, hi = np.quantile(totals, [alpha / 2, 1 - alpha / 2])
    # Degenerate resamples (all equal) must give exactly the expected area.
    if np.ptp(totals) <= 1e-9 * max(1.0, abs(expected)):
        lo = hi = expected
    return {
        "expected_km2": expected * to_km2,
        "lower_km2": float(lo) * to_km2,
        "upper_km2": float(hi) * to_km2,
        "std_km2": float(np.std(totals)) * to_km2,
        "level": float(level),
        "method": method,
        "n_blocks": int(s.size),
        "block_px": bpx,
        "n_resamples": n_resamples,
        "pixels_per_sample": pps,
        "valid_area_km2": float(n.sum()) * to_km2,
    }
