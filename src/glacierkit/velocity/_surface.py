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
        size: FFT size ``M`` (px).
        one_sided: ``cross`` is an ``rfft2`` spectrum (real images).
    """

    score: np.ndarray
    cross: np.ndarray
    offset: np.ndarray
    ref_energy: np.ndarray
    size: int
    one_sided: bool


def _forward_padded(kernel: np.ndarray, size: int, *, workers: int) -> np.ndarray:
    """Complex 2-D FFT of ``(n, C, C)`` chips zero-padded to ``(size, size)`` (pruned)."""
    rows = sfft.fft(kernel, n=size, axis=2, workers=workers)
    return sfft.fft(rows, n=size, axis=1, workers=workers)


def _inverse_corner(spec: np.ndarray, size: int, n_shift: int, *, real: bool,
                    workers: int) -> np.ndarray:
    """The ``(n_shift, n_shift)`` top-left corner of the inverse 2-D FFT (pruned), float."""
    if real:
        if uses_inverse_fft(size, n_shift):
            return sfft.irfft2(spec, s=(size, size), workers=workers)[:, :n_shift, :n_shift]
        return _inverse_corner_real(spec, size, n_shift)
    cols = sfft.ifft(spec, axis=1, workers=workers)[:, :n_shift, :]
    return sfft.ifft(cols, axis=2, workers=workers)[:, :, :n_shift].real


def uses_inverse_fft(size: int, n_shift: int) -> bool:
    """Whether the NCC numerator comes from a full inverse FFT rather than matrix products.

    The partial inverse DFT (:func:`_inverse_corner_real`) costs ``S · K · (M + S)`` complex
    multiply-adds per node, the inverse FFT ``O(M² log M)``. For the usual fine searches
    (``S ≈ M / 4``) the matrix products are cheaper; for searches as wide as the window
    (``S > M / 2``, e.g. ±416 px with a 32 px chip) they are not: measured per node on
    2 cores, ±64 px: 16 ms vs 0.4 ms, ±200 px: 28 ms vs 2.9 ms.
    """
    return 2 * n_shift > size


@functools.lru_cache(maxsize=8)
def _corner_dft(size: int, n_shift: int) -> tuple[np.ndarray, np.ndarray]:
    """Inverse-DFT matrices of the corner: rows ``(S, M)`` and one-sided columns ``(K, S)``.

    Column weights are 1 for DC (and Nyquist for even ``M``) and 2 otherwise, so that the real
    part of the product is ``irfft``'s result (which ignores the imaginary parts of those
    bins, as the real part does).
    """
    k = np.arange(size)
    n_freq = size // 2 + 1
    u = np.arange(n_shift)
    rows = np.exp(2j * np.pi * np.outer(u, k) / size) / size
    weight = np.full(n_freq, 2.0)
    weight[0] = 1.0
    if size % 2 == 0:
        weight[-1] = 1.0
    cols = weight[:, None] * np.exp(2j * np.pi * np.outer(np.arange(n_freq), u) / size) / size
    return rows.astype(np.complex64), cols.astype(np.complex64)


def _inverse_corner_real(spec: np.ndarray, size: int, n_shift: int) -> np.ndarray:
    """:func:`_inverse_corner` of ``rfft2`` spectra ``(n, M, K)`` as two large matrix products.

    Only ``n_shift²`` of the ``M²`` outputs are wanted: a partial inverse DFT with the same
    matrices for every node, a batched product over rows then one complex GEMM over the
    whole chunk, is cheaper than the pruned inverse FFTs for the usual ``S ≈ M / 4``.
    """
    n, _, n_freq = spec.shape
    rows, cols = _corner_dft(size, n_shift)
    part = np.matmul(rows, spec).reshape(n * n_shift, n_freq)  # (n S, K), no copy
    return (part @ cols).real.reshape(n, n_shift, n_shift)


@functools.lru_cache(maxsize=8)
def _ramp_spectra(size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Centred ramp ``t - (M - 1) / 2`` and its 1-D DFT (full, for rows) and rDFT (columns)."""
    axis = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    return axis, np.fft.fft(axis).astype(np.complex64), np.fft.rfft(axis).astype(np.complex64)


