"""Hypothesis properties of the matcher on synthetic band-limited texture (no data files)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.ndimage import gaussian_filter
from velocity_synth import fourier_shift

from glacierkit.velocity import Status, match

_SHIFTS = st.floats(-3.0, 3.0, allow_nan=False)


def _texture(seed: int) -> np.ndarray:
    noise = np.random.default_rng(seed).standard_normal((224, 224))
    return 1000.0 + 300.0 * gaussian_filter(noise, 1.0)


@settings(max_examples=12, deadline=None)
@given(dy=_SHIFTS, dx=_SHIFTS, seed=st.integers(0, 2**16))
def test_shift_recovered_and_swap_negates(dy, dx, seed):
    big = _texture(seed)
    ref, sec = big[32:-32, 32:-32], fourier_shift(big, dy, dx, margin=32)
    kw = {"chip_size_px": 24, "search_px": 6, "step_px": 12}
    fwd, bwd = match(ref, sec, **kw), match(sec, ref, **kw)
    ok = (fwd.status == Status.OK) & (bwd.status == Status.OK)
    assert ok.sum() >= 25
    for f, b, true in ((fwd.dy_px[ok], bwd.dy_px[ok], dy), (fwd.dx_px[ok], bwd.dx_px[ok], dx)):
        assert abs(np.median(f) - true) < 0.02
        # f + b = e(s) + e(-s), where e is the sub-pixel estimator's periodic (pixel-locking)
        # error, largest near quarter-pixel shifts: at most twice its amplitude. Measured on
        # 150 random cases of this texture: median 0.0045 px, max 0.0082 px; at exactly
        # ±0.25 px up to 0.0101 px (the old 0.01 px bound failed there). A swap or sign bug
        # gives |f + b| ≈ 2 |s|, far above 0.015 px for any shift beyond 0.01 px.
        assert np.median(np.abs(f + b)) < 0.015
