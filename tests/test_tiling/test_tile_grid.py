"""TileGrid: placement, edge policies, core windows and bad input."""

from __future__ import annotations

import numpy as np
import pytest
from rasterio.windows import Window

from glacierkit.errors import TilingError
from glacierkit.tiling import Tile, TileGrid


def _count(shape: tuple[int, int], windows: list[Window]) -> np.ndarray:
    n = np.zeros(shape, dtype=int)
    for w in windows:
        n[w.row_off:w.row_off + w.height, w.col_off:w.col_off + w.width] += 1
    return n


def test_tile_grid__regular_clamped():
    tiles = TileGrid((1000, 700), tile_size=256, overlap=32)
    assert tiles.grid_shape == (5, 3) and len(tiles) == 15
    assert tiles.row_starts() == (0, 224, 448, 672, 744)  # last row clamped to 1000 - 256
    last = tiles[4, 2]
    assert last.window == Window(444, 744, 256, 256) and last.pad == (0, 0)
    assert last.read_window == last.window
    assert [t.index for t in tiles][:4] == [(0, 0), (0, 1), (0, 2), (1, 0)]
    assert (_count((1000, 700), [t.core for t in tiles]) == 1).all()


def test_tile_grid__core_is_middle_of_overlap():
    tiles = TileGrid((100, 100), tile_size=40, overlap=10)  # starts 0, 30, 60
    assert [tiles[0, j].core.col_off for j in range(3)] == [0, 35, 65]
    assert tiles[0, 2].core.col_off + tiles[0, 2].core.width == 100


def test_tile_grid__padded_edges():
    tiles = TileGrid((100, 130), tile_size=64, overlap=16, edge="pad")
    assert tiles.grid_shape == (2, 3)
    t = tiles[1, 2]
    assert t.window == Window(96, 48, 64, 64)
    assert t.read_window == Window(96, 48, 34, 52)
    assert t.pad == (12, 30) and t.shape == (64, 64)
    assert t.read_slices == (slice(0, 52), slice(0, 34))
    assert (_count((100, 130), [t.core for t in tiles]) == 1).all()


def test_tile_grid__padded_scene_smaller_than_tile():
    tiles = TileGrid((30, 50), tile_size=64, overlap=8, edge="pad")
    assert len(tiles) == 1
    (t,) = list(tiles)
    assert t.core == Window(0, 0, 50, 30) and t.pad == (34, 14)


def test_tile_grid__exact_fit_and_rectangular_tiles():
    tiles = TileGrid((64, 96), tile_size=(64, 32), overlap=(0, 0))
    assert tiles.grid_shape == (1, 3)
    assert all(t.core == t.window for t in tiles)


def test_tile_grid__core_slices_relative_to_tile():
    tiles = TileGrid((100, 100), tile_size=40, overlap=10)
    t = tiles[1, 1]
    rs, cs = t.core_slices
    assert (rs.start + t.window.row_off, cs.start + t.window.col_off) == (t.core.row_off,
                                                                           t.core.col_off)
    assert (rs.stop - rs.start, cs.stop - cs.start) == (t.core.height, t.core.width)


def test_tile_grid__tiles_are_frozen_values():
    tiles = TileGrid((100, 100), tile_size=40, overlap=10)
    assert tiles[1, 1] == TileGrid((100, 100), tile_size=40, overlap=10)[1, 1]
    assert isinstance(hash(tiles[0, 0]), int)
    with pytest.raises(AttributeError):
        tiles[0, 0].index = (9, 9)  # type: ignore[misc]
    assert isinstance(tiles[0, 0], Tile)
    with pytest.raises(IndexError):
        tiles[3, 0]


def test_tile_grid__numpy_ints_accepted():
    tiles = TileGrid((np.int64(50), np.int64(60)), tile_size=np.int32(20), overlap=np.int64(4))
    assert tiles.tile_size == (20, 20) and tiles.shape == (50, 60)


@pytest.mark.parametrize("tile_size", [0, -3, (16, 0)])
def test_tile_grid__non_positive_tile_size(tile_size):
    with pytest.raises(TilingError, match="tile_size must be > 0"):
        TileGrid((100, 100), tile_size=tile_size)


def test_tile_grid__negative_overlap():
    with pytest.raises(TilingError, match="overlap must be >= 0"):
        TileGrid((100, 100), tile_size=32, overlap=-1)


@pytest.mark.parametrize("overlap", [32, 40, (0, 32)])
def test_tile_grid__overlap_not_smaller_than_tile(overlap):
    with pytest.raises(TilingError, match="must be smaller than tile_size"):
        TileGrid((100, 100), tile_size=32, overlap=overlap)


def test_tile_grid__tile_larger_than_scene_clamped():
    with pytest.raises(TilingError, match=r"larger than the scene.*edge='pad'"):
        TileGrid((100, 50), tile_size=64)


@pytest.mark.parametrize("shape", [(0, 10), (10, 0), (-1, 5)])
def test_tile_grid__zero_size_scene(shape):
    with pytest.raises(TilingError, match="nothing to tile"):
        TileGrid(shape, tile_size=8)


@pytest.mark.parametrize("bad", [1.5, "64", (1, 2, 3), True])
def test_tile_grid__non_integer_sizes(bad):
    with pytest.raises(TilingError, match="int or a pair of ints"):
        TileGrid((100, 100), tile_size=bad)


def test_tile_grid__unknown_edge_mode():
    with pytest.raises(TilingError, match="edge must be"):
        TileGrid((100, 100), tile_size=32, edge="wrap")  # type: ignore[arg-type]


def test_tiling_errors_are_value_errors():
    with pytest.raises(ValueError):
        TileGrid((100, 100), tile_size=32, overlap=32)
