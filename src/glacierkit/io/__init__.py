"""Georeferenced I/O: grids, rasters, vectors, the atomic COG writer, explicit reprojection.

Never imports torch. Nothing here resamples except :mod:`glacierkit.io.reproject`.
"""

from glacierkit.io.grid import Bounds, Grid, check_same_grid, check_window
from glacierkit.io.raster import Raster, RasterReader, open_raster, read_grid
from glacierkit.io.reproject import align, check_or_align, reproject
from glacierkit.io.vector import (
    area_km2,
    polygonize,
    rasterize,
    read_vector,
    to_grid_crs,
    write_vector,
)
from glacierkit.io.writer import RasterWriter, check_output_path, open_writer, write_raster

__all__ = [
    "Bounds",
    "Grid",
    "Raster",
    "RasterReader",
    "RasterWriter",
    "align",
    "area_km2",
    "check_or_align",
    "check_output_path",
    "check_same_grid",
    "check_window",
    "open_raster",
    "open_writer",
    "polygonize",
    "rasterize",
    "read_grid",
    "read_vector",
    "reproject",
    "to_grid_crs",
    "write_raster",
    "write_vector",
]
