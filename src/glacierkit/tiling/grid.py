"""Tile grids: overlapping tiles over a raster, with core windows that partition it.

A :class:`TileGrid` lays tiles of ``tile_size`` pixels over a raster of shape
``(rows, cols)`` so that neighbouring tiles share ``overlap`` pixels. Along each axis the tile
starts are ``0, stride, 2 * stride, ...`` with ``stride = tile_size - overlap``; the last tile
is handled by the ``edge`` policy:

* ``"clamp"`` (default): the last tile is shifted inwards so that it ends exactly at the scene
  edge and stays full size (it then overlaps its neighbour by more than ``overlap``). Needs a
  scene at least one tile big.
* ``"pad"``: the last tile keeps its regular start and extends past the edge; only its
  :attr:`Tile.read_window` lies inside the scene, and :attr:`Tile.pad` says how many rows and
  columns were added at the bottom and right. A scene smaller than a tile becomes one padded
  tile.

Every tile also has a *core* window. Along each axis the boundary between two neighbouring
cores is the middle of their overlap, so each tile owns the part of the scene it sees with the
most context, and the core windows partition the scene exactly: every pixel lies in exactly one
core. Windows are :class:`rasterio.windows.Window` objects in scene pixels (``col_off,
row_off, width, height``); array slices are always ``(rows, cols)``.
"""

from __future__ import annotations

import operator
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

from rasterio.windows import Window

from glacierkit.errors import TilingError

EdgeMode = Literal["clamp", "pad"]
"""How the last tile along an axis is placed: shifted inwards or padded past the edge."""


@dataclass(frozen=True)
class Tile:
    """One tile of a :class:`TileGrid`. Immutable and hashable.

    Attributes:
        index: ``(tile_row, tile_col)`` position in the tile grid, 0-based.
        window: The full tile in scene pixels, always ``tile_size`` big; for a padded edge tile
            it extends past the bottom/right scene edge.
        read_window: ``window`` clipped to the scene: the pixels that can be read.
        core: The part of the scene this tile owns; the cores of all tiles partition the
            scene. Always inside ``read_window``.
    """

    index: tuple[int, int]
    window: Window
    read_window: Window
    core: Window

    @property
    def shape(self) -> tuple[int, int]:
        """Full tile shape ``(rows, cols)`` in pixels (what a tile function receives)."""
        return (int(self.window.height), int(self.window.width))

    @property
    def pad(self) -> tuple[int, int]:
        """Pixels added past the scene edge ``(bottom_rows, right_cols)``; ``(0, 0)`` inside."""
        return (int(self.window.height - self.read_window.height),
                int(self.window.width - self.read_window.width))

    @property
    def read_slices(self) -> tuple[slice, slice]:
        """``(rows, cols)`` slices of the readable part, relative to the tile's array."""
        return (slice(0, int(self.read_window.height)), slice(0, int(self.read_window.width)))

    @property
    def core_slices(self) -> tuple[slice, slice]:
        """``(rows, cols)`` slices of the core, relative to the tile's array."""
        r0 = int(self.core.row_off - self.window.row_off)
        c0 = int(self.core.col_off - self.window.col_off)
        return (slice(r0, r0 + int(self.core.height)), slice(c0, c0 + int(self.core.width)))


@dataclass(frozen=True)
class _Axis:
    """Tile placement along one axis: starts, readable ends and core boundaries."""

    starts: tuple[int, ...]
    ends: tuple[int, ...]
    bounds: tuple[int, ...]  # len(starts) + 1 core boundaries, from 0 to the scene size


def _as_pair(value: int | tuple[int, int], name: str) -> tuple[int, int]:
    try:
        if isinstance(value, bool):
            raise TypeError
        pair = [operator.index(value)] * 2 if not hasattr(value, "__len__") else list(value)
        if len(pair) != 2 or any(isinstance(v, bool) for v in pair):
            raise TypeError
        return (operator.index(pair[0]), operator.index(pair[1]))
    except TypeError:
        raise TilingError(f"{name} must be an int or a pair of ints (rows, cols); "
                          f"got {value!r}.") from None


