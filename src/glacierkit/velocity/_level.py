"""One pyramid level prepared for matching: filled images and per-chip-position statistics.

What overlapping chips share is computed here once per level, as whole images indexed by the
top-left pixel of a chip: the taper-weighted energy of the secondary chip (separable weighted
sums, float64), the nodata fraction under the chip (box filter), and the images themselves
with nodata replaced by a smooth local mean (so that filled areas add no texture), centred on
the mean of the reference for float32 precision. The pyramid's NaN-aware low-pass is here too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from glacierkit.velocity.prefilter import orientation

Method = Literal["ncc", "oc"]

#: cv2 border mode for filters whose border values are never used (they are cropped away).
_BORDER = cv2.BORDER_REFLECT


def taper_1d(chip: int, taper: float) -> np.ndarray:
    """Tukey taper of length ``chip`` with strictly positive weights.

    Args:
        chip: Chip size (px).
        taper: Fraction of the chip in the cosine-tapered flanks (0 = box, 1 = Hann).

    Returns:
        Weights ``(chip,)`` float64, maximum 1.
    """
    if taper <= 0:
        return np.ones(chip)
    n = chip + 2
    x = np.arange(n) / (n - 1)
    w = np.ones(n)
    edge = taper / 2.0
    lo, hi = x < edge, x > 1.0 - edge
    w[lo] = 0.5 * (1.0 + np.cos(np.pi * (x[lo] / edge - 1.0)))
    w[hi] = 0.5 * (1.0 + np.cos(np.pi * ((x[hi] - 1.0) / edge + 1.0)))
    return w[1:-1]


def _chip_filter(image: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``out[r, c] = Σ_ij w[i] w[j] image[r + i, c + j]`` for every chip top-left ``(r, c)``.

    Args:
        image: ``(H, W)`` float64.
        w: 1-D weights ``(C,)``.

    Returns:
        ``(H - C + 1, W - C + 1)`` float64.
    """
    c = w.size
    w64 = w.astype(np.float64)
    out = cv2.sepFilter2D(image, cv2.CV_64F, w64, w64, anchor=(0, 0), borderType=_BORDER)
    return out[: image.shape[0] - c + 1, : image.shape[1] - c + 1]


def _bad_fraction(valid: np.ndarray, chip: int) -> np.ndarray:
    """Fraction of nodata pixels under each ``chip × chip`` chip, by chip top-left."""
    bad = (~valid).astype(np.float32)
    out = cv2.boxFilter(bad, cv2.CV_32F, (chip, chip), anchor=(0, 0), normalize=True,
                        borderType=_BORDER)
    return out[: valid.shape[0] - chip + 1, : valid.shape[1] - chip + 1]


def fill_nodata(image: np.ndarray, valid: np.ndarray, *, sigma_px: float) -> np.ndarray:
    """Replace nodata by a smooth local mean, so that filled areas add no texture.

    Args:
        image: ``(H, W)`` float array (values at invalid pixels are ignored).
        valid: ``(H, W)`` bool, True where ``image`` holds data.
        sigma_px: Gaussian standard deviation (px) of the local mean.

    Returns:
        ``(H, W)`` float64 without NaN (the global mean where no data is near).
    """
    if valid.all():
        return np.asarray(image, dtype=np.float64)
    out = np.where(valid, image, 0.0).astype(np.float64)
    if not valid.any():
        return np.zeros_like(out)
    wsum = cv2.GaussianBlur(valid.astype(np.float64), (0, 0), sigma_px)
    vsum = cv2.GaussianBlur(out, (0, 0), sigma_px)
    ok = wsum > 1e-3
    local = np.divide(vsum, wsum, out=np.zeros_like(vsum), where=ok)
    local[~ok] = out[valid].mean()
    return np.where(valid, out, local)