def remove_plane(spec: np.ndarray, kernel_spec: np.ndarray, size: int) -> np.ndarray:
    """Remove each window's least-squares plane from its spectrum; return the plane numerator.

    The circular correlation used for sub-pixel interpolation wraps around the window, and
    the jump between opposite window borders rings into the band-limited interpolant. Much of
    that jump is the local brightness gradient. A plane ``L`` adds only a constant to the
    numerator because the tapered zero-mean kernel sums to zero: ``Σ K(p) L(p + u) =
    g_y Σ K p_y + g_x Σ K p_x`` for every shift ``u``. The plane is therefore removed from the
    window spectrum (a ramp's 2-D DFT lives in one row and one column) and its constant
    numerator is added back exactly.

    The first moments of the windows and kernels (``Σ t X`` along each axis with the centred
    ramp ``t``) are read off their spectra: the row (column) sums' DFT is the spectrum's first
    column (row), and by Parseval ``Σ t r = Σ conj(T_k) R_k / M``. No pass over the images.

    Args:
        spec: ``(n, M, M // 2 + 1)`` ``rfft2`` spectra of the windows, modified in place.
        kernel_spec: ``(n, M, M // 2 + 1)`` ``rfft2`` spectra of the tapered zero-mean chips
            zero-padded to ``M`` (top-left aligned in the window).
        size: ``M``.

    Returns:
        ``(n, 1, 1)`` float64 numerator of the removed planes (the same for every shift).
    """
    axis, ramp_rows, ramp_cols = _ramp_spectra(size)
    rows_dot, cols_dot = _moment_vectors(size)
    norm = size * float(np.sum(axis * axis))
    g_y, g_x = _spectral_moments(spec, rows_dot, cols_dot)
    g_y /= norm
    g_x /= norm
    spec[:, :, 0] -= g_y.astype(np.float32)[:, None] * (ramp_rows * np.float32(size))
    spec[:, 0, :] -= g_x.astype(np.float32)[:, None] * (ramp_cols * np.float32(size))
    k_y, k_x = _spectral_moments(kernel_spec, rows_dot, cols_dot)
    return (g_y * k_y + g_x * k_x)[:, None, None]


