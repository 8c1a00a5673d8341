"""Tiled processing of scenes larger than memory.

* :mod:`~glacierkit.tiling.grid`: overlapping tiles whose core windows partition the scene.
* :mod:`~glacierkit.tiling.blend`: blend weight windows and weighted accumulation.
* :mod:`~glacierkit.tiling.run`: the scene runner (rasters → function → blended COG).

Never imports torch.
"""

from glacierkit.tiling.blend import (
    BLEND_METHODS,
    TILE_BLENDS,
    BlendMethod,
    TileBlend,
    accumulate,
    blend_profile,
    blend_tiles,
    blend_weights,
    normalise,
    sum_is_finite,
    tile_weights,
    weigh,
)
from glacierkit.tiling.grid import EdgeMode, Tile, TileGrid
from glacierkit.tiling.run import (
    RowSink,
    SerialExecutor,
    ThreadExecutor,
    TiledRun,
    TileExecutor,
    TileFunction,
    make_executor,
    run_tiled,
)

__all__ = [
    "BLEND_METHODS",
    "TILE_BLENDS",
    "BlendMethod",
    "EdgeMode",
    "RowSink",
    "SerialExecutor",
    "ThreadExecutor",
    "Tile",
    "TileBlend",
    "TileExecutor",
    "TileFunction",
    "TileGrid",
    "TiledRun",
    "accumulate",
    "blend_profile",
    "blend_tiles",
    "blend_weights",
    "make_executor",
    "normalise",
    "run_tiled",
    "sum_is_finite",
    "tile_weights",
    "weigh",
]
