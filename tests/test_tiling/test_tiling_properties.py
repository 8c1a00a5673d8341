"""Hypothesis properties: tiles cover every pixel, cores partition the scene, blend weights sum
to 1, and window → bounds → window round-trips for tile windows on random north-up grids."""

from __future__ import annotations

import numpy as np
import pytest
from affine import Affine
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from rasterio.windows import Window

from glacierkit.errors import TilingError
from glacierkit.io import Grid
from glacierkit.tiling import TILE_BLENDS, TileGrid, blend_tiles, tile_weights


@st.composite
def tilings(draw, max_side: int = 160):
    rows = draw(st.integers(1, max_side))
    cols = draw(st.integers(1, max_side))
    th = draw(st.integers(1, 48))
    tw = draw(st.integers(1, 48))
    oh = draw(st.integers(0, th - 1))
    ow = draw(st.integers(0, tw - 1))
    edge = draw(st.sampled_from(["clamp", "pad"]))
    if edge == "clamp":
        assume(th <= rows and tw <= cols)
    return TileGrid((rows, cols), tile_size=(th, tw), overlap=(oh, ow), edge=edge)


def _count(shape, windows) -> np.ndarray:
    n = np.zeros(shape, dtype=int)
    for w in windows:
        assert w.row_off >= 0 and w.col_off >= 0
        assert w.row_off + w.height <= shape[0] and w.col_off + w.width <= shape[1]
        n[w.row_off:w.row_off + w.height, w.col_off:w.col_off + w.width] += 1
    return n


@given(tilings())
@settings(max_examples=150, deadline=None)
def test_tiles_cover_every_pixel(tiles: TileGrid):
    assert (_count(tiles.shape, [t.read_window for t in tiles]) >= 1).all()


@given(tilings())
@settings(max_examples=150, deadline=None)
def test_core_windows_partition_the_scene(tiles: TileGrid):
    assert (_count(tiles.shape, [t.core for t in tiles]) == 1).all()


@given(tilings())
@settings(max_examples=150, deadline=None)
def test_tile_geometry_invariants(tiles: TileGrid):
    rows, cols = tiles.shape
    oh, ow = tiles.overlap
    starts = tiles.row_starts()
    assert list(starts) == sorted(set(starts))
    for t in tiles:
        w, r, c = t.window, t.read_window, t.core
        assert (w.height, w.width) == tiles.tile_size
        assert w.row_off == starts[t.index[0]]
        assert r == Window(w.col_off, w.row_off, min(w.width, cols - w.col_off),
                           min(w.height, rows - w.row_off))
        assert r.width > 0 and r.height > 0 and c.width > 0 and c.height > 0
        assert r.row_off <= c.row_off and c.row_off + c.height <= r.row_off + r.height
        assert r.col_off <= c.col_off and c.col_off + c.width <= r.col_off + r.width
        assert t.pad == (w.height - r.height, w.width - r.width)
        if tiles.edge == "clamp":
            assert t.pad == (0, 0)
        i, j = t.index
        if j > 0:  # neighbours overlap by at least the requested overlap
            left = tiles[i, j - 1].window
            assert left.col_off + left.width - w.col_off >= ow
        if i > 0:
            up = tiles[i - 1, j].window
            assert up.row_off + up.height - w.row_off >= oh


@given(tilings(max_side=96), st.sampled_from(TILE_BLENDS),
       st.floats(-1e4, 1e4, allow_nan=False, allow_subnormal=False))
@settings(max_examples=120, deadline=None)
def test_blending_a_constant_returns_it(tiles: TileGrid, method: str, value: float):
    preds = [np.full((1, *t.shape), value) for t in tiles]
    out = blend_tiles(tiles.shape, tiles, preds, method)
    np.testing.assert_allclose(out, value, rtol=1e-12, atol=1e-12)


@given(tilings(max_side=96), st.sampled_from(TILE_BLENDS),
       st.sampled_from([None, 0, 3, 16]))
