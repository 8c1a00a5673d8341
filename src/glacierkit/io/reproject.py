"""Reprojection and alignment: the only place in glacierkit where rasters are warped.

Nothing else resamples. Functions that take several rasters call :func:`check_or_align`,
which raises :class:`~glacierkit.errors.GridMismatchError` when the grids differ, unless the
caller opted in with ``align=``; every warp is logged (source grid, target grid, resampling).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import replace

import numpy as np
from rasterio.enums import Resampling
from rasterio.warp import reproject as _rio_reproject

from glacierkit.errors import CRSError, InputError
from glacierkit.io.grid import Grid, check_same_grid
from glacierkit.io.raster import Raster

log = logging.getLogger(__name__)

_RESAMPLING = {
    "nearest": Resampling.nearest,
    "bilinear": Resampling.bilinear,
    "cubic": Resampling.cubic,
    "cubic_spline": Resampling.cubic_spline,
    "lanczos": Resampling.lanczos,
    "average": Resampling.average,
    "mode": Resampling.mode,
}


def _resampling(name: str) -> Resampling:
    try:
        return _RESAMPLING[name]
    except KeyError:
        raise InputError(f"resampling={name!r}; choose one of {sorted(_RESAMPLING)}.") from None


def reproject(raster: Raster, target: Grid | Raster, *, resampling: str = "bilinear") -> Raster:
    """Warp ``raster`` onto ``target``'s grid (explicitly; logged).

    Args:
        raster: Source raster (any dtype; nodata honoured through the valid mask).
        target: Target :class:`Grid`, or a raster whose grid is used.
        resampling: ``"nearest"``, ``"bilinear"`` (default), ``"cubic"``, ``"cubic_spline"``,
            ``"lanczos"``, ``"average"`` or ``"mode"`` (use nearest/mode for classes).

    Returns:
        A new float raster (NaN nodata) on the target grid; integer sources with
        ``resampling="nearest"`` or ``"mode"`` keep their dtype and valid mask.

    Raises:
        CRSError: if either grid is not georeferenced (pixel grids cannot be warped).
    """
    dst_grid = target.grid if isinstance(target, Raster) else target
    src_grid = raster.grid
    if not (src_grid.is_georeferenced and dst_grid.is_georeferenced):
        raise CRSError("reproject needs georeferenced source and target grids; a plain image "
                       "on a pixel grid cannot be warped.")
    rs = _resampling(resampling)
    keep_int = (not np.issubdtype(raster.data.dtype, np.floating)
                and resampling in ("nearest", "mode"))
    if keep_int:
        src = raster.data
        dst_dtype = src.dtype
        nodata = raster.nodata if raster.nodata is not None else 0
        src = np.where(raster.valid, src, nodata).astype(dst_dtype)
    else:
        src = np.where(raster.valid, raster.data, np.nan).astype(np.float32, copy=False)
        dst_dtype = np.float32
        nodata = np.nan
    out = np.full((raster.count, *dst_grid.shape), nodata, dtype=dst_dtype)
    for b in range(raster.count):
        _rio_reproject(source=src[b], destination=out[b], src_transform=src_grid.transform,
                       src_crs=src_grid.crs, src_nodata=nodata,
                       dst_transform=dst_grid.transform, dst_crs=dst_grid.crs,
                       dst_nodata=nodata, resampling=rs)
    valid = (out != nodata) if keep_int else ~np.isnan(out)
    log.info("reprojected %s: %s -> %s (%s)", raster.path or "raster", src_grid.describe(),
             dst_grid.describe(), resampling)
    return replace(raster, data=out, grid=dst_grid, valid=valid,
                   nodata=raster.nodata if keep_int else float("nan"))


def align(rasters: Mapping[str, Raster], to: str | Grid, *,
          resampling: str = "bilinear") -> dict[str, Raster]:
    """Put several rasters on one grid: the grid of ``rasters[to]`` or an explicit Grid.

    Rasters already on the target grid are returned unchanged; the others are warped with
    :func:`reproject` (and logged).
    """
    if isinstance(to, str):
        if to not in rasters:
            raise InputError(f"align={to!r} is not one of the inputs {list(rasters)}.")
        target = rasters[to].grid
    else:
        target = to
    out = {}
    for name, r in rasters.items():
        out[name] = r if r.grid.almost_equals(target) else reproject(r, target,
                                                                     resampling=resampling)
    return out


def check_or_align(rasters: Mapping[str, Raster], align: str | Grid | None = None, *,
                   resampling: str = "bilinear") -> dict[str, Raster]:
    """Return the rasters on one grid; refuse mismatched grids unless ``align`` is given.

    Args:
        rasters: ``{name: raster}``; names appear in the error message.
        align: ``None`` (default: grids must match, else :class:`GridMismatchError`), the
            name of one input whose grid becomes the target, or a :class:`Grid`.
        resampling: Used only when aligning.
    """
    if align is None:
        check_same_grid({k: r.grid for k, r in rasters.items()})
        return dict(rasters)
    return _align(rasters, align, resampling=resampling)


_align = align