@functools.lru_cache(maxsize=8)
def _moment_vectors(size: int) -> tuple[np.ndarray, np.ndarray]:
    """``conj(T_k) / M`` for the full (rows) and one-sided, Hermitian-weighted (columns) DFT."""
    axis = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    rows = np.conj(np.fft.fft(axis)) / size
    weight = np.full(size // 2 + 1, 2.0)
    weight[0] = 1.0
    if size % 2 == 0:
        weight[-1] = 1.0
    cols = weight * np.conj(np.fft.rfft(axis)) / size
    return rows, cols


def _spectral_moments(spec: np.ndarray, rows_dot: np.ndarray,
                      cols_dot: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(Σ t_i Σ_j X_ij, Σ t_j Σ_i X_ij)`` per node from ``rfft2`` spectra ``(n, M, K)``."""
    # einsum rather than BLAS (see _kernels): batch-size independent sums.
    g_y = np.einsum("ni,i->n", spec[:, :, 0].astype(rows_dot.dtype), rows_dot).real
    g_x = np.einsum("ni,i->n", spec[:, 0, :].astype(cols_dot.dtype), cols_dot).real
    return g_y, g_x


def _kernels(level: LevelImages, chips: np.ndarray, *, pad_to: int | None = None
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tapered zero-mean chips, their energy ``E_T`` (float64) and weighted mean, per node.

    With ``pad_to`` (NCC only) the kernels are written straight into the top-left corner of
    zero-filled ``(n, pad_to, pad_to)`` arrays, ready for the FFT.
    """
    w = level.weights
    n, chip = chips.shape[:2]
    if level.method == "oc":
        kernel = chips * w
        energy = np.einsum("nij,nij->n", kernel, np.conj(chips)).real
        return kernel, energy.astype(np.float64), np.zeros(n, dtype=np.float32)
    flat = chips.reshape(n, -1)
    # einsum, not a BLAS matrix-vector product: its per-row sums do not depend on the number
    # of rows, so results do not depend on the batch size.
    mean = np.einsum("ni,i->n", flat, w.ravel()) / w.sum(dtype=np.float32)
    centred = chips - mean[:, None, None]
    if pad_to is None:
        kernel = centred * w
        corner = kernel
    else:
        kernel = np.zeros((n, pad_to, pad_to), dtype=np.result_type(centred, w))
        corner = kernel[:, :chip, :chip]
        np.multiply(centred, w, out=corner)
    energy = np.einsum("nij,nij->n", corner, centred)
    return kernel, energy.astype(np.float64), mean


def correlate(level: LevelImages, chip_rc: tuple[np.ndarray, np.ndarray],
              window_rc: tuple[np.ndarray, np.ndarray], radius: int, *,
              workers: int = 1, chunk: int = FFT_CHUNK) -> Surfaces:
    """Correlation surfaces of a batch of nodes.

    Everything that scales with ``M²`` or ``S²`` per node beyond the returned surfaces (the
    chips and windows, their spectra, the numerators and the normalisation temporaries) is
    computed ``chunk`` nodes at a time; the memory this takes is :func:`batch_bytes`.

    Args:
        level: Prepared level images.
        chip_rc: Reference chip top-left ``(rows, cols)``, int arrays ``(n,)``, chips inside
            the image.
        window_rc: Secondary window top-left ``(rows, cols)``, int arrays ``(n,)``, windows
            inside the image.
        radius: Search radius ``r`` (px); window size ``M = C + 2 r``.
        workers: Threads for the FFTs.
        chunk: Nodes per FFT pass (results do not depend on it).

    Returns:
        The surfaces of the batch.
    """
    chip = level.chip
    size = chip + 2 * radius
    n_shift = 2 * radius + 1
    real = level.method != "oc"
    n = chip_rc[0].size
    n_freq = size // 2 + 1 if real else size
    chunk = max(1, int(chunk))
    # Chunks write into whole-batch arrays (no concatenation copies).
    score = np.empty((n, n_shift, n_shift), dtype=np.float32)
    cross = np.empty((n, size, n_freq), dtype=np.complex64)
    offset = np.empty((n, 1, 1))
    ref_energy = np.empty(n)
    windows = sliding_window_view(level.sec_var, (n_shift, n_shift))
    for i in range(0, n, chunk):
        sl = slice(i, i + chunk)
        num = np.empty((min(n, i + chunk) - i, n_shift, n_shift))  # float64: + float64 offset
        _numerator(level, (chip_rc[0][sl], chip_rc[1][sl]), (window_rc[0][sl], window_rc[1][sl]),
                   size, n_shift, (num, cross[sl], offset[sl], ref_energy[sl]), real=real,
                   workers=workers)
        sec_energy = windows[window_rc[0][sl], window_rc[1][sl]]
        score[sl] = normalise(num, ref_energy[sl], sec_energy, level.texture_floor)
        del num, sec_energy
    return Surfaces(score, cross, offset, ref_energy, size, real)


def _numerator(level: LevelImages, chip_rc: tuple[np.ndarray, np.ndarray],
               window_rc: tuple[np.ndarray, np.ndarray], size: int, n_shift: int,
               out: tuple[np.ndarray, ...], *, real: bool, workers: int) -> None:
    """Numerators at the integer shifts, cross spectra, plane offsets and ``E_T`` of a chunk.

    Written into ``out = (num, cross, offset, ref_energy)`` (views of the batch's arrays).
    """
    num, cross, offset, ref_energy = out
    chips = sliding_window_view(level.ref, (level.chip, level.chip))[chip_rc]
    windows = sliding_window_view(level.sec, (size, size))[window_rc]
    if real:
        kernel, ref_energy[:], mean = _kernels(level, chips, pad_to=size)
        del chips
        windows -= mean[:, None, None]
        spec_w = sfft.rfft2(windows, workers=workers, overwrite_x=True)
        del windows
        spec_k = sfft.rfft2(kernel, workers=workers, overwrite_x=True)
        del kernel
        offset[:] = remove_plane(spec_w, spec_k, size)
    else:
        kernel, ref_energy[:], _ = _kernels(level, chips)
        del chips
        spec_w = sfft.fft2(windows, workers=workers, overwrite_x=True)
        del windows
        spec_k = _forward_padded(kernel, size, workers=workers)
        del kernel
        offset[:] = 0.0
    np.conj(spec_k, out=cross)
    del spec_k
    cross *= spec_w
    del spec_w
    np.add(_inverse_corner(cross, size, n_shift, real=real, workers=workers), offset, out=num)


def subset(surf: Surfaces, idx: np.ndarray) -> Surfaces:
    """The surfaces of the nodes ``idx`` of a batch (copies; views for a ``slice``)."""
    return replace(surf, score=surf.score[idx], cross=surf.cross[idx], offset=surf.offset[idx],
                   ref_energy=surf.ref_energy[idx])


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