@settings(max_examples=120, deadline=None)
def test_normalised_blend_weights_sum_to_one(tiles: TileGrid, method: str, taper_px):
    total = np.zeros(tiles.shape)
    for t in tiles:
        w = tile_weights(t, method, taper_px=taper_px)
        assert w.shape == (t.read_window.height, t.read_window.width)
        assert (w >= 0).all()
        if method != "core":
            assert (w > 0).all()  # strictly positive: accumulated weights never vanish
        r = t.read_window
        total[r.row_off:r.row_off + r.height, r.col_off:r.col_off + r.width] += w
    assert (total > 0).all()
    norm_sum = np.zeros(tiles.shape)
    for t in tiles:
        r = t.read_window
        sl = (slice(r.row_off, r.row_off + r.height), slice(r.col_off, r.col_off + r.width))
        norm_sum[sl] += tile_weights(t, method, taper_px=taper_px) / total[sl]
    np.testing.assert_allclose(norm_sum, 1.0, rtol=1e-12)


@given(tilings(max_side=80), st.sampled_from(TILE_BLENDS), st.integers(0, 2**32 - 1))
@settings(max_examples=60, deadline=None)
def test_blending_tiles_of_a_field_returns_the_field(tiles: TileGrid, method: str, seed: int):
    field = np.random.default_rng(seed).normal(size=(2, *tiles.shape))
    preds = []
    for t in tiles:
        p = np.full((2, *t.shape), 1e9)  # padding garbage must not leak into the scene
        r = t.read_window
        p[:, :r.height, :r.width] = field[:, r.row_off:r.row_off + r.height,
                                          r.col_off:r.col_off + r.width]
        preds.append(p)
    np.testing.assert_allclose(blend_tiles(tiles.shape, tiles, preds, method), field,
                               rtol=1e-12, atol=1e-12)


@st.composite
def grid_and_tiles(draw):
    rows = draw(st.integers(8, 3000))
    cols = draw(st.integers(8, 3000))
    # Projected grids (metres, UTM-sized coordinates) and geographic grids (degrees). Not
    # mixed: sub-millimetre pixels at 10^7 m coordinates are below float64 resolution.
    crs, res, x_max, y_max = draw(st.sampled_from([
        (32607, 0.5, 1e6, 1e7), (32607, 10.0, 1e6, 1e7), (32607, 15.0, 1e6, 1e7),
        (32607, 30.0, 1e6, 1e7), (3413, 120.0, 5e6, 5e6), (4326, 0.000833333333, 180, 90),
        (4326, 0.0002777777777777778, 180, 90)]))
    ry = draw(st.sampled_from([res, res * 2]))  # non-square pixels too
    x0 = draw(st.floats(-x_max, x_max, allow_nan=False))
    y0 = draw(st.floats(-y_max, y_max, allow_nan=False))
    grid = Grid(crs=crs, transform=Affine(res, 0, x0, 0, -ry, y0), shape=(rows, cols))
    tile = draw(st.integers(4, min(rows, cols)))
    overlap = draw(st.integers(0, tile - 1))
    tiles = TileGrid(grid.shape, tile_size=tile, overlap=overlap)
    n_rows, n_cols = tiles.grid_shape
    picks = draw(st.lists(st.tuples(st.integers(0, n_rows - 1), st.integers(0, n_cols - 1)),
                          min_size=1, max_size=6))
    return grid, [tiles[ij] for ij in {(0, 0), (n_rows - 1, n_cols - 1), *picks}]


@given(grid_and_tiles())
@settings(max_examples=150, deadline=None)
def test_tile_window_bounds_window_round_trip(gt):
    grid, tiles = gt
    for t in tiles:
        for w in (t.window, t.core):
            assert grid.bounds_window(grid.window_bounds(w)) == w
            sub = grid.window_grid(w)
            for a, b in zip(sub.bounds, grid.window_bounds(w), strict=True):
                assert abs(a - b) <= 1e-6 * max(1.0, abs(b))


@given(st.integers(1, 64), st.integers(1, 64), st.integers(-5, 80), st.integers(-5, 80))
@settings(max_examples=200, deadline=None)
def test_bad_parameters_raise_tiling_error_or_tile(rows, cols, tile, overlap):
    valid = tile > 0 and 0 <= overlap < tile and tile <= min(rows, cols)
    if valid:
        assert len(TileGrid((rows, cols), tile_size=tile, overlap=overlap)) >= 1
    else:
        with pytest.raises(TilingError):
            TileGrid((rows, cols), tile_size=tile, overlap=overlap)
