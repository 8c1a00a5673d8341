from __future__ import annotations

import dataclasses

import pytest
from affine import Affine
from rasterio.windows import Window

from glacierkit.errors import CRSError, GridMismatchError, InputError, WindowError
from glacierkit.io.grid import Grid, check_same_grid, check_window


def utm_grid(shape=(100, 200), res=15.0, x0=465060.0, y0=6681585.0, epsg=32607) -> Grid:
    return Grid(crs=epsg, transform=Affine(res, 0, x0, 0, -res, y0), shape=shape)


def test_grid_is_frozen_and_hashable():
    g = utm_grid()
    with pytest.raises(dataclasses.FrozenInstanceError):
        g.shape = (1, 1)  # type: ignore[misc]
    assert hash(g) == hash(utm_grid())
    assert g == utm_grid()
    assert g != utm_grid(res=30.0)


def test_grid_properties():
    g = utm_grid()
    assert g.epsg == 32607
    assert g.res == (15.0, 15.0)
    assert (g.height, g.width) == (100, 200)
    assert g.bounds == (465060.0, 6681585.0 - 1500.0, 465060.0 + 3000.0, 6681585.0)
    assert g.is_north_up and g.is_georeferenced


def test_window_bounds_round_trip():
    g = utm_grid()
    w = Window(10, 20, 30, 40)
    b = g.window_bounds(w)
    assert b == (465060.0 + 150, 6681585.0 - 900, 465060.0 + 600, 6681585.0 - 300)
    assert g.bounds_window(b) == w


def test_window_grid_sub_transform():
    g = utm_grid()
    sub = g.window_grid(Window(10, 20, 30, 40))
    assert sub.shape == (40, 30)
    assert sub.bounds == g.window_bounds(Window(10, 20, 30, 40))


@pytest.mark.parametrize("window", [Window(0, 0, 0, 5), Window(0, 0, 5, 0),
                                    Window(190, 0, 20, 5), Window(-1, 0, 5, 5),
                                    Window(0.5, 0, 5, 5)])
def test_bad_windows(window):
    with pytest.raises(WindowError):
        check_window(window, (100, 200))


def test_bounds_window_outside_and_empty():
    g = utm_grid()
    with pytest.raises(WindowError, match="do not intersect"):
        g.bounds_window((0, 0, 10, 10))
    with pytest.raises(WindowError, match="empty"):
        g.bounds_window((465100, 6680000, 465100, 6680100))


def test_invalid_grids():
    with pytest.raises(InputError):
        Grid(crs=32607, transform=Affine(15, 0, 0, 0, -15, 0), shape=(0, 10))
    with pytest.raises(InputError):
        Grid(crs=32607, transform=Affine(0, 0, 0, 0, 0, 0), shape=(10, 10))
    with pytest.raises(CRSError):
        Grid(crs="not a crs", transform=Affine(15, 0, 0, 0, -15, 0), shape=(10, 10))


def test_check_same_grid_message_names_both():
    a, b = utm_grid(), utm_grid(res=30.0, shape=(50, 100))
    with pytest.raises(GridMismatchError) as ei:
        check_same_grid({"reference.tif": a, "secondary.tif": b})
    msg = str(ei.value)
    assert "reference.tif" in msg and "secondary.tif" in msg
    assert "resolution" in msg and "align=" in msg
    assert "30×30" in msg and "15×15" in msg
    check_same_grid({"a": a, "b": utm_grid()})  # same grid: no error


def test_check_same_grid_crs_only():
    with pytest.raises(GridMismatchError, match="CRS"):
        check_same_grid({"a": utm_grid(), "b": utm_grid(epsg=32608)})


def test_almost_equals_catches_accumulated_resolution_drift():
    a = utm_grid(shape=(10000, 10000))
    b = Grid(crs=32607, transform=Affine(15.0001, 0, 465060.0, 0, -15.0001, 6681585.0),
             shape=(10000, 10000))
    assert not a.almost_equals(b)


def test_pixel_grid():
    g = Grid.pixel_grid((10, 20), pixel_size_m=10.0)
    assert not g.is_georeferenced and g.epsg is None
    assert g.res == (10.0, 10.0)
    with pytest.raises(InputError):
        Grid.pixel_grid((10, 20), pixel_size_m=0)


def test_xy_rowcol_inverse():
    g = utm_grid()
    x, y = g.xy(3, 7)
    assert (float(x), float(y)) == (465060.0 + 7.5 * 15, 6681585.0 - 3.5 * 15)
    r, c = g.rowcol(x, y)
    assert (float(r), float(c)) == (3.5, 7.5)


def test_from_bounds_covers():
    g = Grid.from_bounds((0, 0, 100, 45), 10, 32607)
    assert g.shape == (5, 10)
    assert g.bounds == (0, -5, 100, 45)
