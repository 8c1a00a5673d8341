"""Batched correlation surfaces of chips against their search windows.

For a batch of ``n`` nodes, the reference chips ``T`` (``C × C``) and secondary windows ``W``
(``M × M``, ``M = C + 2 r``) are cut from a :class:`~glacierkit.velocity._level.LevelImages`.
The score at the integer shift ``u ∈ [0, 2 r]²`` (window index of the chip's top-left) is the
taper-weighted normalised cross-correlation

``ρ(u) = Σ_p w(p) T'(p) W(p + u) / sqrt(E_T · E_W(u))``

with ``T' = T - mean_w(T)``, ``E_T = Σ w T'²`` and ``E_W(u)`` the weighted energy of the
secondary chip about its weighted mean. The numerator of all shifts comes from one FFT
product ``conj(F[w T']) · F[W]`` per node; ``E_W`` for every shift of every window is
gathered from one whole-image array of weighted local energies shared by all overlapping
windows (:mod:`glacierkit.velocity._level`), in the spirit of Lewis (1995, "Fast normalized
cross-correlation", Vision Interface, 120–123), so there is no per-shift loop anywhere.
Batches are vectorised over nodes. The taper ``w`` (Tukey) makes the chip fade out
smoothly, which keeps the band-limited sub-pixel interpolation of the numerator accurate
(:mod:`glacierkit.velocity._subpixel`).

For ``"oc"`` the images are complex unit orientation vectors and the numerator is
``Re Σ w conj(o_r) o_s(p + u)`` (Fitch et al. 2002, doi:10.5244/C.16.11), normalised by
``sqrt(Σ w |o_r|² · Σ w |o_s|²)`` (so 1 for identical orientation chips).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace

import numpy as np
import scipy.fft as sfft
from numpy.lib.stride_tricks import sliding_window_view

from glacierkit.velocity._level import LevelImages

#: Nodes per FFT pass: the transforms run on chunks of this size (cache-sized), everything
#: else on the whole batch (fewer, larger numpy calls).
FFT_CHUNK = 256


@dataclass
class Surfaces:
    """Correlation surfaces of one batch.

    Attributes:
        score: ``(n, S, S)`` float32, ``S = 2 r + 1``; index ``(i, j)`` is the chip top-left
            at window position ``(i, j)``, i.e. the shift ``(i - r, j - r)`` px relative to
            the window centre. NaN where the secondary chip has no texture.
        cross: Spectrum ``(n, M, K)`` complex64 (``K = M // 2 + 1`` for NCC) of the numerator
            after removing each window's plane (see :func:`remove_plane`).
        offset: Numerator of the removed planes, ``(n, 1, 1)``; the numerator at any shift is
            the interpolant of ``cross`` plus ``offset``.
        ref_energy: ``E_T``, ``(n,)`` float64 (≤ the texture floor: textureless chip).
        sec_energy: ``E_W`` at the integer shifts, ``(n, S, S)`` float64.
        size: FFT size ``M`` (px).
        one_sided: ``cross`` is an ``rfft2`` spectrum (real images).
    """

    score: np.ndarray
    cross: np.ndarray
    offset: np.ndarray
    ref_energy: np.ndarray
    sec_energy: np.ndarray
    size: int
    one_sided: bool


def _forward_padded(kernel: np.ndarray, size: int, *, real: bool, workers: int) -> np.ndarray:
    """2-D FFT of ``(n, C, C)`` chips zero-padded to ``(size, size)``."""
    if real:
        # One 2-D transform of the padded stack beats two pruned 1-D passes (fewer copies).
        n, chip = kernel.shape[:2]
        padded = np.zeros((n, size, size), dtype=kernel.dtype)
        padded[:, :chip, :chip] = kernel
        return sfft.rfft2(padded, workers=workers, overwrite_x=True)
    rows = sfft.fft(kernel, n=size, axis=2, workers=workers)
    return sfft.fft(rows, n=size, axis=1, workers=workers)


def _inverse_corner(spec: np.ndarray, size: int, n_shift: int, *, real: bool,
                    workers: int) -> np.ndarray:
    """The ``(n_shift, n_shift)`` top-left corner of the inverse 2-D FFT (pruned), float."""
    cols = sfft.ifft(spec, axis=1, workers=workers)[:, :n_shift, :]
    if real:
        return sfft.irfft(cols, n=size, axis=2, workers=workers)[:, :, :n_shift]
    return sfft.ifft(cols, axis=2, workers=workers)[:, :, :n_shift].real


@functools.lru_cache(maxsize=8)
def _ramp_spectra(size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Centred ramp ``t - (M - 1) / 2`` and its 1-D DFT (full, for rows) and rDFT (columns)."""
    axis = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    return axis, np.fft.fft(axis).astype(np.complex64), np.fft.rfft(axis).astype(np.complex64)


def remove_plane(windows: np.ndarray, spec: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Remove each window's least-squares plane from its spectrum; return the plane numerator.

    The circular correlation used for sub-pixel interpolation wraps around the window, and
    the jump between opposite window borders rings into the band-limited interpolant. Much of
    that jump is the local brightness gradient. A plane ``L`` adds only a constant to the
    numerator because the tapered zero-mean kernel sums to zero: ``Σ K(p) L(p + u) =
    g_y Σ K p_y + g_x Σ K p_x`` for every shift ``u``. The plane is therefore removed from the
    window spectrum (a ramp's 2-D DFT lives in one row and one column) and its constant
    numerator is added back exactly.

    Args:
        windows: ``(n, M, M)`` float32 windows (not modified).
        spec: ``(n, M, M // 2 + 1)`` their ``rfft2`` spectra, modified in place.
        kernel: ``(n, C, C)`` tapered zero-mean chips (top-left aligned in the window).

    Returns:
        ``(n, 1, 1)`` float64 numerator of the removed planes (the same for every shift).
    """
    size, chip = windows.shape[1], kernel.shape[1]
    axis, ramp_rows, ramp_cols = _ramp_spectra(size)
    norm = size * float(np.sum(axis * axis))
    g_y, g_x = _moments(windows, axis)
    g_y, g_x = g_y / norm, g_x / norm
    spec[:, :, 0] -= (g_y[:, None] * ramp_rows * size).astype(np.complex64)
    spec[:, 0, :] -= (g_x[:, None] * ramp_cols * size).astype(np.complex64)
    k_y, k_x = _moments(kernel, axis[:chip])
    return (g_y * k_y + g_x * k_x)[:, None, None]


def _moments(images: np.ndarray, axis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First moments ``Σ a[i] X[i, j]`` and ``Σ a[j] X[i, j]`` of a stack ``(n, m, m)``."""
    n, m, _ = images.shape
    both = np.stack([axis, np.ones(m)], axis=1).astype(images.dtype)
    sums = (images.reshape(n * m, m) @ both).reshape(n, m, 2)  # one pass over the stack
    return sums[:, :, 1].astype(np.float64) @ axis, sums[:, :, 0].sum(axis=1, dtype=np.float64)


def _kernels(level: LevelImages, chips: np.ndarray) -> tuple[np.ndarray, np.ndarray,
                                                             np.ndarray]:
    """Tapered zero-mean chips, their energy ``E_T`` (float64) and weighted mean, per node."""
    w = level.weights
    n = chips.shape[0]
    if level.method == "oc":
        kernel = chips * w
        energy = np.einsum("nij,nij->n", kernel, np.conj(chips)).real
        return kernel, energy.astype(np.float64), np.zeros(n, dtype=np.float32)
    flat = chips.reshape(n, -1)
    mean = (flat @ w.ravel()) / w.sum(dtype=np.float32)
    centred = chips - mean[:, None, None]
    kernel = centred * w
    energy = np.einsum("ni,ni->n", kernel.reshape(n, -1), centred.reshape(n, -1))
    return kernel, energy.astype(np.float64), mean


def correlate(level: LevelImages, chip_rc: tuple[np.ndarray, np.ndarray],
              window_rc: tuple[np.ndarray, np.ndarray], radius: int, *,
              workers: int = 1) -> Surfaces:
    """Correlation surfaces of a batch of nodes.

    Args:
        level: Prepared level images.
        chip_rc: Reference chip top-left ``(rows, cols)``, int arrays ``(n,)``, chips inside
            the image.
        window_rc: Secondary window top-left ``(rows, cols)``, int arrays ``(n,)``, windows
            inside the image.
        radius: Search radius ``r`` (px); window size ``M = C + 2 r``.
        workers: Threads for the FFTs.

    Returns:
        The surfaces of the batch.
    """
    chip = level.chip
    size = chip + 2 * radius
    n_shift = 2 * radius + 1
    real = level.method != "oc"
    parts = [_numerator(level, (chip_rc[0][i:i + FFT_CHUNK], chip_rc[1][i:i + FFT_CHUNK]),
                        (window_rc[0][i:i + FFT_CHUNK], window_rc[1][i:i + FFT_CHUNK]), size,
                        n_shift, real=real, workers=workers)
             for i in range(0, chip_rc[0].size, FFT_CHUNK)]
    num, cross, offset, ref_energy = (p[0] if len(parts) == 1 else np.concatenate(p)
                                      for p in zip(*parts, strict=True))
    sec_energy = sliding_window_view(level.sec_var, (n_shift, n_shift))[window_rc]
    score = normalise(num, ref_energy, sec_energy, level.texture_floor)
    return Surfaces(score, cross, offset, ref_energy, sec_energy, size, real)


def _numerator(level: LevelImages, chip_rc: tuple[np.ndarray, np.ndarray],
               window_rc: tuple[np.ndarray, np.ndarray], size: int, n_shift: int, *,
               real: bool, workers: int) -> tuple[np.ndarray, ...]:
    """Numerators at the integer shifts, cross spectra, plane offsets and ``E_T`` of a chunk."""
    chips = sliding_window_view(level.ref, (level.chip, level.chip))[chip_rc]
    kernel, ref_energy, mean = _kernels(level, chips)
    windows = sliding_window_view(level.sec, (size, size))[window_rc]
    if real:
        windows -= mean[:, None, None]
        spec_w = sfft.rfft2(windows, workers=workers)
        offset = remove_plane(windows, spec_w, kernel)
    else:
        spec_w = sfft.fft2(windows, workers=workers)
        offset = np.zeros((chip_rc[0].size, 1, 1))
    cross = _forward_padded(kernel, size, real=real, workers=workers)
    np.conj(cross, out=cross)
    cross *= spec_w
    num = _inverse_corner(cross, size, n_shift, real=real, workers=workers) + offset
    return num, cross, offset, ref_energy


def subset(surf: Surfaces, idx: np.ndarray) -> Surfaces:
    """The surfaces of the nodes ``idx`` of a batch (copies)."""
    return replace(surf, score=surf.score[idx], cross=surf.cross[idx], offset=surf.offset[idx],
                   ref_energy=surf.ref_energy[idx], sec_energy=surf.sec_energy[idx])


def normalise(num: np.ndarray, ref_energy: np.ndarray, sec_energy: np.ndarray,
              floor: float) -> np.ndarray:
    """``num / sqrt(E_T · E_W)`` clipped to ``[-1, 1]``; NaN where ``E_W ≤ floor``.

    Args:
        num: Numerators ``(n, ...)``.
        ref_energy: ``(n,)``.
        sec_energy: Same shape as ``num``.
        floor: Energy at or below which a chip is textureless.

    Returns:
        float32 array shaped like ``num``.
    """
    ref = ref_energy.reshape((-1,) + (1,) * (num.ndim - 1))
    ok = (sec_energy > floor) & (ref > floor)
    denom = np.sqrt(np.where(ok, sec_energy * ref, 1.0))
    out = np.where(ok, num / denom, np.nan)
    return np.clip(out, -1.0, 1.0).astype(np.float32)
