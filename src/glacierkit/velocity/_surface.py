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
from dataclasses import dataclass

import numpy as np
import scipy.fft as sfft
from numpy.lib.stride_tricks import sliding_window_view

from glacierkit.velocity._level import LevelImages


@dataclass
class Surfaces:
    """Correlation surfaces of one batch.

    Attributes:
        score: ``(n, S, S)`` float32, ``S = 2 r + 1``; index ``(i, j)`` is the chip top-left
            at window position ``(i, j)``, i.e. the shift ``(i - r, j - r)`` px relative to
            the window centre. NaN where the secondary chip has no texture.
        cross: Spectrum ``(n, M, K)`` complex64 (``K = M // 2 + 1`` for NCC) of the numerator
            restricted to the periodic component of the window (see :func:`smooth_spectrum`).
        smooth: The rest of the numerator (smooth component of the window) at the integer
            shifts, ``(n, S, S)``; ``cross`` and ``smooth`` sum to the numerator.
        ref_energy: ``E_T``, ``(n,)`` float64 (≤ the texture floor: textureless chip).
        sec_energy: ``E_W`` at the integer shifts, ``(n, S, S)`` float64.
        size: FFT size ``M`` (px).
        one_sided: ``cross`` is an ``rfft2`` spectrum (real images).
    """

    score: np.ndarray
    cross: np.ndarray
    smooth: np.ndarray
    ref_energy: np.ndarray
    sec_energy: np.ndarray
    size: int
    one_sided: bool


@functools.lru_cache(maxsize=8)
def _smooth_factors(size: int, n_freq: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-frequency factors of the smooth-component spectrum (see :func:`smooth_spectrum`)."""
    zq = np.exp(2j * np.pi * np.arange(size) / size)
    zk = zq[:n_freq] if n_freq < size else zq
    denom = 2.0 * zq.real[:, None] + 2.0 * zk.real[None, :] - 4.0
    denom[0, 0] = np.inf  # zero frequency: the smooth part has zero mean
    rows = (1.0 - zq)[:, None] / denom
    cols = (1.0 - zk)[None, :] / denom
    return rows.astype(np.complex64), cols.astype(np.complex64)


def smooth_spectrum(windows: np.ndarray, *, real: bool, workers: int = 1) -> np.ndarray:
    """Spectrum of the smooth part of each window (periodic-plus-smooth decomposition).

    Moisan (2011, J. Math. Imaging Vis. 39:161, doi:10.1007/s10851-010-0227-1): a window is
    the sum of a periodic component, free of the jumps that wrap-around creates at its
    borders, and a smooth component ``s`` that carries them: ``ŝ = v̂ / (2 cos 2πq/M +
    2 cos 2πk/M - 4)`` with ``v`` the border-jump image. ``v̂`` is separable, so only 1-D FFTs
    of the border differences are needed.

    Args:
        windows: ``(n, M, M)`` float32 (``real``) or complex64 windows.
        real: Return the one-sided (``rfft2``) spectrum.
        workers: FFT threads.

    Returns:
        ``(n, M, K)`` complex64 spectrum of ``s`` (0 at the zero frequency).
    """
    rows_jump = windows[:, -1, :] - windows[:, 0, :]
    cols_jump = windows[:, :, -1] - windows[:, :, 0]
    a_hat = (sfft.rfft if real else sfft.fft)(rows_jump, axis=1, workers=workers)
    b_hat = sfft.fft(cols_jump, axis=1, workers=workers)
    fac_rows, fac_cols = _smooth_factors(windows.shape[1], a_hat.shape[1])
    out = a_hat[:, None, :] * fac_rows
    out += b_hat[:, :, None] * fac_cols
    return out


def _forward_padded(kernel: np.ndarray, size: int, *, real: bool, workers: int) -> np.ndarray:
    """2-D FFT of ``(n, C, C)`` chips zero-padded to ``(size, size)``, skipping zero rows."""
    if real:
        rows = sfft.rfft(kernel, n=size, axis=2, workers=workers)
    else:
        rows = sfft.fft(kernel, n=size, axis=2, workers=workers)
    return sfft.fft(rows, n=size, axis=1, workers=workers)


def _inverse_corner(spec: np.ndarray, size: int, n_shift: int, *, real: bool,
                    workers: int) -> np.ndarray:
    """The ``(n_shift, n_shift)`` top-left corner of the inverse 2-D FFT (pruned), float."""
    cols = sfft.ifft(spec, axis=1, workers=workers)[:, :n_shift, :]
    if real:
        return sfft.irfft(cols, n=size, axis=2, workers=workers)[:, :, :n_shift]
    return sfft.ifft(cols, axis=2, workers=workers)[:, :, :n_shift].real


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
              subpixel: bool = True, workers: int = 1) -> Surfaces:
    """Correlation surfaces of a batch of nodes.

    Args:
        level: Prepared level images.
        chip_rc: Reference chip top-left ``(rows, cols)``, int arrays ``(n,)``, chips inside
            the image.
        window_rc: Secondary window top-left ``(rows, cols)``, int arrays ``(n,)``, windows
            inside the image.
        radius: Search radius ``r`` (px); window size ``M = C + 2 r``.
        subpixel: Also split the numerator for sub-pixel interpolation (``cross`` and
            ``smooth``); otherwise ``cross`` is the plain numerator spectrum and ``smooth`` 0.
        workers: Threads for the FFTs.

    Returns:
        The surfaces of the batch.
    """
    chip, n_batch = level.chip, chip_rc[0].size
    size = chip + 2 * radius
    n_shift = 2 * radius + 1
    real = level.method != "oc"
    chips = sliding_window_view(level.ref, (chip, chip))[chip_rc]
    kernel, ref_energy, mean = _kernels(level, chips)
    windows = sliding_window_view(level.sec, (size, size))[window_rc]
    if real:
        windows -= mean[:, None, None]
        spec_w = sfft.rfft2(windows, workers=workers)
    else:
        spec_w = sfft.fft2(windows, workers=workers)
    kconj = _forward_padded(kernel, size, real=real, workers=workers)
    np.conj(kconj, out=kconj)
    if subpixel:  # one inverse FFT call for [numerator, its smooth-component part]
        spectra = np.empty((2 * n_batch, *kconj.shape[1:]), dtype=kconj.dtype)
        np.multiply(kconj, spec_w, out=spectra[:n_batch])
        smooth_spec = smooth_spectrum(windows, real=real, workers=workers)
        np.multiply(kconj, smooth_spec, out=spectra[n_batch:])
        both = _inverse_corner(spectra, size, n_shift, real=real, workers=workers)
        num, smooth = both[:n_batch], both[n_batch:]
        cross = np.subtract(spectra[:n_batch], spectra[n_batch:], out=spectra[:n_batch])
    else:
        cross = np.multiply(kconj, spec_w, out=kconj)
        num = _inverse_corner(cross, size, n_shift, real=real, workers=workers)
        smooth = np.zeros_like(num)
    sec_energy = sliding_window_view(level.sec_var, (n_shift, n_shift))[window_rc]
    score = normalise(num, ref_energy, sec_energy, level.texture_floor)
    return Surfaces(score, cross, smooth, ref_energy, sec_energy, size, real)


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
