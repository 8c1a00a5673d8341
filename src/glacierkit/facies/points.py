"""Point-label datasets: labelled points (or polygons sampled to points) with identifiers.

Two input forms, one container (:class:`PointLabels`):

(a) **sampled spectra** — a table whose rows are labelled pixels with band columns already
    sampled (e.g. ``Sentinel-2_SR_training_data.csv``: ``site_name, image_date, class, B1 …
    B12, NDSI, geometry``): :func:`read_points` with ``bands=[...]`` (or ``"auto"``);
(b) **points + co-registered rasters** — points in any vector format or a CSV, and a scene
    (:class:`glacierkit.dl.sources.SceneStack`) from which :func:`cut_patches` cuts
    ``P × P`` patches (optical bands plus elevation / slope / hillshade when the layout has a
    DEM group).

Geometry: a ``geometry`` column of WKT (``POINT (x y)``; a ``MULTIPOINT`` is split into its
points, each with the row's label), or ``x``/``y`` (``lon``/``lat``) columns, or a vector file
(GeoPackage, Shapefile, GeoJSON: points directly, polygons sampled on a regular grid with
:func:`sample_polygons`). Every point carries ``glacier`` (the grouping unit of the
cross-validation), ``scene`` and ``date`` identifiers.

No torch here.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS

from glacierkit.errors import CRSError, DatasetNotFoundError, InputError
from glacierkit.facies.vocab import Vocabulary

log = logging.getLogger(__name__)

__all__ = ["PointLabels", "cut_patches", "read_points", "sample_polygons"]

_VECTOR_SUFFIXES = {".gpkg", ".shp", ".geojson", ".json", ".fgb", ".gml", ".kml"}
_META_DEFAULTS = {
    "label": ("class", "label", "facies", "class_name", "classname"),
    "glacier": ("glacier", "glacier_id", "site_name", "site", "rgi_id", "rgiid"),
    "scene": ("scene", "scene_id", "image", "image_id"),
    "date": ("date", "image_date", "acquisition_date"),
}


@dataclass
class PointLabels:
    """Labelled points and, for form (a), their sampled spectra.

    Attributes:
        frame: One row per point: ``label`` (the input label, as read), ``target`` (int64
            class index into ``vocabulary.classes``), ``glacier``, ``scene``, ``date``
            (strings), ``x``, ``y`` (coordinates in ``crs``; NaN when the table has none) and
            ``row`` (row of the input file, 0-based).
        features: ``(N, F)`` float32 band values (form a), or None.
        feature_names: The ``F`` band names, in column order.
        crs: CRS of ``x``/``y`` (None when there are no coordinates).
        vocabulary: The vocabulary the targets index.
        source: The file read (messages, reports).
        report: What reading did: rows read, rows dropped and why, MULTIPOINT splits.
    """

    frame: pd.DataFrame
    features: np.ndarray | None
    feature_names: tuple[str, ...]
    crs: CRS | None
    vocabulary: Vocabulary
    source: str = ""
    report: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.frame)

    @property
    def targets(self) -> np.ndarray:
        """``(N,)`` int64 class indices."""
        return self.frame["target"].to_numpy(np.int64)

    @property
    def groups(self) -> np.ndarray:
        """``(N,)`` glacier identifiers (the cross-validation groups)."""
        return self.frame["glacier"].to_numpy(str)

    def select(self, mask: np.ndarray) -> PointLabels:
        """The points where boolean ``mask`` ``(N,)`` is True (or at integer indices)."""
        idx = np.flatnonzero(mask) if np.asarray(mask).dtype == bool else np.asarray(mask)
        return replace(self, frame=self.frame.iloc[idx].reset_index(drop=True),
                       features=None if self.features is None else self.features[idx])

    def features_for(self, names: Sequence[str]) -> np.ndarray:
        """``(N, len(names))`` features in the order of ``names`` (a model's band set).

        Raises:
            InputError: the table lacks some of the bands (it comes from a different band set
                than the model was trained with), or has no features at all.
        """
        if self.features is None:
            raise InputError(f"{self.source}: these points carry no sampled band values; cut "
                             f"patches from a scene with cut_patches instead.")
        missing = [n for n in names if n not in self.feature_names]
        if missing:
            raise InputError(f"{self.source}: band(s) {missing} of the model are not in this "
                             f"table, whose bands are {list(self.feature_names)}; the model "
                             f"was trained on {list(names)}. Use data with the same band set "
                             f"or retrain on the common bands.")
        idx = [self.feature_names.index(n) for n in names]
        return self.features[:, idx]

    def class_counts(self) -> dict[str, int]:
        """``{facies: number of points}`` for the classes present."""
        t = self.targets
        return {self.vocabulary.classes[int(c)]: int((t == c).sum()) for c in np.unique(t)}


def _pick(columns: Sequence[str], wanted: str | None, role: str, *,
          required: bool) -> str | None:
    low = {c.lower(): c for c in columns}
    if wanted is not None:
        if wanted in columns:
            return wanted
        if wanted.lower() in low:
            return low[wanted.lower()]
        raise InputError(f"column {wanted!r} ({role}) is not in the table; columns are "
                         f"{list(columns)}.")
    for cand in _META_DEFAULTS.get(role, ()):
        if cand in low:
            return low[cand]
    if required:
        raise InputError(f"no {role} column found (looked for "
                         f"{list(_META_DEFAULTS.get(role, ()))}); name it explicitly. "
                         f"Columns are {list(columns)}.")
    return None


def _points_from_wkt(values: pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(row index, x, y)`` of the points of WKT geometries (MULTIPOINTs split)."""
    try:
        geoms = shapely.from_wkt(values.astype(str).to_numpy())
    except Exception as e:  # shapely.errors.GEOSException
        raise InputError(f"cannot parse the geometry column as WKT: {e}") from e
    return _points_from_geoms(geoms)


def _points_from_geoms(geoms: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    parts, index = shapely.get_parts(geoms, return_index=True)
    full = ~shapely.is_empty(parts)            # POINT EMPTY has no coordinates
    parts, index = parts[full], index[full]
    kinds = shapely.get_type_id(parts)
    if np.any(kinds != 0):
        raise InputError("the geometries must be points or multipoints here; sample polygons "
                         "with sample_polygons (vector files do this automatically).")
    xy = shapely.get_coordinates(parts)
    return index, xy[:, 0], xy[:, 1]


def sample_polygons(gdf: gpd.GeoDataFrame, spacing: float, *,
                    max_points: int | None = None, seed: int = 0) -> gpd.GeoDataFrame:
    """Sample labelled polygons to points on a regular grid.

    Args:
        gdf: Polygons (any attributes; they are copied to the points).
        spacing: Grid spacing in CRS units (metres for a projected CRS). The grid is anchored
            at multiples of ``spacing`` so that neighbouring polygons share one lattice;
            lattice points on a polygon's boundary are not sampled (strictly inside only).
        max_points: Keep at most this many points per polygon (seeded random subset).
        seed: Seed of that subset.

    Returns:
        Points (one row per sample) with the polygon's attributes and ``polygon`` (its row).

    Raises:
        CRSError: the CRS is geographic (the spacing would be in degrees).
        InputError: non-positive spacing, or no polygon yields a point.
    """
    if spacing <= 0:
        raise InputError(f"polygon sampling spacing must be > 0 (CRS units); got {spacing}.")
    if gdf.crs is not None and CRS.from_user_input(gdf.crs).is_geographic:
        raise CRSError("sampling polygons needs a projected CRS (spacing in metres); "
                       "reproject the polygons first, e.g. gdf.to_crs(gdf.estimate_utm_crs()).")
    rng = np.random.default_rng(seed)
    rows = []
    for i, geom in enumerate(gdf.geometry.to_numpy()):
        if geom is None or geom.is_empty or geom.area <= 0:
            continue
        x0, y0, x1, y1 = geom.bounds
        xs = np.arange(np.ceil(x0 / spacing), np.floor(x1 / spacing) + 1) * spacing
        ys = np.arange(np.ceil(y0 / spacing), np.floor(y1 / spacing) + 1) * spacing
        if not xs.size or not ys.size:
            continue
        gx, gy = np.meshgrid(xs, ys)
        pts = shapely.points(gx.ravel(), gy.ravel())
        inside = shapely.contains(geom, pts)
        pts = pts[inside]
        if max_points is not None and pts.size > max_points:
            pts = pts[np.sort(rng.choice(pts.size, max_points, replace=False))]
        for p in pts:
            rows.append((i, p))
    if not rows:
        raise InputError(f"no polygon contains a sample point at spacing {spacing}; use a "
                         f"smaller spacing.")
    idx = np.array([r[0] for r in rows])
    out = gdf.drop(columns=gdf.geometry.name).iloc[idx].reset_index(drop=True)
    out["polygon"] = idx
    return gpd.GeoDataFrame(out, geometry=[r[1] for r in rows], crs=gdf.crs)


def read_points(path: str | os.PathLike[str] | pd.DataFrame, *, vocabulary: Vocabulary,
                label: str | None = None, glacier: str | None = None,
                scene: str | None = None, date: str | None = None,
                bands: Sequence[str] | str | None = "auto", geometry: str | None = None,
                x: str | None = None, y: str | None = None, crs: Any = "EPSG:4326",
                polygon_spacing: float | None = None,
                max_points_per_polygon: int | None = None) -> PointLabels:
    """Read labelled points (form a with ``bands``, form b without).

    Args:
        path: CSV / vector file, or a DataFrame already read.
        vocabulary: Maps the labels onto facies (unknown labels raise ``InputError``).
        label, glacier, scene, date: Column names (default: common names — ``class`` /
            ``label``; ``glacier`` / ``site_name`` / ``rgi_id``; ``scene``; ``date`` /
            ``image_date``). A missing glacier column makes every point one glacier (stated
            in ``report``); the scene defaults to ``glacier@date``.
        bands: Band columns to keep as features: a list, ``"auto"`` (every numeric column that
            is not an identifier, a coordinate or the label) or None (no features: form b).
        geometry: WKT geometry column of a CSV (default ``geometry`` if present).
        x, y: Coordinate columns instead (default ``x``/``y`` or ``lon``/``lat`` if present).
        crs: CRS of CSV coordinates (default EPSG:4326, longitude/latitude); vector files
            carry their own.
        polygon_spacing: Sampling spacing (CRS units) for polygon files.
        max_points_per_polygon: Cap per polygon when sampling.

    Returns:
        The :class:`PointLabels`; rows with NaN band values are dropped and counted in
        ``report["dropped_nan"]``.

    Raises:
        DatasetNotFoundError: A file is missing.
        InputError: Unknown labels, missing columns, or no rows left.
    """
    report: dict[str, Any] = {}
    if isinstance(path, pd.DataFrame):
        df = path.reset_index(drop=True)
        source = "<table>"
        point_crs: CRS | None = CRS.from_user_input(crs) if crs is not None else None
    else:
        p = Path(path)
        source = str(p)
        if not p.exists():
            raise DatasetNotFoundError(f"point-label file {p} does not exist.")
        if p.suffix.lower() in _VECTOR_SUFFIXES:
            from glacierkit.io.vector import read_vector

            gdf = read_vector(p)
            types = set(gdf.geometry.geom_type.dropna())
            if types & {"Polygon", "MultiPolygon"}:
                if polygon_spacing is None:
                    raise InputError(f"{p} holds polygons; give polygon_spacing (CRS units) to "
                                     f"sample them to points.")
                gdf = sample_polygons(gdf, polygon_spacing,
                                      max_points=max_points_per_polygon)
                report["sampled_from_polygons"] = int(gdf["polygon"].nunique())
            point_crs = CRS.from_user_input(gdf.crs) if gdf.crs is not None else None
            df = pd.DataFrame(gdf.drop(columns=gdf.geometry.name))
            df["geometry"] = shapely.to_wkt(gdf.geometry.to_numpy())
        elif p.suffix.lower() in (".csv", ".txt", ".tsv"):
            try:
                df = pd.read_csv(p, sep="\t" if p.suffix.lower() == ".tsv" else ",")
            except Exception as e:
                raise InputError(f"cannot read {p} as a CSV table: {e}") from e
            point_crs = CRS.from_user_input(crs) if crs is not None else None
        else:
            raise InputError(f"{p}: unsupported point-label format {p.suffix!r}; use a CSV "
                             f"(WKT geometry or x/y columns), GeoPackage, Shapefile or "
                             f"GeoJSON.")
    if df.empty:
        raise InputError(f"{source} has no rows.")
    cols = list(df.columns)
    label_c = _pick(cols, label, "label", required=True)
    glacier_c = _pick(cols, glacier, "glacier", required=False)
    scene_c = _pick(cols, scene, "scene", required=False)
    date_c = _pick(cols, date, "date", required=False)
    geom_c = _pick(cols, geometry, "geometry", required=False) if geometry else (
        "geometry" if "geometry" in cols else None)
    low = {c.lower(): c for c in cols}
    x_c = x or low.get("x") or low.get("lon") or low.get("longitude")
    y_c = y or low.get("y") or low.get("lat") or low.get("latitude")
    if (x is not None or y is not None) and (x_c not in cols or y_c not in cols):
        raise InputError(f"coordinate columns {x!r}/{y!r} are not in the table {cols}.")

    # geometry → one row per point
    report["rows_read"] = len(df)
    df = df.copy()
    df["row"] = np.arange(len(df))
    if geom_c is not None:
        index, px, py = _points_from_wkt(df[geom_c])
        per_row = np.bincount(index, minlength=len(df))
        if (per_row > 1).any():
            report["multipoint_rows_split"] = int((per_row > 1).sum())
        if (per_row == 0).any():
            report["dropped_empty_geometry"] = int((per_row == 0).sum())
            log.warning("%s: %d row(s) with an empty geometry are skipped", source,
                        int((per_row == 0).sum()))
        df = df.iloc[index].reset_index(drop=True)
        df["_x"], df["_y"] = px, py
    elif x_c in cols and y_c in cols:
        df["_x"] = pd.to_numeric(df[x_c], errors="coerce")
        df["_y"] = pd.to_numeric(df[y_c], errors="coerce")
    else:
        df["_x"] = np.nan
        df["_y"] = np.nan
        point_crs = None

    # features
    meta = {label_c, glacier_c, scene_c, date_c, geom_c, x_c, y_c, "row", "_x", "_y",
            "polygon"}
    if bands is None:
        names: list[str] = []
    elif isinstance(bands, str):
        if bands != "auto":
            raise InputError(f"bands must be a list of column names, 'auto' or None; got "
                             f"{bands!r}.")
        names = [c for c in cols if c not in meta and pd.api.types.is_numeric_dtype(df[c])]
        if not names:
            raise InputError(f"{source}: no numeric band columns found (columns {cols}); pass "
                             f"bands=None for points without sampled values.")
    else:
        names = [str(b) for b in bands]
        missing = [b for b in names if b not in cols]
        if missing:
            raise InputError(f"{source}: band column(s) {missing} not in the table; its "
                             f"columns are {cols}.")
    feats = None
    if names:
        feats = df[names].apply(pd.to_numeric, errors="coerce").to_numpy(np.float32)
        ok = np.isfinite(feats).all(axis=1)
        if not ok.all():
            report["dropped_nan"] = int((~ok).sum())
            log.warning("%s: %d of %d rows have missing band values and are skipped", source,
                        int((~ok).sum()), len(ok))
            df = df.loc[ok].reset_index(drop=True)
            feats = feats[ok]

    targets = vocabulary.encode(df[label_c].tolist())
    if glacier_c is None:
        report["glacier"] = "no glacier column: all points are one glacier"
        glaciers = np.full(len(df), "all", dtype=object)
    else:
        glaciers = df[glacier_c].astype(str).to_numpy()
    dates = df[date_c].astype(str).to_numpy() if date_c else np.full(len(df), "", dtype=object)
    scenes = (df[scene_c].astype(str).to_numpy() if scene_c
              else np.array([f"{g}@{d}" for g, d in zip(glaciers, dates, strict=True)]))
    frame = pd.DataFrame({"label": df[label_c].to_numpy(), "target": targets,
                          "glacier": glaciers, "scene": scenes, "date": dates,
                          "x": df["_x"].to_numpy(float), "y": df["_y"].to_numpy(float),
                          "row": df["row"].to_numpy(np.int64)})
    if frame.empty:
        raise InputError(f"{source}: no labelled points left after dropping invalid rows.")
    report["points"] = len(frame)
    log.info("%s: %d labelled points, %d glaciers; %s", source, len(frame),
             frame["glacier"].nunique(), vocabulary.describe())
    return PointLabels(frame=frame, features=feats, feature_names=tuple(names), crs=point_crs,
                       vocabulary=vocabulary, source=source, report=report)


def cut_patches(points: PointLabels, scene: Any, size: int = 33
                ) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    """Cut ``size × size`` patches of a scene's channels centred on the points.

    Args:
        points: Points with coordinates (reprojected to the scene CRS if needed; logged).
        scene: A :class:`glacierkit.dl.sources.SceneStack` (channels ``(C, H, W)``, NaN
            nodata).
        size: Odd patch size in pixels.

    Returns:
        ``(patches, kept, counts)``: ``(n, C, size, size)`` float32 (NaN where the patch
        leaves the scene or has nodata), the indices ``(n,)`` of the points kept, and counts
        ``{"points", "kept", "outside", "nodata_centre"}``. Points outside the raster and
        points whose centre pixel is nodata are skipped, counted and logged.

    Raises:
        InputError: even ``size``, points without coordinates, or no point inside the scene.
    """
    if size < 1 or size % 2 == 0:
        raise InputError(f"patch size must be odd (the label is the centre pixel); got {size}.")
    fr = points.frame
    if points.crs is None or not np.isfinite(fr["x"]).any():
        raise InputError(f"{points.source}: the points have no coordinates, so patches cannot "
                         f"be cut from a scene.")
    grid = scene.grid
    xs, ys = fr["x"].to_numpy(float), fr["y"].to_numpy(float)
    if grid.crs is not None and not CRS.from_user_input(points.crs).equals(grid.crs):
        from pyproj import Transformer

        log.info("reprojecting %d points from %s to the scene CRS %s", len(xs),
                 CRS.from_user_input(points.crs).to_string(), grid.crs.to_string())
        tr = Transformer.from_crs(points.crs, grid.crs, always_xy=True)
        xs, ys = tr.transform(xs, ys)
    inv = ~grid.transform
    cols, rows = inv @ (np.asarray(xs, dtype=float), np.asarray(ys, dtype=float))
    finite = np.isfinite(rows) & np.isfinite(cols)   # points without coordinates: outside
    r = np.floor(np.where(finite, rows, -1.0)).astype(np.int64)
    c = np.floor(np.where(finite, cols, -1.0)).astype(np.int64)
    inside = (r >= 0) & (r < grid.height) & (c >= 0) & (c < grid.width) & finite
    data = scene.data
    half = size // 2
    # Nodata = a NaN in a channel of a group the scene has; the channels of absent groups
    # (all NaN, zeroed by the model through ``present``) do not make every pixel nodata.
    chans = np.zeros(data.shape[0], dtype=bool)
    for sl, there in zip(scene.layout.slices.values(), scene.present, strict=True):
        chans[sl] = there
    centre_ok = np.zeros(len(r), dtype=bool)
    centre_ok[inside] = np.isfinite(data[:, r[inside], c[inside]][chans]).all(axis=0)
    keep = np.flatnonzero(inside & centre_ok)
    counts = {"points": len(r), "kept": int(keep.size),
              "outside": int((~inside).sum()), "nodata_centre": int((inside & ~centre_ok).sum())}
    if counts["outside"] or counts["nodata_centre"]:
        log.warning("%s on %s: %d point(s) outside the raster and %d on nodata skipped "
                    "(%d kept)", points.source, scene.name, counts["outside"],
                    counts["nodata_centre"], counts["kept"])
    if keep.size == 0:
        raise InputError(f"none of the {len(r)} points of {points.source} falls on valid "
                         f"pixels of scene {scene.name!r} ({grid.describe()}); check the "
                         f"CRS and the extent.")
    padded = np.pad(data, ((0, 0), (half, half), (half, half)), constant_values=np.nan)
    rr = r[keep][:, None] + np.arange(size)[None, :]          # (n, P) padded rows
    cc = c[keep][:, None] + np.arange(size)[None, :]
    patches = padded[:, rr[:, :, None], cc[:, None, :]]       # (C, n, P, P)
    return np.ascontiguousarray(patches.transpose(1, 0, 2, 3), dtype=np.float32), keep, counts
