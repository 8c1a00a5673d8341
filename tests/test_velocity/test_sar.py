from __future__ import annotations

import numpy as np
import pytest

from glacierkit.errors import InputError
from glacierkit.velocity.sar import lee_filter, log_amplitude


def _speckled(seed=0, looks=4, shape=(120, 120)):
    rng = np.random.default_rng(seed)
    truth = np.ones(shape)
    truth[:, 60:] = 4.0  # an edge between two homogeneous areas (intensity)
    speckle = rng.gamma(looks, 1 / looks, size=shape)  # mean 1, var 1/looks
    return truth, truth * speckle


def test_lee_reduces_speckle_and_keeps_mean_and_edge():
    _, noisy = _speckled(looks=4)
    out = lee_filter(noisy, window_px=7, looks=4)
    left, right = out[:, 5:50], out[:, 70:115]
    assert left.std() < 0.6 * noisy[:, 5:50].std()
    assert left.mean() == pytest.approx(1.0, rel=0.05)
    assert right.mean() == pytest.approx(4.0, rel=0.05)
    # The edge stays sharp: 3 px either side of it the means are still far apart.
    assert out[:, 63].mean() / out[:, 56].mean() > 3.0


def test_lee_nan_aware():
    _, noisy = _speckled()
    noisy[10:20, 10:20] = np.nan
    out = lee_filter(noisy)
    assert np.isnan(out[10:20, 10:20]).all()
    assert np.isfinite(out[30:, 30:]).all()


def test_log_amplitude_makes_speckle_additive():
    _, noisy = _speckled(looks=4)
    la = log_amplitude(np.sqrt(noisy))
    # Multiplicative speckle → the log's spread is the same on both sides of the edge.
    assert la[:, :55].std() == pytest.approx(la[:, 65:].std(), rel=0.1)


def test_log_amplitude_bad_input():
    with pytest.raises(InputError, match="dB"):
        log_amplitude(-np.ones((4, 4)))
    a = np.ones((4, 4))
    a[0, 0] = 0
    a[0, 1] = np.nan
    out = log_amplitude(a)
    assert np.isnan(out[0, 0]) and np.isnan(out[0, 1]) and out[1, 1] == 0.0
    with pytest.raises(InputError):
        lee_filter(a, window_px=4)
