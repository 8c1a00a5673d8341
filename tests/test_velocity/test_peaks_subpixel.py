"""Peak quality measures and the sub-pixel building blocks on synthetic surfaces."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.fft as sfft

from glacierkit.velocity._peaks import find_peaks
from glacierkit.velocity._subpixel import interpolate_cross, quadratic_vertex


def test_quadratic_vertex__exact_for_paraboloid():
    off = np.array([-1.0, 0.0, 1.0])
    yy, xx = np.meshgrid(off, off, indexing="ij")
    y0, x0 = 0.31, -0.42
    f = 1.0 - 0.8 * (yy - y0) ** 2 - 0.5 * (xx - x0) ** 2 + 0.2 * (yy - y0) * (xx - x0)
    d_row, d_col, peak = quadratic_vertex(f[None])
    np.testing.assert_allclose([d_row[0], d_col[0], peak[0]], [y0, x0, 1.0], atol=1e-12)


def test_quadratic_vertex__no_maximum_falls_back_to_zero():
    flat = np.zeros((1, 3, 3))
    d_row, d_col, _ = quadratic_vertex(flat)
    assert d_row[0] == 0 and d_col[0] == 0


def test_find_peaks__snr_and_ratio():
    surf = np.full((1, 9, 9), 0.1)
    surf[0, 4, 5] = 0.9
    surf[0, 1, 1] = 0.45  # second peak, outside the exclusion zone
    surf[0, 4, 6] = 0.6  # shoulder of the first peak, inside the zone
    pk = find_peaks(surf, exclusion_px=2)
    assert (pk.row[0], pk.col[0]) == (4, 5)
    assert pk.ratio[0] == pytest.approx(2.0)
    assert pk.snr[0] == pytest.approx(0.9 / np.mean(surf))
    assert not pk.on_border[0]


def test_find_peaks__all_nan_and_border():
    surf = np.full((2, 5, 5), np.nan)
    surf[1] = 0.0
    surf[1, 0, 2] = 1.0
    pk = find_peaks(surf, exclusion_px=1)
    assert np.isnan(pk.value[0]) and np.isnan(pk.snr[0])
    assert pk.on_border[1] and pk.ratio[1] == np.inf


@pytest.mark.parametrize("size", [16, 17])
def test_interpolate_cross__band_limited_interpolant(size):
    """The stencil interpolant equals the exact trigonometric interpolant of a real signal."""
    rng = np.random.default_rng(1)
    k = np.fft.fftfreq(size, 1.0 / size)
    spec = np.zeros((size, size), dtype=complex)
    low = (np.abs(k) < size // 3)
    spec[np.ix_(low, low)] = rng.standard_normal((low.sum(), low.sum()))
    signal = np.fft.ifft2(spec).real  # real, band-limited, periodic
    half = sfft.rfft2(signal)[None].astype(np.complex64)

    class Surf:
        cross, size_, one_sided = half, size, True

    Surf.size = size
    pos = np.array([3.37]), np.array([5.81])
    got = interpolate_cross(Surf, pos[0], pos[1], 0.25)[0]
    full = np.fft.fft2(signal)
    for i, dy in enumerate((-0.25, 0.0, 0.25)):
        for j, dx in enumerate((-0.25, 0.0, 0.25)):
            y, x = pos[0][0] + dy, pos[1][0] + dx
            ph = np.exp(2j * np.pi * (k[:, None] * y + k[None, :] * x) / size)
            want = (full * ph).sum().real / size**2
            assert got[i, j] == pytest.approx(want, abs=2e-5)
