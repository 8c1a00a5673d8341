"""Outline accuracy: pixel scores, area deviation and boundary distances of PRED vs REF.

:func:`evaluate_outlines` is the entry point; the building blocks are public too.

Definitions
-----------
*Glacier mask*: pixels of a class raster whose value is the positive class (1 by default, or
any of several values), or pixels whose centre lies inside an outline polygon (the polygons
are dissolved first, so overlaps count once and shared ice divides are not boundaries).

*Area*: ``area_km2``. When at least one input is a raster, both areas are pixel counts times
the pixel area ``|det(transform)|`` (converted to m² with the CRS unit) over the pixels valid
in both inputs, so both sides are measured over the same ground. When both inputs are
polygons, the areas are those of the dissolved polygons from
:func:`glacierkit.io.vector.area_km2` (geodesic for geographic CRSs, planar otherwise).
``area_dev_km2 = pred − ref`` and ``area_dev_pct = 100 · (pred − ref) / ref``.

*Boundary distance* (metres). Boundary points are sampled on both outlines:

* rasters: the boundary pixels of each mask, i.e. glacier pixels with at least one
  4-neighbour that is valid and not glacier (pixels next to nodata or the raster edge are not
  boundary, because the outline is unknown there). A point is the pixel centre; distances are
  Euclidean between pixel centres, computed with
  :func:`scipy.ndimage.distance_transform_edt` and ``sampling = (row size, column size)`` in
  metres, so anisotropic pixels are handled;
* polygons: the boundary (exterior and interior rings) of the dissolved outline, sampled at
  equal arc-length steps of at most ``spacing_m`` at the step midpoints (so every point
  stands for the same boundary length); the distance of a point is its exact distance to the
  other outline's boundary line (shapely, nearest segment).

Each point of PRED's boundary gets its distance to REF's boundary and each point of REF's
boundary its distance to PRED's boundary; both sets are pooled with equal weight per point.
``boundary_mean_m`` is the pooled mean, ``boundary_p95_m`` the pooled 95th percentile (linear
interpolation, :func:`numpy.percentile`) and ``boundary_hausdorff_m`` the pooled maximum (the
symmetric Hausdorff distance of the sampled boundaries; for polygons it can fall short of
the continuous one by at most half a sampling step). When either outline has no boundary
point (empty, or glacier everywhere) the three are NaN.

For two equal squares of side ``L`` offset by ``d ≤ L/2`` along x the pooled mean is exactly
``d/2`` (polygons, and square pixels with ``d`` a whole number of pixels); the 95th percentile
and the Hausdorff distance are ``d``.

*Evaluated extent*. Both inputs are compared only where both are defined. A class raster is
defined on its valid pixels. An outline file alone has no extent of its own (no polygon may
mean "no glacier" or "not mapped"), so its extent is the ``footprint`` layer that glacierkit
writes with its outlines (:func:`glacierkit.io.vector.write_outlines`) when present, and an
explicit ``extent`` (polygons, or a raster whose valid pixels are the extent) restricts the
comparison further. Everything outside the intersection of these is clipped away: pixels
outside it are not evaluated, polygons are cut at its edge, and the edge itself is not an
outline boundary (no boundary distance is measured along it, as for pixels next to nodata).
The glacier area clipped away is reported: ``ref_area_outside_km2`` and
``pred_area_outside_km2`` (pixel counts for rasters, polygon areas for outlines) and logged
(a warning above 1 % of that input's area). Two outline files with no footprint and no
``extent`` are compared over the union of both (with a warning that names ``extent``).
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import shapely
from pyproj import CRS as ProjCRS
from scipy import ndimage

from glacierkit.errors import CRSError, InputError
from glacierkit.io.grid import Grid, check_same_grid
from glacierkit.io.raster import Raster, open_raster
from glacierkit.io.vector import (
    area_km2,
    rasterize,
    read_footprint,
    read_vector,
    to_grid_crs,
    valid_footprint,
)
from glacierkit.metrics.segmentation import IGNORE_INDEX, ConfusionMatrix

log = logging.getLogger(__name__)

VECTOR_SUFFIXES = frozenset({".gpkg", ".shp", ".geojson", ".json", ".fgb", ".kml", ".gml",
                             ".zip"})
"""File suffixes read as outline vectors; any other file is read as a class raster."""

MAX_GRID_PIXELS = 200_000_000
"""Largest grid :func:`evaluate_outlines` derives for two vector inputs."""


# ---------------------------------------------------------------------------- units & area
def crs_unit_m(crs: Any) -> float:
    """Metres per CRS unit of a projected CRS (1.0 for ``None``: a pixel grid in metres).

    Raises:
        CRSError: the CRS is geographic (degrees are not a length).
    """
    if crs is None:
        return 1.0
    pc = ProjCRS.from_user_input(crs.to_wkt() if hasattr(crs, "to_wkt") else crs)
    if pc.is_geographic:
        raise CRSError(
            f"the grid CRS {pc.to_string()[:60]} is geographic (degrees); areas and distances in "
            f"metres need a projected CRS. Reproject the raster to a UTM zone first "
            f"(glacierkit.io.reproject), or give the outlines as vectors."
        )
    return float(pc.axis_info[0].unit_conversion_factor) if pc.axis_info else 1.0


def pixel_sampling_m(grid: Grid) -> tuple[float, float]:
    """Pixel size ``(row spacing, column spacing)`` in metres, the order ndimage expects."""
    f = crs_unit_m(grid.crs)
    rx, ry = grid.res
    return (ry * f, rx * f)


def pixel_area_m2(grid: Grid) -> float:
    """Ground area of one pixel in m² (``|det(transform)|`` times the CRS unit squared)."""
    f = crs_unit_m(grid.crs)
    return abs(grid.transform.determinant) * f * f


def mask_area_km2(mask: np.ndarray, grid: Grid) -> float:
    """Area of the True pixels of ``mask`` ``(H, W)`` on ``grid``, in km²."""
    m = np.asarray(mask, dtype=bool)
    if m.shape != grid.shape:
        raise InputError(f"mask shape {m.shape} does not match the grid shape {grid.shape}.")
    return float(np.count_nonzero(m)) * pixel_area_m2(grid) / 1e6


def area_deviation(area_pred_km2: float, area_ref_km2: float) -> dict[str, float]:
    """``{"area_dev_km2": pred − ref, "area_dev_pct": 100 (pred − ref) / ref}``.

    ``area_dev_pct`` is NaN when the reference area is 0 (undefined).
    """
    dev = float(area_pred_km2) - float(area_ref_km2)
    pct = 100.0 * dev / float(area_ref_km2) if area_ref_km2 != 0 else float("nan")
    return {"area_dev_km2": dev, "area_dev_pct": pct}


# ---------------------------------------------------------------------------- raster boundary
_CROSS = ndimage.generate_binary_structure(2, 1)


def mask_boundary(mask: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """Boundary pixels of a mask: glacier pixels with a valid, non-glacier 4-neighbour.

    Args:
        mask: Boolean ``(H, W)``, True = glacier.
        valid: Optional boolean ``(H, W)``; invalid pixels are neither glacier nor outside,
            so glacier pixels that touch only nodata (or the raster edge) are not boundary.

    Returns:
        Boolean ``(H, W)``.
    """
    m = np.asarray(mask, dtype=bool)
    v = np.ones_like(m) if valid is None else np.asarray(valid, dtype=bool)
    m = m & v
    outside = v & ~m
    return m & ndimage.binary_dilation(outside, structure=_CROSS, border_value=0)


def raster_boundary_distances(pred: np.ndarray, ref: np.ndarray, *,
                              sampling: tuple[float, float] = (1.0, 1.0),
                              valid: np.ndarray | None = None,
                              ) -> tuple[np.ndarray, np.ndarray]:
    """Distances between the boundary pixels of two masks on one grid.

    Args:
        pred: Boolean ``(H, W)`` predicted glacier mask.
        ref: Boolean ``(H, W)`` reference glacier mask.
        sampling: ``(row spacing, column spacing)`` in metres (:func:`pixel_sampling_m`).
        valid: Optional boolean ``(H, W)`` of pixels valid in both.

    Returns:
        ``(d_pred, d_ref)``: for every boundary pixel of PRED its distance (m) to the nearest
        boundary pixel centre of REF, and vice versa; 1-D float64 arrays, both empty when
        either mask has no boundary pixel.
    """
    p = np.asarray(pred, dtype=bool)
    r = np.asarray(ref, dtype=bool)
    if p.shape != r.shape:
        raise InputError(f"pred mask shape {p.shape} differs from ref mask shape {r.shape}.")
    bp, br = mask_boundary(p, valid), mask_boundary(r, valid)
    if not bp.any() or not br.any():
        return np.empty(0), np.empty(0)
    d_pred = ndimage.distance_transform_edt(~br, sampling=sampling)[bp]
    d_ref = ndimage.distance_transform_edt(~bp, sampling=sampling)[br]
    return d_pred.astype(np.float64), d_ref.astype(np.float64)


# ---------------------------------------------------------------------------- vector boundary
def _polygonal(geom: shapely.Geometry) -> shapely.Geometry:
    """The polygons of ``geom``: lines and points (e.g. where a cut only touches) dropped."""
    if geom.geom_type in ("Polygon", "MultiPolygon"):
        return geom
    parts = shapely.get_parts(geom)
    parts = np.concatenate([shapely.get_parts(q) if q.geom_type == "GeometryCollection"
                            else [q] for q in parts]) if len(parts) else parts
    polys = [q for q in parts if q.geom_type in ("Polygon", "MultiPolygon") and not q.is_empty]
    return shapely.union_all(polys) if polys else shapely.Polygon()


def _dissolve(geoms: Any) -> shapely.Geometry:
    arr = np.asarray(geoms, dtype=object).ravel() if not isinstance(
        geoms, shapely.Geometry) else np.array([geoms], dtype=object)
    arr = arr[~shapely.is_missing(arr)]
    arr = shapely.make_valid(arr)
    return _polygonal(shapely.union_all(arr)) if arr.size else shapely.Polygon()


def sample_boundary(geom: shapely.Geometry, spacing: float) -> np.ndarray:
    """Points on the boundary of polygon(s) at equal arc-length steps.

    Each ring of length ``ℓ`` is cut into ``n = ceil(ℓ / spacing)`` equal steps and the step
    midpoints are returned, so each point represents ``ℓ / n ≤ spacing`` of boundary.

    Args:
        geom: Polygon or MultiPolygon (CRS units).
        spacing: Largest step, CRS units (> 0).

    Returns:
        Array of shapely Points ``(M,)`` (empty for an empty geometry).
    """
    if not spacing > 0:
        raise InputError(f"boundary spacing must be > 0; got {spacing}.")
    parts = shapely.get_parts(shapely.boundary(geom)) if not geom.is_empty else np.empty(0)
    if len(parts) == 0:
        return np.empty(0, dtype=object)
    # Arc-length position of every vertex along all rings laid end to end, with a gap of one
    # unit between rings (never sampled), then linear interpolation of x and y (numpy; GEOS
    # line_interpolate_point walks the whole ring for every point).
    coords, ring = shapely.get_coordinates(parts, return_index=True)
    same = ring[1:] == ring[:-1]
    step = np.where(same, np.hypot(*np.diff(coords, axis=0).T), 1.0)
    pos = np.concatenate([[0.0], np.cumsum(step)])
    first = np.flatnonzero(np.concatenate([[True], ~same]))
    lengths = np.add.reduceat(np.concatenate([step * same, [0.0]]), first)
    n = np.maximum(1, np.ceil(lengths / spacing).astype(np.int64))
    which = np.repeat(np.arange(len(parts)), n)
    k = np.arange(which.size) - (np.cumsum(n) - n)[which]
    at = pos[first][which] + (k + 0.5) * (lengths / n)[which]
    return shapely.points(np.interp(at, pos, coords[:, 0]), np.interp(at, pos, coords[:, 1]))


def _line_segments(lines: shapely.Geometry) -> np.ndarray:
    coords, idx = shapely.get_coordinates(shapely.get_parts(lines), return_index=True)
    same = idx[1:] == idx[:-1]
    return shapely.linestrings(np.stack([coords[:-1][same], coords[1:][same]], axis=1))


def _segments(geom: shapely.Geometry) -> np.ndarray:
    return _line_segments(shapely.boundary(geom))


def _near(geoms: np.ndarray, tree: shapely.STRtree, tol: float) -> np.ndarray:
    out = np.zeros(len(geoms), dtype=bool)
    if len(geoms):
        out[tree.query(geoms, predicate="dwithin", distance=tol)[0]] = True
    return out


def _off_edge(points: np.ndarray, segs: np.ndarray, edge: shapely.Geometry | None,
              tol: float) -> tuple[np.ndarray, np.ndarray]:
    """Drop boundary points and segments lying on ``edge`` (within ``tol``)."""
    if edge is None or edge.is_empty:
        return points, segs
    tree = shapely.STRtree(_line_segments(edge))
    on = (_near(shapely.get_point(segs, 0), tree, tol) & _near(shapely.get_point(segs, 1),
                                                               tree, tol)
          & _near(shapely.line_interpolate_point(segs, 0.5, normalized=True), tree, tol))
    return points[~_near(points, tree, tol)], segs[~on]


def _distances_to_segments(points: np.ndarray, segs: np.ndarray) -> np.ndarray:
    tree = shapely.STRtree(segs)
    (src, _), dist = tree.query_nearest(points, return_distance=True, all_matches=False)
    out = np.full(len(points), np.nan)
    out[src] = dist
    return out


def polygon_boundary_distances(pred: Any, ref: Any, *, spacing: float,
                               unit_m: float = 1.0, edge: shapely.Geometry | None = None,
                               ) -> tuple[np.ndarray, np.ndarray]:
    """Distances between the boundaries of two sets of polygons in one projected CRS.

    Args:
        pred: Predicted outline: a shapely geometry, or an array/GeoSeries of them (dissolved).
        ref: Reference outline, same kinds.
        spacing: Sampling step along the boundaries (CRS units), see :func:`sample_boundary`.
        unit_m: Metres per CRS unit.
        edge: Optional line(s), CRS units: the edge of the evaluated extent the outlines were
            clipped to. Boundary points and segments lying on it (within ``spacing / 1000``)
            are no outline boundary: they are neither measured nor measured to.

    Returns:
        ``(d_pred, d_ref)``: distances (m) of PRED's boundary samples to REF's boundary line
        and vice versa; both empty when either outline has no boundary (off the edge).
    """
    gp, gr = _dissolve(pred), _dissolve(ref)
    if gp.is_empty or gr.is_empty:
        return np.empty(0), np.empty(0)
    tol = spacing * 1e-3
    sp, segp = _off_edge(sample_boundary(gp, spacing), _segments(gp), edge, tol)
    sr, segr = _off_edge(sample_boundary(gr, spacing), _segments(gr), edge, tol)
    if not (len(sp) and len(sr) and len(segp) and len(segr)):
        return np.empty(0), np.empty(0)
    return (_distances_to_segments(sp, segr) * unit_m, _distances_to_segments(sr, segp) * unit_m)


def summarize_boundary_distances(d_pred: np.ndarray, d_ref: np.ndarray) -> dict[str, float]:
    """Pool both directed distance sets (equal weight per point) into the boundary scores.

    Returns:
        ``boundary_mean_m``, ``boundary_p95_m``, ``boundary_hausdorff_m`` (pooled mean, 95th
        percentile, maximum), ``boundary_median_m``, the directed means
        ``boundary_mean_pred_to_ref_m`` / ``boundary_mean_ref_to_pred_m`` and the point counts
        ``n_boundary_pred`` / ``n_boundary_ref``. Distances are NaN when either set is empty.
    """
    dp, dr = np.asarray(d_pred, dtype=np.float64), np.asarray(d_ref, dtype=np.float64)
    nan = float("nan")
    out: dict[str, float] = {"n_boundary_pred": int(dp.size), "n_boundary_ref": int(dr.size)}
    if dp.size == 0 or dr.size == 0:
        out.update(boundary_mean_m=nan, boundary_p95_m=nan, boundary_hausdorff_m=nan,
                   boundary_median_m=nan, boundary_mean_pred_to_ref_m=nan,
                   boundary_mean_ref_to_pred_m=nan)
        return out
    pooled = np.concatenate([dp, dr])
    out.update(
        boundary_mean_m=float(pooled.mean()),
        boundary_p95_m=float(np.percentile(pooled, 95)),
        boundary_hausdorff_m=float(pooled.max()),
        boundary_median_m=float(np.median(pooled)),
        boundary_mean_pred_to_ref_m=float(dp.mean()),
        boundary_mean_ref_to_pred_m=float(dr.mean()),
    )
    return out


# ---------------------------------------------------------------------------- inputs
@dataclass
class _RasterIn:
    mask: np.ndarray   # bool (H, W), glacier
    valid: np.ndarray  # bool (H, W)
    grid: Grid
    name: str


@dataclass
class _VectorIn:
    gdf: gpd.GeoDataFrame
    name: str
    footprint: gpd.GeoDataFrame | None = None  # the file's recorded mapped area


def _class_mask(values: np.ndarray, valid: np.ndarray, positive: tuple[int, ...],
                name: str) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(values)
    v = np.asarray(valid, dtype=bool).copy()
    if np.issubdtype(a.dtype, np.floating):
        v &= np.isfinite(a)
        if not np.array_equal(a[v], np.round(a[v])):
            raise InputError(f"{name} holds non-integer values; give a class raster (e.g. "
                             f"glacier = 1), not probabilities (threshold them first).")
    v &= a != IGNORE_INDEX
    return np.isin(a, positive) & v, v


def _load(obj: Any, name: str, positive: tuple[int, ...], band: int) -> _RasterIn | _VectorIn:
    if isinstance(obj, gpd.GeoSeries):
        obj = gpd.GeoDataFrame(geometry=obj)
    if isinstance(obj, gpd.GeoDataFrame):
        if len(obj) == 0 or obj.geometry.is_empty.all():
            raise InputError(f"{name} outlines are empty (no geometry).")
        if obj.crs is None:
            raise CRSError(f"{name} outlines have no CRS; set one with gdf.set_crs(...).")
        return _VectorIn(obj, name)
    if isinstance(obj, Raster):
        mask, valid = _class_mask(obj.data[band - 1], obj.valid[band - 1], positive, name)
        return _RasterIn(mask, valid, obj.grid, name)
    if isinstance(obj, tuple) and len(obj) == 2 and isinstance(obj[1], Grid):
        arr, grid = np.asarray(obj[0]), obj[1]
        if arr.shape != grid.shape:
            raise InputError(f"{name} array shape {arr.shape} does not match its grid shape "
                             f"{grid.shape}; give a (rows, cols) class array and its Grid.")
        mask, valid = _class_mask(arr, np.ones(arr.shape, bool), positive, name)
        return _RasterIn(mask, valid, grid, name)
    if isinstance(obj, str | os.PathLike):
        p = Path(obj)
        if p.suffix.lower() in VECTOR_SUFFIXES:
            return _VectorIn(read_vector(p), str(p), read_footprint(p))
        r = open_raster(p, bands=[band], as_float=False)
        if not (np.issubdtype(r.data.dtype, np.integer) or np.issubdtype(r.data.dtype,
                                                                          np.floating)):
            raise InputError(f"{p} has pixel type {r.data.dtype}; expected a class raster.")
        mask, valid = _class_mask(r.data[0], r.valid[0], positive, str(p))
        return _RasterIn(mask, valid, r.grid, str(p))
    raise InputError(
        f"{name} must be a class raster path (GeoTIFF), an outline vector path (GeoPackage/"
        f"Shapefile/GeoJSON), a glacierkit Raster, a (classes array, Grid) tuple or a "
        f"GeoDataFrame; got {type(obj).__name__}."
    )


def _fmt_bounds(b: Any) -> str:
    return "(" + ", ".join(f"{v:.6g}" for v in b) + ")"


def _check_overlap(b_pred: Any, b_ref: Any, pred_name: str, ref_name: str, crs_text: str) -> None:
    if (b_pred[0] >= b_ref[2] or b_pred[2] <= b_ref[0] or b_pred[1] >= b_ref[3]
            or b_pred[3] <= b_ref[1]):
        raise InputError(
            f"PRED and REF do not overlap: PRED {pred_name} has bounds {_fmt_bounds(b_pred)}, "
            f"REF {ref_name} has bounds {_fmt_bounds(b_ref)} (left, bottom, right, top in "
            f"{crs_text}). Check that both cover the same area."
        )


def _crs_text(crs: Any) -> str:
    if crs is None:
        return "pixel-grid units"
    pc = ProjCRS.from_user_input(crs.to_wkt() if hasattr(crs, "to_wkt") else crs)
    epsg = pc.to_epsg()
    return f"EPSG:{epsg}" if epsg else pc.to_string()[:60]


def _working_crs(ref: gpd.GeoDataFrame, ref_name: str) -> ProjCRS:
    crs = ProjCRS.from_user_input(ref.crs)
    if crs.is_projected:
        return crs
    utm = ref.estimate_utm_crs()
    log.info("REF %s is in the geographic CRS %s; evaluating in the UTM zone %s "
             "(estimate_utm_crs)", ref_name, crs.to_string()[:40], utm.to_string()[:40])
    return utm


def _to_crs(gdf: gpd.GeoDataFrame, crs: ProjCRS, name: str) -> gpd.GeoDataFrame:
    if ProjCRS.from_user_input(gdf.crs) == crs:
        return gdf
    log.info("reprojecting %s from %s to %s", name, gdf.crs.to_string()[:60],
             crs.to_string()[:60])
    return gdf.to_crs(crs)


def _dissolved_area_km2(gdf: gpd.GeoDataFrame) -> float:
    geom = _dissolve(gdf.geometry.values)
    return float(area_km2(gpd.GeoDataFrame(geometry=[geom], crs=gdf.crs))[0])


def _geom_area_km2(geom: shapely.Geometry, crs: Any) -> float:
    if geom.is_empty:
        return 0.0
    return float(area_km2(gpd.GeoDataFrame(geometry=[geom], crs=crs))[0])


def _frame(geom: shapely.Geometry, crs: Any) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(geometry=[geom], crs=crs)


def _load_extent(obj: Any, band: int) -> tuple[gpd.GeoDataFrame, str]:
    """The extent polygons and a description of where they come from."""
    def from_raster(valid: np.ndarray, grid: Grid, name: str) -> tuple[gpd.GeoDataFrame, str]:
        if grid.crs is None:
            raise CRSError(f"the extent raster {name} has no CRS; give a georeferenced raster "
                           f"or a polygon file.")
        geom = valid_footprint(valid, grid)
        if geom.is_empty:
            raise InputError(f"the extent raster {name} has no valid pixel; its valid pixels "
                             f"are the extent, so give a raster with data there.")
        return _frame(geom, grid.crs.to_wkt()), f"the valid pixels of {name}"

    if isinstance(obj, gpd.GeoSeries):
        obj = gpd.GeoDataFrame(geometry=obj)
    if isinstance(obj, gpd.GeoDataFrame):
        if len(obj) == 0 or obj.geometry.is_empty.all():
            raise InputError("the extent polygons are empty (no geometry).")
        if obj.crs is None:
            raise CRSError("the extent polygons have no CRS; set one with gdf.set_crs(...).")
        return obj, "the extent polygons"
    if isinstance(obj, Raster):
        return from_raster(obj.valid[band - 1], obj.grid, "<Raster>")
    if isinstance(obj, str | os.PathLike):
        p = Path(obj)
        if p.suffix.lower() in VECTOR_SUFFIXES:
            fp = read_footprint(p)
            if fp is not None:
                return fp, f"the footprint layer of {p}"
            return read_vector(p), f"the polygons of {p}"
        r = open_raster(p, bands=[1], as_float=False)
        return from_raster(r.valid[0], r.grid, str(p))
    raise InputError(f"extent must be a polygon file, a raster file (its valid pixels are the "
                     f"extent), a glacierkit Raster or a GeoDataFrame; got {type(obj).__name__}.")


def _burn_extents(fps: list[tuple[gpd.GeoDataFrame, str]], grid: Grid) -> np.ndarray:
    """Pixels of ``grid`` whose centre lies inside every extent."""
    valid = np.ones(grid.shape, dtype=bool)
    for gdf, desc in fps:
        valid &= rasterize(gdf, grid, name=desc).astype(bool)
    return valid


def _report_outside(role: str, name: str, outside_km2: float, total_km2: float,
                    extent: str) -> None:
    if not outside_km2 > 0:
        return
    share = outside_km2 / total_km2 if total_km2 > 0 else 1.0
    log.log(logging.WARNING if share > 0.01 else logging.INFO,
            "%s %s: %.4g km² of its %.4g km² of glacier (%.1f %%) lies outside the evaluated "
            "extent (%s) and is not scored", role, name, outside_km2, total_km2, 100 * share,
            extent)


# ---------------------------------------------------------------------------- entry point
def evaluate_outlines(pred: Any, ref: Any, *, positive: int | tuple[int, ...] = 1,
                      ref_positive: int | tuple[int, ...] | None = None, band: int = 1,
                      resolution_m: float = 10.0, spacing_m: float | None = None,
                      extent: Any = None) -> dict[str, Any]:
    """Compare predicted glacier outlines with reference outlines.

    PRED and REF may each be a class raster (GeoTIFF path, :class:`~glacierkit.io.Raster`, or
    a ``(classes (H, W), Grid)`` tuple; value 255 and the file's nodata are excluded), or
    outline polygons (GeoPackage/Shapefile/GeoJSON path or a GeoDataFrame).

    * raster + raster: the grids must match (:class:`~glacierkit.errors.GridMismatchError`
      otherwise); pixels valid in both are evaluated.
    * raster + vector: the polygons are reprojected to the raster CRS (logged) and rasterized
      on the raster grid (pixel centres inside); the raster's valid pixels are evaluated, so
      polygon parts outside the raster are not scored (their area is reported).
    * vector + vector: both are cut to the evaluated extent (the files' ``footprint`` layers
      and ``extent``; the union of both outlines when there is none, with a warning) and
      rasterized on a derived north-up grid of ``resolution_m`` covering that extent, in
      REF's CRS when projected, else in the UTM zone from geopandas ``estimate_utm_crs()``
      (logged); areas and boundary distances use the cut polygons directly.

    Every mode is further restricted to ``extent`` when given (pixels whose centre lies
    inside it). See the module docstring for the evaluated extent and the exact definitions
    of areas and boundary distances.

    See the module docstring for the exact definitions of areas and boundary distances.

    Args:
        pred: Predicted outlines (see above).
        ref: Reference outlines (see above).
        positive: Class value(s) meaning glacier in class rasters (default 1).
        ref_positive: Glacier class value(s) of a REF raster when they differ from PRED's.
        band: 1-based band of raster files holding the classes.
        resolution_m: Pixel size (m) of the grid derived for two vector inputs.
        spacing_m: Boundary sampling step (m) for two vector inputs; default
            ``resolution_m / 2``.
        extent: Area to evaluate, beyond the inputs' own extents: a polygon file (its
            ``footprint`` layer when it has one, e.g. a glacierkit ``outlines.gpkg``), a
            raster file or :class:`~glacierkit.io.Raster` whose valid pixels (band 1 of a
            file, ``band`` of a Raster) are the extent, or a GeoDataFrame. Any CRS
            (reprojected as vectors, logged).

    Returns:
        Plain-Python dict (JSON-serialisable): ``iou``, ``precision``, ``recall``, ``f1``,
        ``accuracy`` (glacier = positive class; see :mod:`glacierkit.metrics.segmentation`),
        ``tp``/``fp``/``fn``/``tn``, ``area_ref_km2``, ``area_pred_km2``, ``area_dev_km2``,
        ``area_dev_pct``, ``ref_area_outside_km2`` and ``pred_area_outside_km2`` (glacier area
        of each input outside the evaluated extent, not scored), ``boundary_mean_m``,
        ``boundary_p95_m``, ``boundary_hausdorff_m`` (and the other keys of
        :func:`summarize_boundary_distances`), ``n_pixels`` (pixels evaluated),
        ``pixel_size_m`` (geometric mean of the pixel sides), ``pixel_size_xy_m``, ``crs``,
        ``mode`` (``"raster/raster"``, ``"raster/vector"``, ...), ``extent`` (what the
        evaluated extent is made of), ``area_method`` and ``boundary_method`` (``"pixels"``
        or ``"polygons"``).

    Raises:
        GridMismatchError: two rasters on different grids.
        InputError: PRED and REF do not overlap (both bounds in the message), the evaluated
            extent is empty or misses the inputs, the reference has no glacier pixel/polygon
            in the evaluated area, or an input is malformed.
        CRSError: a raster grid is geographic, or an input lacks a CRS.
        DatasetNotFoundError, RasterReadError, VectorReadError: unreadable files.
    """
    pos = (positive,) if isinstance(positive, int) else tuple(positive)
    rpos = pos if ref_positive is None else (
        (ref_positive,) if isinstance(ref_positive, int) else tuple(ref_positive))
    if not resolution_m > 0:
        raise InputError(f"resolution_m must be > 0; got {resolution_m}.")
    pname = pred if isinstance(pred, str | os.PathLike) else "PRED"
    rname = ref if isinstance(ref, str | os.PathLike) else "REF"
    p = _load(pred, str(pname), pos, band)
    r = _load(ref, str(rname), rpos, band)
    # Extents beyond the rasters' valid pixels: an explicit one, and recorded footprints.
    fps: list[tuple[gpd.GeoDataFrame, str]] = []
    if extent is not None:
        fps.append(_load_extent(extent, band))
    for side in (p, r):
        if isinstance(side, _VectorIn) and side.footprint is not None:
            fps.append((side.footprint, f"the footprint layer of {side.name}"))
    vector_pair: tuple[shapely.Geometry, shapely.Geometry, float,
                       shapely.Geometry | None] | None = None
    # Glacier area (km²) of each input clipped away by the evaluated extent, and its total.
    clipped = {"pred": (0.0, 0.0), "ref": (0.0, 0.0)}
    polygon_side: str | None = None

    if isinstance(p, _RasterIn) and isinstance(r, _RasterIn):
        mode = "raster/raster"
        check_same_grid({p.name: p.grid, r.name: r.grid})
        grid = r.grid
        extent_text = "; ".join(["the valid pixels of both rasters", *(d for _, d in fps)])
        ext = _burn_extents(fps, grid) if fps else None
    elif isinstance(p, _RasterIn) or isinstance(r, _RasterIn):
        ras, vec = (p, r) if isinstance(p, _RasterIn) else (r, p)
        mode = "raster/vector" if ras is p else "vector/raster"
        grid = ras.grid
        crs_unit_m(grid.crs)
        g = to_grid_crs(vec.gdf, grid, name=vec.name)
        bp, br = (grid.bounds, g.total_bounds) if ras is p else (g.total_bounds, grid.bounds)
        _check_overlap(bp, br, p.name, r.name, _crs_text(grid.crs))
        burned = rasterize(g, grid, name=vec.name).astype(bool)
        extent_text = "; ".join([f"the valid pixels of {ras.name}", *(d for _, d in fps)])
        ext = _burn_extents(fps, grid) if fps else None
        # The outlines' area outside the evaluated pixels, from the polygons (they may run
        # beyond the raster, where no pixel can hold them).
        inside = valid_footprint(ras.valid if ext is None else ras.valid & ext, grid)
        whole = _dissolve(g.geometry.values)
        total = _geom_area_km2(whole, g.crs)
        polygon_side = "pred" if vec is p else "ref"
        clipped[polygon_side] = (
            max(0.0, total - _geom_area_km2(shapely.intersection(whole, inside), g.crs)), total)
        vin = _RasterIn(burned, np.ones(grid.shape, bool), grid, vec.name)
        p, r = (ras, vin) if ras is p else (vin, ras)
    else:
        mode = "vector/vector"
        wcrs = _working_crs(r.gdf, r.name)
        gp, gr = _to_crs(p.gdf, wcrs, p.name), _to_crs(r.gdf, wcrs, r.name)
        _check_overlap(gp.total_bounds, gr.total_bounds, p.name, r.name, _crs_text(wcrs))
        unit = crs_unit_m(wcrs)
        dp, dr = _dissolve(gp.geometry.values), _dissolve(gr.geometry.values)
        edge = None
        if fps:
            foot = _polygonal(shapely.intersection_all(
                [_dissolve(_to_crs(f, wcrs, d).geometry.values) for f, d in fps]))
            extent_text = "; ".join(d for _, d in fps)
            if foot.is_empty or foot.area == 0:
                raise InputError(f"the evaluated extent ({extent_text}) is empty: the "
                                 f"footprints/extent given do not overlap. Check extent= "
                                 f"(CLI: --extent) and the files' footprint layers.")
            for key, whole in (("pred", dp), ("ref", dr)):
                total = _geom_area_km2(whole, wcrs)
                cut = _polygonal(shapely.intersection(whole, foot))
                clipped[key] = (max(0.0, total - _geom_area_km2(cut, wcrs)), total)
                if key == "pred":
                    dp = cut
                else:
                    dr = cut
            b = np.asarray(foot.bounds)
            edge = shapely.boundary(foot)
        else:
            extent_text = "none: the union of both outlines"
            log.warning(
                "neither %s nor %s records the area where it was mapped (no footprint layer) "
                "and no extent was given: comparing over the union of both outlines, so "
                "glacier that only one file covers counts as missed or false. Pass extent= "
                "(CLI: --extent FILE, a polygon file or a raster whose valid pixels are the "
                "mapped area) to compare only where both are defined.", p.name, r.name)
            b = np.concatenate([np.minimum(gp.total_bounds[:2], gr.total_bounds[:2]),
                                np.maximum(gp.total_bounds[2:], gr.total_bounds[2:])])
        res = resolution_m / unit
        n_px = math.ceil((b[2] - b[0]) / res) * math.ceil((b[3] - b[1]) / res)
        if n_px > MAX_GRID_PIXELS:
            raise InputError(f"a {resolution_m:g} m grid over the evaluated extent would have "
                             f"{n_px} pixels (> {MAX_GRID_PIXELS}); pass a larger resolution_m.")
        grid = Grid.from_bounds(tuple(b), res, wcrs.to_wkt())
        log.info("rasterizing both outlines on a %g m grid in %s (%d×%d px)", resolution_m,
                 _crs_text(wcrs), grid.width, grid.height)
        ones = np.ones(grid.shape, bool)

        def burn(geom: shapely.Geometry, name: str) -> np.ndarray:
            if geom.is_empty:
                return np.zeros(grid.shape, bool)
            return rasterize(_frame(geom, wcrs), grid, name=name).astype(bool)

        ext = burn(foot, extent_text) if fps else None
        p = _RasterIn(burn(dp, p.name), ones, grid, p.name)
        r = _RasterIn(burn(dr, r.name), ones, grid, r.name)
        vector_pair = (dp, dr, unit, edge)
        areas = (_geom_area_km2(dp, wcrs), _geom_area_km2(dr, wcrs))

    valid = p.valid & r.valid
    if ext is not None:
        valid &= ext
    if vector_pair is None:
        # Raster sides: their glacier pixels outside the evaluated ones.
        px_km2 = pixel_area_m2(grid) / 1e6
        for key, side in (("pred", p), ("ref", r)):
            if key == polygon_side:
                continue  # outlines burned on the grid: measured on the polygons above
            own = side.mask & side.valid
            clipped[key] = (float(np.count_nonzero(own & ~valid)) * px_km2,
                            float(np.count_nonzero(own)) * px_km2)
    pmask, rmask = p.mask & valid, r.mask & valid
    if vector_pair is None and not rmask.any():
        raise InputError(
            f"the reference {r.name} has no glacier pixel (class {list(rpos)}) in the "
            f"{int(valid.sum())} pixels evaluated; check the positive class (ref_positive=), "
            f"nodata, and that REF covers PRED's area."
        )
    cm = ConfusionMatrix(2).update(pmask.astype(np.uint8), rmask.astype(np.uint8), valid)
    scores = cm.binary(1)

    if vector_pair is None:
        a_pred, a_ref = mask_area_km2(pmask, grid), mask_area_km2(rmask, grid)
        bnd = summarize_boundary_distances(*raster_boundary_distances(
            pmask, rmask, sampling=pixel_sampling_m(grid), valid=valid))
        area_method = boundary_method = "pixels"
    else:
        dp, dr, unit, edge = vector_pair
        a_pred, a_ref = areas
        if a_ref <= 0:
            raise InputError(f"the reference {r.name} has zero area inside the evaluated "
                             f"extent ({extent_text}); check the outlines and the extent.")
        spacing = (resolution_m / 2 if spacing_m is None else spacing_m) / unit
        bnd = summarize_boundary_distances(*polygon_boundary_distances(
            dp, dr, spacing=spacing, unit_m=unit, edge=edge))
        area_method = boundary_method = "polygons"
    _report_outside("REF", r.name, *clipped["ref"], extent_text)
    _report_outside("PRED", p.name, *clipped["pred"], extent_text)

    sy, sx = pixel_sampling_m(grid)
    out: dict[str, Any] = {
        "iou": scores["iou"], "precision": scores["precision"], "recall": scores["recall"],
        "f1": scores["f1"], "accuracy": scores["accuracy"],
        "tp": scores["tp"], "fp": scores["fp"], "fn": scores["fn"], "tn": scores["tn"],
        "area_ref_km2": float(a_ref), "area_pred_km2": float(a_pred),
        **area_deviation(a_pred, a_ref),
        "ref_area_outside_km2": float(clipped["ref"][0]),
        "pred_area_outside_km2": float(clipped["pred"][0]),
        **bnd,
        "n_pixels": int(valid.sum()),
        "pixel_size_m": float(math.sqrt(sx * sy)),
        "pixel_size_xy_m": [float(sx), float(sy)],
        "crs": _crs_text(grid.crs),
        "mode": mode,
        "extent": extent_text,
        "area_method": area_method,
        "boundary_method": boundary_method,
    }
    return out