@dataclass
class LevelImages:
    """A level's images and secondary chip-position statistics (indexed by chip top-left).

    Reference chip statistics are computed per node from the chips themselves; the secondary
    chip energy is needed at every shift of every search window, so it is one whole image
    (separable weighted sums in float64, shared by all overlapping windows).

    Attributes:
        method: ``"ncc"`` or ``"oc"``.
        chip: Chip size ``C`` (px).
        weights: Chip taper ``(C, C)`` float32 (outer product of a 1-D Tukey taper).
        ref: Reference image ``(H, W)``: float32 centred and filled (NCC) or complex64 unit
            gradient orientation, 0 on nodata (OC).
        sec: Secondary image, same conventions.
        sec_var: Taper-weighted energy of the secondary chip at every top-left position,
            ``(H - C + 1, W - C + 1)`` float64: ``Σ w (W - mean_w)²`` (NCC) or ``Σ w |o|²`` (OC).
        ref_bad: Nodata fraction under each reference chip (float32), or ``None`` when the
            reference has no nodata.
        sec_bad: Same for the secondary image.
        texture_floor: Weighted energy at or below which a chip counts as textureless.
    """

    method: Method
    chip: int
    weights: np.ndarray
    ref: np.ndarray
    sec: np.ndarray
    sec_var: np.ndarray
    ref_bad: np.ndarray | None
    sec_bad: np.ndarray | None
    texture_floor: float

    @property
    def shape(self) -> tuple[int, int]:
        """Image shape ``(H, W)`` (px)."""
        return self.ref.shape  # type: ignore[return-value]


def bad_at(bad: np.ndarray | None, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Nodata fraction of the chips with top-left ``(rows, cols)`` (0 where no nodata)."""
    if bad is None:
        return np.zeros(np.shape(rows), dtype=np.float32)
    return bad[rows, cols]


def prepare_level(reference: np.ndarray, secondary: np.ndarray, *, chip: int, taper: float,
                  method: Method, min_texture: float = 0.0) -> LevelImages:
    """Fill, centre and summarise one level of a reference/secondary pair.

    Args:
        reference: ``(H, W)`` float, NaN = nodata.
        secondary: ``(H, W)`` float, NaN = nodata.
        chip: Chip size ``C`` (px), ``C ≤ min(H, W)``.
        taper: Tukey taper fraction of the chip weights (0 = box).
        method: ``"ncc"`` or ``"oc"``.
        min_texture: Standard deviation (image units) at or below which a chip is
            textureless (NCC); a floor of 1e-5 × the image scale always applies.

    Returns:
        The prepared level.
    """
    w1 = taper_1d(chip, taper).astype(np.float32)
    weights = np.outer(w1, w1)
    wsum = float(weights.sum(dtype=np.float64))
    ref_ok, sec_ok = np.isfinite(reference), np.isfinite(secondary)
    bad = (None if ref_ok.all() else _bad_fraction(ref_ok, chip),
           None if sec_ok.all() else _bad_fraction(sec_ok, chip))
    if method == "oc":
        sec = orientation(secondary)
        sec_var = _chip_filter((sec.real.astype(np.float64) ** 2
                                + sec.imag.astype(np.float64) ** 2), w1)
        return LevelImages(method, chip, weights, orientation(reference), sec, sec_var,
                           *bad, texture_floor=1e-6 * wsum)
    centre = float(reference.mean() if bad[0] is None else
                   (reference[ref_ok].mean() if ref_ok.any() else 0.0))
    sigma = max(2.0, chip / 4.0)
    ref64 = fill_nodata(reference - centre, ref_ok, sigma_px=sigma)
    sec64 = fill_nodata(secondary - centre, sec_ok, sigma_px=sigma)
    s1 = _chip_filter(sec64, w1)
    sec_var = _chip_filter(sec64 * sec64, w1)
    s1 *= s1
    s1 /= wsum
    sec_var -= s1
    np.maximum(sec_var, 0.0, out=sec_var)
    scale = max(float(np.std(ref64[::4, ::4])), abs(centre), 1e-12)
    floor = wsum * max(min_texture, 1e-5 * scale) ** 2
    return LevelImages(method, chip, weights, ref64.astype(np.float32),
                       sec64.astype(np.float32), sec_var, *bad, texture_floor=floor)


def pyr_down(image: np.ndarray) -> np.ndarray:
    """Halve resolution with a NaN-aware 5-tap binomial low-pass (pixel ``j`` ↔ ``2 j``).

    This is ``cv2.pyrDown`` (kernel ``[1, 4, 6, 4, 1] / 16`` per axis, reflected borders) as a
    normalised convolution, so that nodata does not bleed into valid pixels.

    Args:
        image: ``(H, W)`` float, NaN = nodata.

    Returns:
        ``((H + 1) // 2, (W + 1) // 2)`` float64; NaN where less than half of the low-pass
        weight fell on valid pixels.
    """
    valid = np.isfinite(image)
    if valid.all():
        return cv2.pyrDown(np.asarray(image, dtype=np.float64))
    out = cv2.pyrDown(np.where(valid, image, 0.0).astype(np.float64))
    wts = cv2.pyrDown(valid.astype(np.float64))
    ok = wts >= 0.5
    return np.divide(out, wts, out=np.full_like(out, np.nan), where=ok)
