"""Training labels on a scene grid: from outline polygons or from a label raster.

Labels are ``uint8 (H, W)`` class indexes into the class names (default ``0`` off-glacier,
``1`` glacier) with :data:`IGNORE` (255) for pixels that must not count in the loss or the
metrics (outside an area of interest, scene nodata, unknown classes).

Torch-free.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import shapely
from rasterio import features

from glacierkit.errors import InputError
from glacierkit.io.grid import Grid, check_same_grid
from glacierkit.io.raster import open_raster
from glacierkit.io.vector import rasterize, read_vector, to_grid_crs

IGNORE = 255
"""Label value of pixels that are ignored by losses and metrics."""

DEFAULT_CLASSES = ("off_glacier", "glacier")


def _check_classes(classes: Sequence[str]) -> tuple[str, ...]:
    cl = tuple(str(c) for c in classes)
    if len(cl) < 2 or len(set(cl)) != len(cl) or len(cl) > IGNORE:
        raise InputError(f"classes must be 2 to 255 unique names; got {list(classes)}.")
    return cl


def labels_from_outlines(outlines: str | os.PathLike[str] | gpd.GeoDataFrame, grid: Grid, *,
                         classes: Sequence[str] = DEFAULT_CLASSES,
                         class_column: str | None = None, all_touched: bool = False,
                         ignore_outside: Any = None, layer: str | int | None = None
                         ) -> np.ndarray:
    """Burn outline polygons into a label map on ``grid``.

    Args:
        outlines: Vector file or GeoDataFrame of polygons (any CRS: reprojected to the grid
            CRS, logged by :func:`glacierkit.io.vector.to_grid_crs`).
        grid: The scene grid.
        classes: Class names; index 0 is the background (pixels outside every polygon).
        class_column: Attribute giving each polygon's class, as a class name or an integer
            index. Default: every polygon is class 1 (``classes[1]``, glacier).
        all_touched: Burn every pixel a polygon touches (default: pixels whose centre lies
            inside).
        ignore_outside: Optional area of interest: a shapely geometry in the grid's CRS, or a
            GeoDataFrame/GeoSeries/vector path in any CRS. Pixels whose centre is outside it
            become :data:`IGNORE`.
        layer: Layer of a multi-layer vector file.

    Returns:
        ``uint8 (H, W)`` on ``grid``: class indexes, :data:`IGNORE` outside ``ignore_outside``.

    Raises:
        InputError: polygons not overlapping the grid (the message gives both bounds), an
            unknown class value, or a missing class column.
    """
    cl = _check_classes(classes)
    name = str(outlines) if not isinstance(outlines, gpd.GeoDataFrame) else "outlines"
    gdf = outlines if isinstance(outlines, gpd.GeoDataFrame) else read_vector(outlines,
                                                                             layer=layer)
    gdf = gdf[gdf.geometry.notna() & ~gdf.geometry.is_empty]
    if len(gdf) == 0:
        raise InputError(f"{name} holds no non-empty geometry.")
    if class_column is None:
        values = np.ones(len(gdf), dtype=np.int64)
    else:
        if class_column not in gdf.columns:
            raise InputError(f"class_column={class_column!r} is not a column of {name}; "
                             f"columns are {[c for c in gdf.columns if c != 'geometry']}.")
        values = np.array([_class_index(v, cl, name, class_column)
                           for v in gdf[class_column].to_numpy()], dtype=np.int64)
    g = gpd.GeoDataFrame({"_cls": values}, geometry=gdf.geometry.values, crs=gdf.crs)
    labels = rasterize(g, grid, column="_cls", fill=0, all_touched=all_touched, dtype="uint8",
                       name=name)
    if ignore_outside is not None:
        inside = _aoi_mask(ignore_outside, grid)
        labels[~inside] = IGNORE
    return labels


def _class_index(v: Any, classes: tuple[str, ...], name: str, column: str) -> int:
    if isinstance(v, str):
        if v not in classes:
            raise InputError(f"{name}: {column}={v!r} is not one of the classes "
                             f"{list(classes)}.")
        return classes.index(v)
    try:
        i = int(v)
    except (TypeError, ValueError):
        raise InputError(f"{name}: {column}={v!r} is neither a class name nor an index.") from None
    if not 0 <= i < len(classes) or i != v:
        raise InputError(f"{name}: {column}={v!r} is not a class index 0..{len(classes) - 1} "
                         f"of {list(classes)}.")
    return i


def _aoi_mask(aoi: Any, grid: Grid) -> np.ndarray:
    if isinstance(aoi, str | os.PathLike):
        aoi = read_vector(aoi)
    if isinstance(aoi, gpd.GeoSeries):
        aoi = gpd.GeoDataFrame(geometry=aoi)
    if isinstance(aoi, gpd.GeoDataFrame):
        geoms = list(to_grid_crs(aoi, grid, name="ignore_outside").geometry.values)
    elif isinstance(aoi, shapely.Geometry):
        geoms = [aoi]
    else:
        raise InputError(f"ignore_outside must be a shapely geometry (grid CRS), a "
                         f"GeoDataFrame/GeoSeries or a vector path; got {type(aoi).__name__}.")
    geoms = [g for g in geoms if g is not None and not g.is_empty]
    if not geoms:
        return np.zeros(grid.shape, dtype=bool)
    return features.rasterize([(g, 1) for g in geoms], out_shape=grid.shape,
                              transform=grid.transform, fill=0, dtype="uint8").astype(bool)


def labels_from_raster(path: str | os.PathLike[str], grid: Grid, *,
                       mapping: Mapping[int, int] | None = None,
                       n_classes: int | None = None) -> np.ndarray:
    """Read a one-band label raster that lies on ``grid``.

    Args:
        path: Label GeoTIFF (integer class values; its nodata becomes :data:`IGNORE`).
        grid: The scene grid; the raster must be on it exactly (no resampling of labels).
        mapping: ``{file value: class index or IGNORE}``; every value present in the file
            (except nodata) must be mapped. Default: values are class indexes already.
        n_classes: When given, values (after mapping) must be ``< n_classes`` or
            :data:`IGNORE`.

    Returns:
        ``uint8 (H, W)``.

    Raises:
        GridMismatchError: the raster is on another grid.
        InputError: more than one band, non-integer values, or unmapped/out-of-range values.
    """
    r = open_raster(path, as_float=False)
    check_same_grid({str(Path(path)): r.grid, "scene grid": grid})
    if r.count != 1:
        raise InputError(f"label raster {path} has {r.count} bands; it must have one.")
    arr = r.data[0]
    valid = r.valid[0]
    if np.issubdtype(arr.dtype, np.floating):
        v = arr[valid]
        if v.size and not np.all(v == np.round(v)):
            raise InputError(f"label raster {path} holds non-integer values; labels must be "
                             f"class indexes.")
    vals = np.unique(arr[valid]).astype(np.int64)
    out = np.full(arr.shape, IGNORE, dtype=np.uint8)
    if mapping is not None:
        missing = [int(v) for v in vals if int(v) not in mapping]
        if missing:
            raise InputError(f"label raster {path} holds values {missing} that mapping does not "
                             f"cover; map each to a class index or to {IGNORE} (ignore).")
        lut_keys = np.array(sorted(mapping), dtype=np.int64)
        lut_vals = np.array([mapping[k] for k in sorted(mapping)], dtype=np.int64)
        if np.any((lut_vals < 0) | (lut_vals > IGNORE)):
            raise InputError(f"mapping values must be class indexes 0..254 or {IGNORE}; got "
                             f"{sorted(set(lut_vals.tolist()))}.")
        idx = np.searchsorted(lut_keys, arr[valid].astype(np.int64))
        out[valid] = lut_vals[idx].astype(np.uint8)
    else:
        bad = [int(v) for v in vals if not 0 <= v <= IGNORE]
        if bad:
            raise InputError(f"label raster {path} holds values {bad} outside 0..255; pass "
                             f"mapping= to turn them into class indexes.")
        out[valid] = arr[valid].astype(np.uint8)
    if n_classes is not None:
        used = np.unique(out)
        bad = [int(v) for v in used if v != IGNORE and v >= n_classes]
        if bad:
            raise InputError(f"label raster {path} holds class indexes {bad} but only "
                             f"{n_classes} classes exist (0..{n_classes - 1}, {IGNORE} = "
                             f"ignore).")
    return out


def mask_invalid(labels: np.ndarray, stack: Any) -> np.ndarray:
    """Labels with scene nodata set to :data:`IGNORE`.

    Args:
        labels: ``uint8 (H, W)``.
        stack: A :class:`~glacierkit.dl.sources.SceneStack` on the same grid; a pixel where any
            channel of a *present* group is NaN becomes :data:`IGNORE` (missing groups do not
            count).

    Returns:
        A new ``uint8 (H, W)`` array.
    """
    lab = np.asarray(labels)
    if lab.shape != tuple(stack.shape):
        raise InputError(f"labels shape {lab.shape} differs from the scene shape "
                         f"{tuple(stack.shape)}.")
    out = lab.astype(np.uint8, copy=True)
    out[~stack.valid_mask()] = IGNORE
    return out


def class_counts(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Pixels per class ``(n_classes,)`` int64, ignoring :data:`IGNORE`."""
    lab = np.asarray(labels).reshape(-1)
    lab = lab[lab != IGNORE]
    return np.bincount(lab.astype(np.int64), minlength=n_classes)[:n_classes]
