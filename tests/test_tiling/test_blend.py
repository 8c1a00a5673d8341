"""Blend windows and weighted accumulation."""

from __future__ import annotations

import numpy as np
import pytest

from glacierkit.errors import InputError, TilingError
from glacierkit.tiling import (
    BLEND_METHODS,
    TileGrid,
    accumulate,
    blend_profile,
    blend_tiles,
    blend_weights,
    normalise,
    sum_is_finite,
    tile_weights,
    weigh,
)


@pytest.mark.parametrize("method", BLEND_METHODS)
@pytest.mark.parametrize("n", [1, 2, 7, 64, 512])
def test_blend_profile__positive_symmetric_peak_one(method, n):
    p = blend_profile(n, method)
    assert p.shape == (n,) and p.dtype == np.float64
    assert (p > 0).all() and p.max() <= 1.0
    np.testing.assert_allclose(p, p[::-1], rtol=1e-12)
    if n >= 3 and method != "none":
        assert p[0] < p[n // 2]  # tapers towards the edges


def test_blend_profile__known_values():
    np.testing.assert_allclose(blend_profile(4, "linear"), [0.25, 0.75, 0.75, 0.25])
    np.testing.assert_allclose(blend_profile(2, "cosine"), [0.5, 0.5])
    g = blend_profile(8, "gaussian", sigma_frac=0.25)
    np.testing.assert_allclose(g[0], np.exp(-0.5 * ((0.5 - 4) / 2) ** 2))


@pytest.mark.parametrize("method", ["cosine", "linear", "gaussian"])
def test_blend_profile__taper_is_flat_in_the_middle(method):
    p = blend_profile(64, method, taper_px=8)
    assert (p[8:56] == 1.0).all() and (p[:8] < 1).all() and (p > 0).all()
    np.testing.assert_allclose(p[:8], p[::-1][:8])


def test_blend_profile__cosine_taper_cross_fades_to_one():
    # Two tiles overlapping by exactly taper_px: their weights sum to 1 across the overlap.
    t = 16
    p = blend_profile(64, "cosine", taper_px=t)
    np.testing.assert_allclose(p[-t:] + p[:t], 1.0, rtol=1e-12)


def test_blend_profile__long_gaussian_stays_positive():
    assert (blend_profile(4096, "gaussian", sigma_frac=0.01) > 0).all()


def test_blend_weights__separable():
    w = blend_weights((6, 10), "cosine")
    np.testing.assert_allclose(w, np.outer(blend_profile(6), blend_profile(10)))


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"n": 0}, "length must be > 0"),
    ({"n": 8, "method": "hann"}, "blend method must be one of"),
    ({"n": 8, "taper_px": -1}, "taper_px must be >= 0"),
    ({"n": 8, "method": "gaussian", "sigma_frac": 0}, "sigma_frac must be > 0"),
])
def test_blend_profile__bad_input(kwargs, match):
    with pytest.raises(TilingError, match=match):
        blend_profile(**kwargs)


def test_tile_weights__core_is_indicator():
    tiles = TileGrid((50, 50), tile_size=20, overlap=6)
    t = tiles[1, 1]
    w = tile_weights(t, "core")
    assert w.sum() == t.core.width * t.core.height
    assert (w[t.core_slices] == 1).all()
    with pytest.raises(TilingError, match="blend must be one of"):
        tile_weights(t, "median")  # type: ignore[arg-type]


def test_tile_weights__padded_tile_is_cropped_full_window():
    tiles = TileGrid((20, 20), tile_size=32, edge="pad")
    (t,) = list(tiles)
    np.testing.assert_array_equal(tile_weights(t, "cosine"), blend_weights((32, 32))[:20, :20])


def test_weigh__nan_is_missing():
    v = np.array([[[1.0, np.nan], [np.inf, 4.0]]])
    w = np.full((2, 2), 0.5)
    weighted, weight = weigh(v, w)
    np.testing.assert_array_equal(weighted, [[[0.5, 0.0], [0.0, 2.0]]])
    np.testing.assert_array_equal(weight, [[[0.5, 0.0], [0.0, 0.5]]])
    weighted, weight = weigh(np.ones((3, 2, 2), np.float32), w)
    assert weight is w and weighted.dtype == np.float64
    with pytest.raises(InputError, match="values must have shape"):
        weigh(np.ones((2, 2)), w)


def test_weigh__float32_and_sum_overflow():
    w = np.full((2, 2), 0.5, dtype=np.float32)
    v = np.array([[[1.0, np.nan], [-np.inf, 4.0]]], dtype=np.float32)
    weighted, weight = weigh(v, w, dtype="float32")
    assert weighted.dtype == np.float32 and weight.dtype == np.float32
    np.testing.assert_array_equal(weighted, [[[0.5, 0.0], [0.0, 2.0]]])
    np.testing.assert_array_equal(weight, [[[0.5, 0.0], [0.0, 0.5]]])
    # Terms finite, their sum not (overflows float32): still "all finite", nothing zeroed.
    big = np.full((1, 2, 2), 3e38, dtype=np.float32)
    weighted, weight = weigh(big, np.ones((2, 2), np.float32), dtype="float32")
    with np.errstate(over="ignore"):
        assert np.isinf(weighted.sum())  # the fast all-finite test cannot decide here
    assert weight.shape == (2, 2)
    np.testing.assert_array_equal(weighted, big)
    # float64 (the default) multiplies the float32 input exactly as a float64 cast would.
    x = np.random.default_rng(0).random((2, 3, 3)).astype(np.float32)
    ww = np.random.default_rng(1).random((3, 3))
    np.testing.assert_array_equal(weigh(x, ww)[0], x.astype(np.float64) * ww)
    with pytest.raises(InputError, match="float64 or float32"):
        weigh(x, ww, dtype="float16")


def test_accumulate_and_normalise__nan_neighbour_does_not_erase():
    acc = np.zeros((1, 1, 3))
    wsum = np.zeros_like(acc)
    accumulate(acc, wsum, np.array([[[1.0, np.nan, np.nan]]]), np.array([[1.0, 1.0, 1.0]]))
    accumulate(acc, wsum, np.array([[[3.0, 5.0, np.nan]]]), np.array([[1.0, 0.25, 1.0]]))
    out = normalise(acc, wsum, fill=-1.0)
    np.testing.assert_array_equal(out, [[[2.0, 5.0, -1.0]]])
    assert np.isnan(normalise(acc, wsum)[0, 0, 2])
    same = normalise(acc, wsum, out=acc)
    assert same is acc
    with pytest.raises(InputError, match="same shape"):
        normalise(acc, wsum[..., :2])


def test_blend_tiles__bad_predictions():
    tiles = TileGrid((20, 20), tile_size=10)
    with pytest.raises(InputError, match="prediction of tile"):
        blend_tiles((20, 20), tiles, [np.ones((9, 10))] * len(tiles))
    with pytest.raises(ValueError):
        blend_tiles((20, 20), tiles, [np.ones((10, 10))])  # too few predictions
    out = blend_tiles((20, 20), tiles, [np.full((10, 10), 2.0)] * len(tiles), "gaussian")
    assert out.shape == (1, 20, 20) and np.allclose(out, 2.0)


def test_sum_is_finite():
    assert sum_is_finite(np.ones((3, 4), np.float32))
    assert not sum_is_finite(np.array([1.0, np.nan]))
    assert not sum_is_finite(np.array([-np.inf, 2.0], np.float32))
    assert not sum_is_finite(np.array([np.inf, -np.inf]))
    assert not sum_is_finite(np.full(4, 3e38, np.float32))  # overflow: not a proof either way
