"""Vectors: read outlines and points, bring them onto a raster's CRS, rasterize, polygonize.

Vectors may be reprojected freely (exact up to densification; logged); rasters never are here.
Files: Shapefile, GeoPackage, GeoJSON and anything else GDAL/OGR reads, via geopandas with the
pyogrio engine. Written outlines are GeoPackages, written atomically.

Outline files written by glacierkit (:func:`write_outlines`) hold two layers: ``outlines``
(the polygons; the first layer, read by default) and ``footprint`` (one polygon: the area where
the outlines were mapped, i.e. the valid pixels of the classified scene, with the grid as
attributes). An outline file alone cannot tell "no glacier here" from "not mapped here"; the
footprint can, and outline evaluation (:func:`glacierkit.metrics.evaluate_outlines`) clips to it.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS as ProjCRS
from pyproj import Geod
from rasterio import features

from glacierkit.errors import (
    CRSError,
    DatasetNotFoundError,
    InputError,
    VectorReadError,
)
from glacierkit.io.grid import Grid
from glacierkit.io.writer import check_output_path, publish_file, written_log_level

log = logging.getLogger(__name__)

OUTLINES_LAYER = "outlines"
"""Layer of a glacierkit outline file holding the outline polygons (its first layer)."""

FOOTPRINT_LAYER = "footprint"
"""Layer of a glacierkit outline file holding the mapped area (see :func:`write_outlines`)."""

MIN_AREA_KM2 = 0.01
"""Default smallest outline polygon (km²) of ``map predict`` and ``map baseline``: the Randolph
Glacier Inventory's minimum glacier size (RGI Consortium 2017; Pfeffer et al. 2014, J. Glaciol.
60(221))."""


def _layer_names(p: Path) -> list[str]:
    import pyogrio

    try:
        return [str(n) for n in pyogrio.list_layers(p)[:, 0]]
    except Exception as e:  # pyogrio raises DataSourceError etc.
        raise VectorReadError(f"cannot read {p} as a vector file: {e}") from e


def default_layer(path: str | os.PathLike[str]) -> str | None:
    """The layer :func:`read_vector` reads when none is named.

    Returns:
        ``"outlines"`` for a glacierkit outline file (layers ``outlines`` and ``footprint``),
        None for a single-layer file, else the first layer (logged as a warning that names
        the others).

    Raises:
        VectorReadError: the file cannot be opened as a vector file.
    """
    p = Path(path)
    layers = _layer_names(p)
    if OUTLINES_LAYER in layers and FOOTPRINT_LAYER in layers:
        return OUTLINES_LAYER  # a glacierkit outline file: never mix in the footprint
    if len(layers) > 1:
        log.warning("%s has %d layers (%s); reading the first, %r. Pass layer= to read "
                    "another one.", p, len(layers), ", ".join(layers), layers[0])
        return layers[0]
    return None


def read_vector(path: str | os.PathLike[str], *, layer: str | int | None = None,
                crs: str | int | None = None) -> gpd.GeoDataFrame:
    """Read a vector file (Shapefile, GeoPackage, GeoJSON, ...).

    Args:
        path: Vector file.
        layer: Layer name or index for multi-layer files (GeoPackage). Default: the
            ``outlines`` layer of a glacierkit outline file (never its ``footprint``), else the
            first layer (a warning names the others when there are several).
        crs: CRS to *assign* when the file has none (never reprojects). Without it, a file
            with no CRS raises :class:`CRSError`.

    Raises:
        DatasetNotFoundError: the file does not exist.
        VectorReadError: the file cannot be read or holds no features.
        CRSError: the file has no CRS and ``crs`` was not given.
    """
    p = Path(path)
    if not p.exists():
        raise DatasetNotFoundError(f"vector file {p} does not exist.")
    if layer is None:
        layer = default_layer(p)
    try:
        gdf = gpd.read_file(p, layer=layer, engine="pyogrio")
    except Exception as e:  # pyogrio raises DataSourceError/DataLayerError etc.
        raise VectorReadError(f"cannot read {p} as a vector file: {e}") from e
    if len(gdf) == 0:
        raise VectorReadError(f"{p} contains no features.")
    if gdf.crs is None:
        if crs is None:
            raise CRSError(
                f"{p} has no CRS (for a Shapefile: the .prj file is missing); glacierkit never "
                f"guesses a CRS.",
                hint="Pass crs= with the CRS the coordinates are in.",
                cli_hint="Assign the CRS the coordinates are in to the file (e.g. ogr2ogr "
                         "-a_srs EPSG:32607 out.gpkg in.shp) and pass that file.",
            )
        gdf = gdf.set_crs(crs)
    return gdf


def to_grid_crs(gdf: gpd.GeoDataFrame, grid: Grid, *, name: str = "vector") -> gpd.GeoDataFrame:
    """Return ``gdf`` in ``grid``'s CRS, reprojecting the vector (logged) when needed.

    Raises:
        CRSError: the grid is not georeferenced while the vector is (or vice versa).
    """
    if grid.crs is None:
        raise CRSError(f"{name} is georeferenced but the raster grid is not; outlines cannot be "
                       f"placed on a plain image.")
    if gdf.crs is None:
        raise CRSError(f"{name} has no CRS.")
    if ProjCRS.from_user_input(gdf.crs) == ProjCRS.from_user_input(grid.crs.to_wkt()):
        return gdf
    log.info("reprojecting %s from %s to the raster CRS %s", name, gdf.crs.to_string()[:60],
             grid.crs.to_string()[:60])
    return gdf.to_crs(grid.crs.to_wkt())


def rasterize(gdf: gpd.GeoDataFrame, grid: Grid, *, column: str | None = None,
              burn_value: int | float = 1, fill: int | float = 0, all_touched: bool = False,
              dtype: str = "uint8", name: str = "vector") -> np.ndarray:
    """Burn geometries into an array on ``grid``.

    Args:
        gdf: Geometries (any CRS; reprojected to the grid's CRS if needed, logged).
        grid: Target grid.
        column: Attribute to burn; default burns ``burn_value`` for every geometry.
        burn_value: Value for every geometry when ``column`` is None.
        fill: Value outside all geometries.
        all_touched: Burn every pixel a geometry touches (default: pixels whose centre is
            inside).
        dtype: Output dtype.
        name: Used in messages.

    Returns:
        ``(rows, cols)`` array on ``grid``.

    Raises:
        InputError: no geometry overlaps the grid (the message gives both extents).
    """
    g = to_grid_crs(gdf, grid, name=name)
    left, bottom, right, top = grid.bounds
    vb = g.total_bounds
    if vb[0] >= right or vb[2] <= left or vb[1] >= top or vb[3] <= bottom:
        raise InputError(
            f"{name} does not overlap the raster: vector bounds {tuple(np.round(vb, 3))}, raster "
            f"bounds {tuple(round(v, 3) for v in grid.bounds)} (both in the raster CRS)."
        )
    geoms = g.geometry.values
    values = g[column].to_numpy() if column is not None else np.full(len(g), burn_value)
    shapes = [(geom, v) for geom, v in zip(geoms, values, strict=True)
              if geom is not None and not geom.is_empty]
    return features.rasterize(shapes, out_shape=grid.shape, transform=grid.transform,
                              fill=fill, all_touched=all_touched, dtype=dtype)


def area_km2(gdf: gpd.GeoDataFrame) -> np.ndarray:
    """Area of each geometry in km² (geodesic on the WGS84 ellipsoid for geographic CRSs).

    Projected CRSs: planar area in the CRS unit converted to metres. Planar area in a
    conformal projection such as UTM differs from the true area by the squared scale factor
    (≤ 0.1 % inside a UTM zone).
    """
    if gdf.crs is None:
        raise CRSError("cannot compute areas of geometries without a CRS.")
    crs = ProjCRS.from_user_input(gdf.crs)
    if crs.is_geographic:
        geod = Geod(ellps="WGS84")
        return np.array([abs(geod.geometry_area_perimeter(g)[0]) / 1e6 if g is not None else 0.0
                         for g in gdf.geometry.values])
    unit = crs.axis_info[0].unit_conversion_factor if crs.axis_info else 1.0
    return shapely.area(gdf.geometry.values) * unit**2 / 1e6


def drop_small_outlines(gdf: gpd.GeoDataFrame, min_area_km2: float
                        ) -> tuple[gpd.GeoDataFrame, dict[str, float | int]]:
    """Drop outline polygons smaller than ``min_area_km2``.

    Args:
        gdf: Polygons with an ``area_km2`` column (:func:`polygonize`).
        min_area_km2: Smallest polygon kept (km²; 0 keeps all).

    Returns:
        ``(kept, info)``; ``info`` holds ``min_area_km2``, ``n_small_dropped`` and
        ``small_dropped_km2`` (their area).
    """
    if min_area_km2 < 0:
        raise InputError(f"min_area_km2 must be >= 0 (km²; 0 keeps every polygon); got "
                         f"{min_area_km2}.")
    small = (gdf["area_km2"] < min_area_km2).to_numpy() if len(gdf) else np.zeros(0, bool)
    info = {"min_area_km2": float(min_area_km2), "n_small_dropped": int(small.sum()),
            "small_dropped_km2": float(gdf["area_km2"][small].sum()) if small.any() else 0.0}
    if small.any():
        log.info("dropped %d outline polygon(s) smaller than %g km² (%.3f km² together)",
                 info["n_small_dropped"], min_area_km2, info["small_dropped_km2"])
        gdf = gdf[~small].reset_index(drop=True)
    return gdf, info


def polygonize(classes: np.ndarray, grid: Grid, *, class_names: Mapping[int, str] | None = None,
               ignore: tuple[int, ...] = (0,), nodata: int | None = None,
               connectivity: int = 4) -> gpd.GeoDataFrame:
    """Turn a class raster into polygons with ``class``, ``class_name`` and ``area_km2``.

    Args:
        classes: Integer array ``(rows, cols)`` on ``grid``.
        grid: Its grid. Non-georeferenced grids give polygons in pixel-grid units (no CRS);
            their ``area_km2`` uses the grid's pixel size as metres.
        class_names: ``{value: name}``; missing names are ``"class_<v>"``.
        ignore: Class values not polygonized (default 0 = background).
        nodata: Value treated as nodata (not polygonized).
        connectivity: 4 or 8 pixel connectivity.

    Returns:
        GeoDataFrame in the grid's CRS; empty (with the columns) when no class pixel exists.
    """
    arr = np.asarray(classes)
    if arr.shape != grid.shape:
        raise InputError(f"classes shape {arr.shape} does not match grid shape {grid.shape}.")
    if not np.issubdtype(arr.dtype, np.integer):
        raise InputError(f"classes must be an integer array; got {arr.dtype}.")
    # One comparison per excluded value: np.isin sorts the whole raster here (1.1 GB and
    # 2.4 s more for a 10000 × 10000 class map).
    mask = np.ones(arr.shape, dtype=bool)
    for v in (*ignore, *(() if nodata is None else (nodata,))):
        mask &= arr != v
    # GDAL polygonizes these dtypes directly; a uint8 class map stays 1 B per pixel (an int32
    # copy, which GDAL copies once more, took 800 MB more at 10000 × 10000 px).
    src = arr if arr.dtype in (np.uint8, np.int16, np.uint16, np.int32) \
        else arr.astype(np.int32, copy=False)
    records = [(shapely.geometry.shape(geom), int(v)) for geom, v in
               features.shapes(src, mask=mask, transform=grid.transform,
                               connectivity=connectivity)]
    names = dict(class_names or {})
    crs = grid.crs.to_wkt() if grid.crs is not None else None
    gdf = gpd.GeoDataFrame(
        {"class": pd.Series([v for _, v in records], dtype="int32"),
         "class_name": [names.get(v, f"class_{v}") for _, v in records]},
        geometry=[g for g, _ in records], crs=crs,
    )
    if crs is not None:
        gdf["area_km2"] = area_km2(gdf)
    else:
        gdf["area_km2"] = shapely.area(gdf.geometry.values) / 1e6
    return gdf


def write_vector(gdf: gpd.GeoDataFrame, path: str | os.PathLike[str], *,
                 layer: str | None = None, overwrite: bool = False,
                 extra_layers: Mapping[str, gpd.GeoDataFrame] | None = None) -> Path:
    """Write a GeoDataFrame atomically (temp file, then rename); GeoPackage by extension.

    Args:
        gdf: Features of the first layer (the one readers open by default).
        path: Output file (.gpkg, .geojson, .json or .fgb).
        layer: Name of the first layer (default: the file stem).
        overwrite: Replace an existing file.
        extra_layers: ``{name: features}`` written after the first layer, into the same
            file (GeoPackage only).

    Raises:
        OutputExistsError: ``path`` exists and ``overwrite`` is False.
        InputError: not a single-file format, or extra layers for a non-GeoPackage file.
    """
    p = check_output_path(path, overwrite=overwrite)
    if p.suffix.lower() not in (".gpkg", ".geojson", ".json", ".fgb"):
        raise InputError(f"write_vector writes single-file formats (.gpkg, .geojson, .fgb) so "
                         f"that the write is atomic; got {p.name}.")
    extra = dict(extra_layers or {})
    if extra and p.suffix.lower() != ".gpkg":
        raise InputError(f"only GeoPackages hold several layers; write {p.name} as .gpkg or "
                         f"drop the extra layers ({', '.join(extra)}).")
    first = layer or p.stem
    if first in extra:
        raise InputError(f"layer name {first!r} given twice; extra layers must differ from "
                         f"the first layer's name.")
    fd, tmp = tempfile.mkstemp(prefix=f".{p.stem}.", suffix=p.suffix, dir=p.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    tmp_path.unlink()  # OGR wants to create the file itself
    try:
        gdf.to_file(tmp_path, layer=first, engine="pyogrio")
        for name, g in extra.items():
            g.to_file(tmp_path, layer=name, engine="pyogrio")
        publish_file(tmp_path, p)
    finally:
        tmp_path.unlink(missing_ok=True)
    log.log(written_log_level(p), "wrote %s (%d features)", p, len(gdf))
    return p


def valid_footprint(valid: np.ndarray, grid: Grid) -> shapely.Geometry:
    """Polygon(s) covering the True pixels of ``valid``, along pixel edges, in the grid's CRS.

    Args:
        valid: Boolean ``(rows, cols)`` on ``grid``, True = valid data.
        grid: Its grid (any affine transform).

    Returns:
        The four grid corners as one polygon when every pixel is valid (cheap, exact);
        otherwise the union of the 4-connected valid regions (holes where nodata is enclosed);
        an empty polygon when no pixel is valid.
    """
    v = np.asarray(valid, dtype=bool)
    if v.shape != grid.shape:
        raise InputError(f"valid mask shape {v.shape} does not match grid shape {grid.shape}.")
    if v.all():
        t, (h, w) = grid.transform, grid.shape
        return shapely.Polygon([t @ (0, 0), t @ (w, 0), t @ (w, h), t @ (0, h)])
    if not v.any():
        return shapely.Polygon()
    # A bool array is one byte per pixel: viewing it as uint8 copies nothing.
    parts = [shapely.geometry.shape(geom) for geom, _ in
             features.shapes(v.view(np.uint8), mask=v, transform=grid.transform,
                             connectivity=4)]
    return shapely.union_all(parts)


def footprint_frame(valid: np.ndarray, grid: Grid) -> gpd.GeoDataFrame:
    """The footprint layer of an outline file: one valid-data polygon and its grid.

    Args:
        valid: Boolean ``(rows, cols)`` on ``grid``, True = pixels that were classified.
        grid: The classified scene's grid.

    Returns:
        One-row GeoDataFrame in the grid's CRS with the polygon of :func:`valid_footprint` and
        the attributes ``width``, ``height`` (px), ``transform`` (the six affine coefficients
        a, b, c, d, e, f, comma-separated, CRS units), ``res_x``, ``res_y`` (CRS units),
        ``n_valid_px`` and ``area_km2`` (of the polygon).
    """
    geom = valid_footprint(valid, grid)
    crs = grid.crs.to_wkt() if grid.crs is not None else None
    rx, ry = grid.res
    gdf = gpd.GeoDataFrame(
        {"width": [grid.width], "height": [grid.height],
         "transform": [",".join(repr(float(c)) for c in tuple(grid.transform)[:6])],
         "res_x": [float(rx)], "res_y": [float(ry)],
         "n_valid_px": [int(np.count_nonzero(valid))]},
        geometry=[geom], crs=crs)
    gdf["area_km2"] = area_km2(gdf) if crs is not None else shapely.area(geom) / 1e6
    return gdf


def write_outlines(gdf: gpd.GeoDataFrame, path: str | os.PathLike[str], *,
                   footprint: gpd.GeoDataFrame, overwrite: bool = False) -> Path:
    """Write an outline GeoPackage: layer ``outlines`` (first) and layer ``footprint``.

    Args:
        gdf: Outline polygons.
        path: ``.gpkg`` file.
        footprint: The mapped area, from :func:`footprint_frame`; same CRS as ``gdf``.
        overwrite: Replace an existing file.

    Raises:
        OutputExistsError: ``path`` exists and ``overwrite`` is False.
        CRSError: the footprint's CRS differs from the outlines' CRS.
    """
    if (gdf.crs is None) != (footprint.crs is None) or (
            gdf.crs is not None and ProjCRS.from_user_input(gdf.crs)
            != ProjCRS.from_user_input(footprint.crs)):
        raise CRSError(f"the footprint's CRS ({footprint.crs}) differs from the outlines' CRS "
                       f"({gdf.crs}); build both from the same grid.")
    return write_vector(gdf, path, layer=OUTLINES_LAYER, overwrite=overwrite,
                        extra_layers={FOOTPRINT_LAYER: footprint})


def read_footprint(path: str | os.PathLike[str], *,
                   crs: str | int | None = None) -> gpd.GeoDataFrame | None:
    """The ``footprint`` layer of an outline file, or None when the file has none.

    Args:
        path: Vector file.
        crs: CRS to assign when the file has none (as :func:`read_vector`).

    Raises:
        DatasetNotFoundError, VectorReadError, CRSError: as :func:`read_vector`.
    """
    p = Path(path)
    if not p.exists():
        raise DatasetNotFoundError(f"vector file {p} does not exist.")
    if FOOTPRINT_LAYER not in _layer_names(p):
        return None
    return read_vector(p, layer=FOOTPRINT_LAYER, crs=crs)