def _axis(size: int, tile: int, overlap: int, edge: EdgeMode, name: str) -> _Axis:
    """Place tiles of ``tile`` px with ``overlap`` px along an axis of ``size`` px."""
    stride = tile - overlap
    if tile > size and edge == "clamp":
        raise TilingError(
            f"tile_size {tile} px is larger than the scene's {name} ({size} px) with "
            f"edge='clamp'. Use a tile_size of at most {size} px, or edge='pad' to pad the "
            f"scene up to one tile."
        )
    if edge == "clamp":
        starts = [*range(0, size - tile, stride), size - tile]
    else:
        n = max(1, -(-(size - tile) // stride) + 1)
        starts = [i * stride for i in range(n)]
    ends = [min(s + tile, size) for s in starts]
    # Core boundary between tiles i-1 and i: the middle of their overlap [s_i, s_{i-1} + tile).
    inner = [(starts[i] + starts[i - 1] + tile) // 2 for i in range(1, len(starts))]
    return _Axis(tuple(starts), tuple(ends), (0, *inner, size))


@dataclass(frozen=True)
class TileGrid:
    """Overlapping tiles over a raster of ``shape`` whose core windows partition it.

    Iterating yields :class:`Tile` objects in row-major order (all tiles of tile row 0, then
    tile row 1, ...); every tile of one tile row has the same ``window.row_off``.

    Args:
        shape: Scene shape ``(rows, cols)`` in pixels, both > 0.
        tile_size: Tile size in pixels, an int for square tiles or ``(rows, cols)``.
        overlap: Pixels shared by neighbouring tiles, an int or ``(rows, cols)``; each must be
            ``>= 0`` and smaller than the tile size along its axis. Choose it from the
            receptive field of the tile function (e.g. twice a filter's radius).
        edge: ``"clamp"`` (default) or ``"pad"``; see the module docstring.

    Raises:
        TilingError: for a non-positive tile size or scene shape, a negative overlap, an
            overlap not smaller than the tile size, or (with ``edge="clamp"``) a tile larger
            than the scene.

    Example:
        >>> tiles = TileGrid((1000, 700), tile_size=256, overlap=32)
        >>> tiles.grid_shape, len(tiles)
        ((5, 3), 15)
    """

    shape: tuple[int, int]
    tile_size: tuple[int, int] | int
    overlap: tuple[int, int] | int = field(default=0, kw_only=True)
    edge: EdgeMode = field(default="clamp", kw_only=True)
    _rows: _Axis = field(init=False, repr=False, compare=False)
    _cols: _Axis = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        shape = _as_pair(self.shape, "shape")
        tile = _as_pair(self.tile_size, "tile_size")
        overlap = _as_pair(self.overlap, "overlap")
        if shape[0] <= 0 or shape[1] <= 0:
            raise TilingError(f"the scene shape must be positive (rows, cols); got {shape}: "
                              f"there is nothing to tile.")
        if tile[0] <= 0 or tile[1] <= 0:
            raise TilingError(f"tile_size must be > 0 px; got {self.tile_size!r}.")
        if overlap[0] < 0 or overlap[1] < 0:
            raise TilingError(f"overlap must be >= 0 px; got {self.overlap!r}.")
        if overlap[0] >= tile[0] or overlap[1] >= tile[1]:
            raise TilingError(
                f"overlap {self.overlap!r} px must be smaller than tile_size "
                f"{self.tile_size!r} px (the stride tile_size - overlap must be >= 1 px); "
                f"use a larger tile_size or a smaller overlap."
            )
        if self.edge not in ("clamp", "pad"):
            raise TilingError(f"edge must be 'clamp' or 'pad'; got {self.edge!r}.")
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "tile_size", tile)
        object.__setattr__(self, "overlap", overlap)
        object.__setattr__(self, "_rows", _axis(shape[0], tile[0], overlap[0], self.edge,
                                                "height (rows)"))
        object.__setattr__(self, "_cols", _axis(shape[1], tile[1], overlap[1], self.edge,
                                                "width (cols)"))

    @property
    def grid_shape(self) -> tuple[int, int]:
        """Number of tiles ``(tile_rows, tile_cols)``."""
        return (len(self._rows.starts), len(self._cols.starts))

    def __len__(self) -> int:
        n_rows, n_cols = self.grid_shape
        return n_rows * n_cols

    def __iter__(self) -> Iterator[Tile]:
        for i in range(self.grid_shape[0]):
            yield from self.row(i)

    def __getitem__(self, index: tuple[int, int]) -> Tile:
        """Return the tile at ``(tile_row, tile_col)``."""
        i, j = index
        n_rows, n_cols = self.grid_shape
        if not (0 <= i < n_rows and 0 <= j < n_cols):
            raise IndexError(f"tile index {index} outside the tile grid {self.grid_shape}.")
        r, c = self._rows, self._cols
        th, tw = self.tile_size  # type: ignore[misc]
        return Tile(
            index=(i, j),
            window=Window(c.starts[j], r.starts[i], tw, th),
            read_window=Window(c.starts[j], r.starts[i], c.ends[j] - c.starts[j],
                               r.ends[i] - r.starts[i]),
            core=Window(c.bounds[j], r.bounds[i], c.bounds[j + 1] - c.bounds[j],
                        r.bounds[i + 1] - r.bounds[i]),
        )

    def row(self, i: int) -> list[Tile]:
        """All tiles of tile row ``i``, left to right."""
        return [self[i, j] for j in range(self.grid_shape[1])]

    def row_starts(self) -> tuple[int, ...]:
        """First scene row of each tile row (increasing)."""
        return self._rows.starts

    def row_ends(self) -> tuple[int, ...]:
        """One past the last readable scene row of each tile row (increasing)."""
        return self._rows.ends
