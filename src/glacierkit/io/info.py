"""Describe a raster, vector or model file: the facts behind ``glacierkit info``.

Band statistics are computed block by block (never the whole scene in memory at once).
"""

from __future__ import annotations

import math
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.errors import NotGeoreferencedWarning, RasterioIOError

from glacierkit.errors import DatasetNotFoundError, RasterReadError, VectorReadError

_VECTOR_SUFFIXES = {".shp", ".gpkg", ".geojson", ".json", ".fgb", ".gml", ".kml"}


def describe(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Describe a raster or vector file as a JSON-serialisable dict.

    Raster keys: ``kind="raster"``, ``driver``, ``crs`` (``"EPSG:n"`` when known, else WKT or
    ``None``), ``epsg``, ``width``, ``height``, ``resolution`` ``[x, y]`` (CRS units),
    ``band_count``, ``dtypes``, ``nodata``, ``bounds`` ``[left, bottom, right, top]``,
    ``georeferenced``, ``bands`` (per band: ``name``, ``unit``, ``min``, ``max``, ``mean``,
    ``valid_share`` in 0–1).

    Vector keys: ``kind="vector"``, ``driver``, ``crs``, ``epsg``, ``feature_count``,
    ``geometry_types``, ``fields`` (name → dtype), ``bounds``.

    Model files (``.gkm``): ``kind="model"`` and the keys of
    :func:`glacierkit.dl.bundle.bundle_summary` (task, architecture, parameters, file size,
    source groups and bands, classes, training domain, calibration, normalisation, tiling,
    format and glacierkit versions). Reading one needs no torch.
    """
    p = Path(path)
    if not p.exists():
        raise DatasetNotFoundError(f"{p} does not exist.")
    if p.suffix.lower() == ".gkm":
        return describe_model(p)
    if p.suffix.lower() in _VECTOR_SUFFIXES:
        return describe_vector(p)
    return describe_raster(p)


def describe_model(path: Path) -> dict[str, Any]:
    """Model-file part of :func:`describe` (metadata only; the weights are not loaded)."""
    from glacierkit.dl.bundle import bundle_summary, load_bundle

    return {"kind": "model", **bundle_summary(load_bundle(path))}


def _crs_text(crs: Any) -> tuple[str | None, int | None]:
    if crs is None:
        return None, None
    epsg = crs.to_epsg()
    return (f"EPSG:{epsg}" if epsg else crs.to_wkt()), epsg


def describe_raster(path: Path) -> dict[str, Any]:
    """Raster part of :func:`describe`."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            ds = rasterio.open(path)
    except RasterioIOError as e:
        raise RasterReadError(f"cannot read {path} as a raster ({e}); the file may be "
                              f"truncated, corrupt or in an unsupported format.") from e
    with ds:
        crs, epsg = _crs_text(ds.crs)
        georef = ds.crs is not None
        info: dict[str, Any] = {
            "kind": "raster", "path": str(path), "driver": ds.driver, "crs": crs, "epsg": epsg,
            "georeferenced": georef, "width": ds.width, "height": ds.height,
            "resolution": [abs(ds.res[0]), abs(ds.res[1])], "band_count": ds.count,
            "dtypes": list(ds.dtypes), "nodata": _json_num(ds.nodata),
            "bounds": list(ds.bounds) if not ds.transform.is_identity else None,
            "bands": [],
        }
        stats = _band_stats(ds, path)
        for b in range(ds.count):
            info["bands"].append({"index": b + 1, "name": ds.descriptions[b] or f"band_{b + 1}",
                                  "unit": ds.units[b] or "", **stats[b]})
    return info


def _json_num(v: float | int | None) -> float | int | str | None:
    if v is None:
        return None
    if isinstance(v, float) and math.isnan(v):
        return "nan"
    return v


def _band_stats(ds: Any, path: Path) -> list[dict[str, float | None]]:
    n = ds.count
    vmin = np.full(n, np.inf)
    vmax = np.full(n, -np.inf)
    total = np.zeros(n)
    count = np.zeros(n, dtype=np.int64)
    nodata = ds.nodata
    try:
        for _, win in ds.block_windows(1):
            a = ds.read(window=win)
            valid = np.ones(a.shape, bool)
            if np.issubdtype(a.dtype, np.floating):
                valid &= np.isfinite(a)
            if nodata is not None and not (isinstance(nodata, float) and math.isnan(nodata)):
                valid &= a != nodata
            for b in range(n):
                v = a[b][valid[b]]
                if v.size:
                    vmin[b] = min(vmin[b], float(v.min()))
                    vmax[b] = max(vmax[b], float(v.max()))
                    total[b] += float(v.sum(dtype=np.float64))
                    count[b] += v.size
    except RasterioIOError as e:
        raise RasterReadError(f"cannot read pixels of {path} ({e}); the file may be truncated "
                              f"or corrupt.") from e
    npx = ds.width * ds.height
    return [{"min": float(vmin[b]) if count[b] else None,
             "max": float(vmax[b]) if count[b] else None,
             "mean": float(total[b] / count[b]) if count[b] else None,
             "valid_share": float(count[b] / npx)} for b in range(n)]


def describe_vector(path: Path) -> dict[str, Any]:
    """Vector part of :func:`describe`."""
    import pyogrio

    from glacierkit.io.vector import default_layer

    try:
        layer = default_layer(path)  # the outlines of a glacierkit outline file
        meta = pyogrio.read_info(path, layer=layer)
        # read_info returns no geometry types beyond the layer's declared one; read them.
        gdf = pyogrio.read_dataframe(path, layer=layer, columns=[])
    except Exception as e:
        raise VectorReadError(f"cannot read {path} as a vector file: {e}") from e
    crs = None
    epsg = None
    if gdf.crs is not None:
        epsg = gdf.crs.to_epsg()
        crs = f"EPSG:{epsg}" if epsg else gdf.crs.to_wkt()
    types = sorted({t for t in gdf.geom_type.dropna().unique()})
    fields = dict(zip([str(f) for f in meta["fields"]], [str(t) for t in meta["dtypes"]],
                      strict=True))
    return {"kind": "vector", "path": str(path), "driver": meta.get("driver"), "crs": crs,
            "epsg": epsg, "feature_count": len(gdf), "geometry_types": types,
            "fields": fields, "bounds": [float(v) for v in gdf.total_bounds] if len(gdf) else None}
