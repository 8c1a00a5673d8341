"""Inputs of the velocity pipeline: image pair, ignore mask, stable ground, DEM on the node grid.

Every function here either works on rasters already on one grid or says how to put them there;
the DEM is the one input that is resampled, explicitly (it may come on any grid), and that is
logged and reported.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Literal

import numpy as np

from glacierkit.errors import InputError
from glacierkit.io import Grid, Raster, check_or_align, open_raster, rasterize, read_vector
from glacierkit.io.reproject import reproject
from glacierkit.velocity.prefilter import PrefilterName, apply_prefilter
from glacierkit.velocity.sar import lee_filter, log_amplitude

log = logging.getLogger(__name__)

ImageKind = Literal["optical", "sar"]


def read_pair(reference: str | os.PathLike[str], secondary: str | os.PathLike[str], *,
              band: int = 1, align: Literal["reference"] | None = None,
              pixel_size_m: float | None = None) -> tuple[Raster, Raster]:
    """Read one band of each image and check that they share a grid.

    Args:
        reference: Earlier image.
        secondary: Later image.
        band: 1-based band to track in both files.
        align: ``None`` (default): different grids raise
            :class:`~glacierkit.errors.GridMismatchError`; ``"reference"``: resample the
            secondary onto the reference grid (bilinear, logged).
        pixel_size_m: For non-georeferenced images (plain PNG/JPEG).

    Returns:
        ``(reference, secondary)`` rasters ``(1, rows, cols)`` float32, NaN nodata.
    """
    ref = open_raster(reference, bands=[band], pixel_size_m=pixel_size_m)
    sec = open_raster(secondary, bands=[band], pixel_size_m=pixel_size_m)
    pair = check_or_align({"reference": ref, "secondary": sec}, align=align)
    return pair["reference"], pair["secondary"]


def prepare_image(image: np.ndarray, *, kind: ImageKind = "optical",
                  speckle_filter: bool = False, prefilter: PrefilterName = "none",
                  **prefilter_kwargs: float) -> np.ndarray:
    """Turn one image ``(rows, cols)`` into the matching signal.

    SAR amplitude: optional Lee filter, then natural-log amplitude. Then the pre-filter.

    Raises:
        InputError: the image holds no valid pixel or no texture at all.
    """
    a = np.asarray(image, dtype=np.float64)
    valid = np.isfinite(a)
    if not valid.any():
        raise InputError("the image is entirely nodata; nothing can be tracked.")
    if float(np.nanstd(a)) == 0.0:
        raise InputError("the image is textureless (constant); offset tracking needs surface "
                         "texture.")
    if kind == "sar":
        if speckle_filter:
            a = lee_filter(a)
        a = log_amplitude(a)
    elif kind != "optical":
        raise InputError(f"kind must be 'optical' or 'sar'; got {kind!r}.")
    return apply_prefilter(a, prefilter, **prefilter_kwargs)


def polygon_mask(path: str | os.PathLike[str], grid: Grid, *, what: str,
                 all_touched: bool = False) -> np.ndarray:
    """Rasterize a polygon file onto ``grid`` (boolean), with a message naming the file.

    Raises:
        InputError: the polygons do not overlap the grid.
    """
    gdf = read_vector(path)
    try:
        return rasterize(gdf, grid, all_touched=all_touched, name=f"{what} {Path(path).name}"
                         ).astype(bool)
    except InputError as e:
        raise InputError(f"{what} polygons {path}: {e}") from e


def stable_mask(grid: Grid, valid: np.ndarray, *, stable: str | os.PathLike[str] | None = None,
                outlines: str | os.PathLike[str] | None = None,
                min_nodes: int = 1) -> tuple[np.ndarray, str]:
    """Stable-ground nodes: inside ``stable`` polygons, or outside glacier ``outlines``.

    Args:
        grid: Node grid.
        valid: Valid nodes ``(n_rows, n_cols)`` (boolean).
        stable: Stable-ground polygons (rock, bedrock).
        outlines: Glacier outlines; everything outside them counts as stable.
        min_nodes: Fewest valid stable nodes accepted.

    Returns:
        ``(mask, description)``.

    Raises:
        InputError: no source given, polygons miss the image, or they cover fewer than
            ``min_nodes`` valid nodes (the message names the file and the overlap found).
    """
    if (stable is None) == (outlines is None):
        raise InputError("give exactly one of stable (stable-ground polygons) or outlines "
                         "(glacier outlines whose outside is stable).")
    if stable is not None:
        mask = polygon_mask(stable, grid, what="stable-ground", all_touched=False)
        desc, src = f"inside {Path(stable).name}", stable
    else:
        mask = ~polygon_mask(outlines, grid, what="glacier-outline", all_touched=True)  # type: ignore[arg-type]
        desc, src = f"outside {Path(outlines).name}", outlines  # type: ignore[arg-type]
    n_in = int(mask.sum())
    n_valid = int((mask & valid).sum())
    if n_valid < min_nodes:
        raise InputError(
            f"stable ground from {src} covers {n_in} node(s) of the {grid.width}×{grid.height} "
            f"node grid, of which {n_valid} hold a valid offset (need ≥ {min_nodes}). Check that "
            f"the polygons overlap the image where it is textured and cloud-free."
        )
    return mask, desc


def dem_on_grid(path: str | os.PathLike[str], grid: Grid) -> tuple[np.ndarray, dict[str, str]]:
    """Read a DEM (any grid, any CRS) and resample it onto ``grid`` (bilinear; logged).

    Returns:
        ``(elevation (rows, cols) float32 with NaN, report)``.
    """
    dem = open_raster(path, bands=[1])
    info = {"path": str(path), "source_grid": dem.grid.describe()}
    if dem.grid.almost_equals(grid):
        info["resampling"] = "none (already on the node grid)"
        return dem.data[0], info
    if dem.grid.crs is not None and dem.grid.crs.is_geographic:
        log.info("DEM %s is in a geographic CRS; it is reprojected to the tracking CRS", path)
    out = reproject(dem, grid, resampling="bilinear")
    info["resampling"] = f"bilinear onto the node grid ({grid.describe()})"
    if not np.isfinite(out.data).any():
        raise InputError(f"DEM {path} does not overlap the images ({dem.grid.describe()} vs "
                         f"{grid.describe()}).")
    return out.data[0], info
