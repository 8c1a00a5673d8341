"""Property: window → bounds → window round-trips on random north-up grids."""

from __future__ import annotations

from affine import Affine
from hypothesis import given, settings
from hypothesis import strategies as st
from rasterio.windows import Window

from glacierkit.io.grid import Grid


@st.composite
def grid_and_window(draw):
    rows = draw(st.integers(1, 5000))
    cols = draw(st.integers(1, 5000))
    res = draw(st.sampled_from([0.5, 1.0, 10.0, 15.0, 30.0, 0.000833333333, 120.0]))
    x0 = draw(st.floats(-1e6, 1e6, allow_nan=False))
    y0 = draw(st.floats(-1e7, 1e7, allow_nan=False))
    g = Grid(crs=32607, transform=Affine(res, 0, x0, 0, -res, y0), shape=(rows, cols))
    r0 = draw(st.integers(0, rows - 1))
    c0 = draw(st.integers(0, cols - 1))
    h = draw(st.integers(1, rows - r0))
    w = draw(st.integers(1, cols - c0))
    return g, Window(c0, r0, w, h)


@given(grid_and_window())
@settings(max_examples=300, deadline=None)
def test_window_bounds_window_round_trip(gw):
    g, w = gw
    assert g.bounds_window(g.window_bounds(w)) == w


@given(grid_and_window())
@settings(max_examples=100, deadline=None)
def test_window_grid_bounds_match(gw):
    g, w = gw
    sub = g.window_grid(w)
    for a, b in zip(sub.bounds, g.window_bounds(w), strict=True):
        assert abs(a - b) <= 1e-6 * max(1.0, abs(b))
