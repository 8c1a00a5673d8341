"""Synthetic displacements applied to real image texture, for offset-tracking tests.

Every generator is band-limited (Fourier shift or a wide Lanczos windowed sinc), so that the
"true" displacement is defined the same way as for a real sensor: the image is a sampled
band-limited field that moved. Sign convention as in glacierkit.velocity.kernels: a feature at
``p`` in the reference is at ``p + d(p)`` in the secondary.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import rasterio

REFERENCE_TIF = "LC80630182016200LGN00_B8_yahtse.TIF"
SECONDARY_TIF = "LC80630182016216LGN00_B8_yahtse.TIF"

Flow = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def read_band(path: Path) -> np.ndarray:
    """First band of a raster as float64 (rasterio directly, not glacierkit.io)."""
    with rasterio.open(path) as ds:
        return ds.read(1).astype(np.float64)


def nmad(x: np.ndarray) -> float:
    """Normalised median absolute deviation (px), robust standard deviation."""
    x = np.asarray(x, dtype=np.float64)
    return float(1.4826 * np.median(np.abs(x - np.median(x))))


def fourier_shift(image: np.ndarray, dy: float, dx: float, *, margin: int = 64) -> np.ndarray:
    """Shift by ``(dy, dx)`` px (content moves down/right for positive values).

    The image is shifted through its DFT and the ``margin`` px border, where the periodic
    wrap-around lives, is cut off: returns ``image.shape - 2 margin``.
    """
    rows, cols = image.shape
    ky = np.fft.fftfreq(rows)[:, None]
    kx = np.fft.fftfreq(cols)[None, :]
    spec = np.fft.fft2(image) * np.exp(-2j * np.pi * (ky * dy + kx * dx))
    out = np.fft.ifft2(spec).real
    return out[margin:rows - margin, margin:cols - margin]


def _lanczos(x: np.ndarray, a: int) -> np.ndarray:
    return np.where(np.abs(x) < a, np.sinc(x) * np.sinc(x / a), 0.0)


def lanczos_sample(image: np.ndarray, rows: np.ndarray, cols: np.ndarray, *,
                   a: int = 8) -> np.ndarray:
    """Values of ``image`` at real positions, Lanczos-``a`` windowed-sinc interpolation.

    Args:
        image: ``(H, W)`` array.
        rows: Row positions (any shape), px.
        cols: Column positions (same shape), px.
        a: Lanczos order; the kernel spans ``2 a`` samples per axis.

    Returns:
        Interpolated values, shape of ``rows``.
    """
    taps = np.arange(-a + 1, a + 1)
    r0, c0 = np.floor(rows).astype(int), np.floor(cols).astype(int)
    wr = _lanczos((rows - r0)[..., None] - taps, a)
    wc = _lanczos((cols - c0)[..., None] - taps, a)
    wr /= wr.sum(axis=-1, keepdims=True)
    wc /= wc.sum(axis=-1, keepdims=True)
    cidx = np.clip(c0[..., None] + taps, 0, image.shape[1] - 1)
    out = np.zeros(rows.shape)
    for i, t in enumerate(taps):
        ridx = np.clip(r0 + t, 0, image.shape[0] - 1)
        out += wr[..., i] * np.sum(image[ridx[..., None], cidx] * wc, axis=-1)
    return out


def warp(image: np.ndarray, flow: Flow, *, margin: int, a: int = 8,
         iterations: int = 6) -> np.ndarray:
    """Secondary image for a known flow: ``S(p + d(p)) = R(p)``.

    For every output pixel ``q`` the source position ``p = q - d(p)`` is found by fixed-point
    iteration, then ``R`` is sampled there (Lanczos). The ``margin`` border is cut off, and
    ``flow`` is evaluated in the coordinates of the returned (cropped) image.

    Args:
        image: Reference texture ``(H, W)``.
        flow: ``(rows, cols) -> (dy, dx)`` in px, in cropped coordinates.
        margin: Border (px) removed from the result.
        a: Lanczos order.
        iterations: Fixed-point iterations of the flow inversion.

    Returns:
        ``(H - 2 margin, W - 2 margin)`` secondary image.
    """
    h, w = image.shape[0] - 2 * margin, image.shape[1] - 2 * margin
    qr, qc = np.meshgrid(np.arange(h, dtype=float), np.arange(w, dtype=float), indexing="ij")
    pr, pc = qr.copy(), qc.copy()
    for _ in range(iterations):
        dy, dx = flow(pr, pc)
        pr, pc = qr - dy, qc - dx
    return lanczos_sample(image, pr + margin, pc + margin, a=a)


def chip_mean_flow(flow: Flow, rows: np.ndarray, cols: np.ndarray,
                   chip: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean of the flow over each node's chip (what a chip-based matcher measures), px."""
    off = np.arange(chip) - (chip - 1) / 2.0
    rr = rows[:, None, None, None] + off[None, None, :, None]
    cc = cols[None, :, None, None] + off[None, None, None, :]
    dy, dx = flow(*np.broadcast_arrays(rr, cc))
    return dy.mean(axis=(2, 3)), dx.mean(axis=(2, 3))
