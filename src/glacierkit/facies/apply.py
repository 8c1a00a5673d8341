"""Apply a facies model to a scene: facies map, confidence and per-glacier facies areas.

:func:`classify_scene` runs a facies model file (a ``.gkm`` bundle whose
task is ``"facies"``, e.g. from :func:`glacierkit.facies.models.patchnet_bundle`)
over a whole scene with :func:`glacierkit.dl.predict.predict_scene` (tiled; ONNX Runtime on the
CPU by default) and turns its class map into glacier facies products::

    sources ──predict_scene──▶ classes, confidence (temporary, in out_dir)
            ──▶ restricted to the glacier outlines (rasterized on the scene grid)
            ──▶ optional majority filter (odd window, inside the glaciers only)
            ──▶ facies.tif, confidence.tif, areas.csv, report.json

Products (all written to a temporary folder inside ``out_dir`` and moved into place at the
end, so that a failure leaves no partial set; existing files are refused unless
``overwrite``):

* ``facies.tif`` — uint8 facies index (class ``i`` is the model's ``classes[i]``), nodata 255
  outside the glaciers and where the scene has no data; colour table of
  :func:`glacierkit.facies.vocab.colour_table`; class names in the ``CLASS_NAMES`` tag.
* ``confidence.tif`` — float32 confidence (0–1) of the model's top class, NaN where
  ``facies.tif`` is nodata: calibrated when the model file holds a calibration map, else the
  uncalibrated maximum probability (tag ``CALIBRATION``, report ``model.calibration``).
  Where the majority filter changed a pixel's class, the value is still the model's
  confidence in its own (unfiltered) class.
* ``areas.csv`` — one row per glacier: ``id``, ``area_km2`` (the glacier's pixels on the
  scene grid), ``observed_km2`` / ``observed_pct`` (those with a prediction), and for each
  facies ``<name>_km2`` and ``<name>_pct`` (percent of ``area_km2``).
* ``report.json`` — model, vocabulary, backend, majority filter, pixel counts and areas.

Areas are pixel counts times the pixel area from :func:`glacierkit.dl.sources.pixel_size_m`
(exact for projected grids up to the projection's scale factor; on geographic grids the pixel
area at the scene centre's latitude).

Memory: the class map (1 byte/px), the confidence (4 bytes/px) and the glacier-id raster
(4 bytes/px) of the whole scene are held at once; the majority filter works in row blocks.

This module never imports torch.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from glacierkit import __version__
from glacierkit._json import jsonable
from glacierkit.errors import DatasetNotFoundError, InputError
from glacierkit.io.grid import Grid
from glacierkit.io.products import ProductSet, reports_output

log = logging.getLogger(__name__)

__all__ = ["FaciesResult", "classify_scene", "majority_filter"]

#: Nodata value of ``facies.tif``.
FACIES_NODATA = 255

_PRODUCTS = ("facies", "confidence", "areas", "report")
_FILENAMES = {"facies": "facies.tif", "confidence": "confidence.tif", "areas": "areas.csv",
              "report": "report.json"}
_ID_FIELDS = ("rgi_id", "rgiid", "glac_id", "glacier_id", "sgi_id", "sgi-id", "id", "name")


@dataclass(frozen=True)
class FaciesResult:
    """What :func:`classify_scene` wrote.

    Attributes:
        facies: ``facies.tif`` (uint8 facies index, nodata 255, colour table).
        confidence: ``confidence.tif`` (float32 confidence 0–1, NaN nodata; calibrated
            only when the model file holds a calibration map).
        areas_csv: ``areas.csv`` (per-glacier facies areas, km² and %).
        report: ``report.json``.
        areas: The area table as a DataFrame (one row per glacier; columns as in the CSV).
        classes: The facies names (class value ``i`` is ``classes[i]``).
        backend: ``"onnx"`` or ``"torch"``.
        grid: The grid of the products.
        majority: Majority-filter window (px; 0 = off).
        seconds: Wall-clock seconds of the whole call.
    """

    facies: Path
    confidence: Path
    areas_csv: Path
    report: Path
    areas: pd.DataFrame = field(repr=False)
    classes: tuple[str, ...]
    backend: str
    grid: Grid = field(repr=False)
    majority: int = 0
    seconds: float = 0.0

    @property
    def paths(self) -> dict[str, Path]:
        """``{product name: path}`` of every file written."""
        return {"facies": self.facies, "confidence": self.confidence,
                "areas": self.areas_csv, "report": self.report}


# ---------------------------------------------------------------------------- majority
def majority_filter(classes: np.ndarray, size: int, *, mask: np.ndarray | None = None,
                    n_classes: int | None = None, nodata: int = FACIES_NODATA,
                    block_rows: int = 1024) -> np.ndarray:
    """Majority (mode) filter of a class map over ``size × size`` windows.

    For every pixel inside ``mask`` the classes of the pixels of its window that are inside
    ``mask`` are counted (per-class box sums of one-hot planes with
    :func:`scipy.ndimage.uniform_filter`); the pixel takes the most frequent class. A tie that
    involves the pixel's own class keeps it; other ties go to the lower class value. Pixels
    outside ``mask`` are neither changed nor counted, so nodata and the terrain around a
    glacier do not leak into it.

    Args:
        classes: ``(H, W)`` integer class map (values ``0 … K − 1``; ``nodata`` elsewhere).
        size: Odd window size in pixels (1 = no change).
        mask: ``(H, W)`` bool, the pixels to filter and count; default every pixel whose
            class is not ``nodata``.
        n_classes: ``K`` (default: the largest valid class value + 1).
        nodata: Class value that is never counted.
        block_rows: Rows filtered at once (memory ``≈ 4·K·(block_rows + size)·W`` bytes).

    Returns:
        The filtered ``(H, W)`` class map (same dtype; a new array).

    Raises:
        InputError: even or non-positive ``size``, or mismatched shapes.
    """
    from scipy import ndimage

    cls = np.asarray(classes)
    if cls.ndim != 2:
        raise InputError(f"classes must be a 2-D class map; got shape {cls.shape}.")
    size = int(size)
    if size < 1 or size % 2 == 0:
        raise InputError(f"the majority window must be an odd number of pixels (3, 5, ...); "
                         f"got {size}.")
    m = (cls != nodata) if mask is None else (np.asarray(mask, dtype=bool) & (cls != nodata))
    if m.shape != cls.shape:
        raise InputError(f"mask shape {m.shape} differs from the class map's {cls.shape}.")
    out = cls.copy()
    if size == 1 or not m.any():
        return out
    k = int(n_classes) if n_classes is not None else int(cls[m].max()) + 1
    half = size // 2
    h = cls.shape[0]
    step = max(1, int(block_rows))
    for r0 in range(0, h, step):
        r1 = min(h, r0 + step)
        a0, a1 = max(0, r0 - half), min(h, r1 + half)  # block with a halo of real rows
        sub, sub_m = cls[a0:a1], m[a0:a1]
        inner = slice(r0 - a0, r1 - a0)
        if not sub_m[inner].any():
            continue
        best = np.zeros((r1 - r0, cls.shape[1]), dtype=np.int64)
        best_n = np.full(best.shape, -1.0, dtype=np.float32)
        own_n = np.zeros(best.shape, dtype=np.float32)
        own = sub[inner]
        plane = np.empty(sub.shape, dtype=np.float32)
        for c in range(k):
            plane[...] = (sub == c) & sub_m
            if not plane.any():
                continue
            # Box mean × window area = count; constant 0 outside the block's real rows means
            # "not counted", which is right at the scene border (inner blocks have a halo).
            n = ndimage.uniform_filter(plane, size=size, mode="constant", cval=0.0)[inner]
            n = np.rint(n * (size * size))
            better = n > best_n
            best[better] = c
            best_n[better] = n[better]
            own_n[own == c] = n[own == c]
        keep_own = own_n >= best_n
        new = np.where(keep_own, own, best).astype(cls.dtype, copy=False)
        sel = sub_m[inner]
        out[r0:r1][sel] = new[sel]
    return out


# ---------------------------------------------------------------------------- helpers
def _load_facies_bundle(model: Any) -> Any:
    from glacierkit.dl.bundle import ModelBundle, check_task, load_bundle

    bundle = model if isinstance(model, ModelBundle) else load_bundle(model)
    if bundle.task is None:
        from glacierkit.errors import ModelKindError

        name = bundle.path or "the model bundle"
        raise ModelKindError(f"{name} does not say it is a facies model (no task recorded, "
                             f"classes {list(bundle.classes)}); classify_scene needs a model "
                             f"from 'glacierkit facies train' (task 'facies'). Outline models "
                             f"run with `glacierkit map predict`.")
    check_task(bundle, "facies", command="glacierkit facies predict")
    if not 1 <= len(bundle.classes) < FACIES_NODATA:
        raise InputError(f"the facies model has {len(bundle.classes)} classes; facies.tif "
                         f"holds 1–254.")
    return bundle


def _group_paths(spec: Any) -> list[tuple[Path, tuple[int, ...] | None]]:
    """``[(path, selected bands or None)]`` of one group's sources (as predict_scene takes)."""
    from glacierkit.dl.sources import BandSource

    items = list(spec) if isinstance(spec, list | tuple) else [spec]
    out = []
    for it in items:
        if isinstance(it, BandSource):
            out.append((Path(it.path), None if it.bands is None else tuple(it.bands)))
        elif isinstance(it, str | os.PathLike):
            out.append((Path(it), None))
    return out


def _check_band_names(layout: Any, sources: Mapping[str, Any]) -> list[str]:
    """Warn when a source's band descriptions disagree with the model's band names.

    Only checked where every band of a group's files has a description and the band count
    fits (a wrong count is predict_scene's error). Returns the warnings (for the report).
    """
    import rasterio

    from glacierkit.facies.vocab import normalise_label

    warnings = []
    for name, spec in sources.items():
        if spec is None or name not in layout.group_names:
            continue
        group = layout.group(name)
        if group.kind == "dem":
            continue
        descs: list[str | None] = []
        try:
            for path, sel in _group_paths(spec):
                with rasterio.open(path) as ds:
                    d = list(ds.descriptions)
                descs.extend(d if sel is None else [d[b - 1] if 1 <= b <= len(d) else None
                                                    for b in sel])
        except Exception:  # unreadable files are predict_scene's error to report
            continue
        want = list(group.bands or ())
        if len(descs) != len(want) or not all(descs):
            continue
        got = [normalise_label(d) for d in descs]
        if got == [normalise_label(b) for b in want]:
            continue
        order = " (the same names in another order)" if sorted(got) == sorted(
            normalise_label(b) for b in want) else ""
        files = ", ".join(str(p) for p, _ in _group_paths(spec))
        msg = (f"{files}: the band descriptions {descs} differ from the model's bands "
               f"{want}{order} (source {name!r}); the bands are used in file order as {want}. "
               f"Check that the file holds the model's bands in that order (glacierkit info "
               f"FILE lists its band descriptions; reorder bands with gdal_translate -b, or "
               f"glacierkit.dl.sources.BandSource in Python).")
        log.warning("%s", msg)
        warnings.append(msg)
    return warnings


def _scene_grid(sources: Mapping[str, Any], align: bool | str | Grid) -> Grid:
    """The grid predict_scene will produce (first given group, or the ``align`` target)."""
    from glacierkit.io.raster import read_grid

    if isinstance(align, Grid):
        return align
    given = [(k, v) for k, v in sources.items() if v is not None]
    if not given:
        raise InputError("no sources given; pass e.g. {'optical': 'scene.tif'}.")
    key = align if isinstance(align, str) and align in sources else given[0][0]
    paths = _group_paths(sources[key])
    if not paths:
        raise InputError(f"source group {key!r}: {sources[key]!r} is not a path or a "
                         f"BandSource.")
    if not paths[0][0].exists():
        raise DatasetNotFoundError(f"source {key!r}: {paths[0][0]} does not exist.")
    return read_grid(paths[0][0])


def _glacier_ids(outlines: Any, grid: Grid, id_field: str | None
                 ) -> tuple[np.ndarray, list[str], dict[str, Any]]:
    """Rasterize outlines on ``grid``: ``(ids (H, W) int32, 0 = none; names; info)``.

    Raster value ``i`` (1-based) is glacier ``names[i - 1]``. Rows with the same id are
    dissolved into one glacier; where outlines overlap, the later one wins.
    """
    import geopandas as gpd
    from pyproj import CRS as ProjCRS

    from glacierkit.errors import VectorReadError
    from glacierkit.io.vector import rasterize, read_vector, to_grid_crs

    if isinstance(outlines, gpd.GeoDataFrame):
        gdf, source = outlines.copy(), "<GeoDataFrame>"
        if len(gdf) == 0:
            raise InputError("the outlines GeoDataFrame is empty.")
    else:
        source = str(outlines)
        try:
            gdf = read_vector(outlines)
        except VectorReadError as e:
            if _feature_count(outlines) == 0:
                raise InputError(f"the outlines file {source} holds no features; give a file "
                                 f"with the glacier polygons, or no outlines to treat the whole "
                                 f"valid scene as one glacier.") from e
            raise
    gdf = gdf[gdf.geometry.notna() & ~gdf.geometry.is_empty]
    if len(gdf) == 0:
        raise InputError(f"outlines {source} hold no non-empty geometry.")
    reprojected = grid.crs is not None and gdf.crs is not None and not ProjCRS.from_user_input(
        gdf.crs).equals(ProjCRS.from_user_input(grid.crs.to_wkt()))
    gdf = to_grid_crs(gdf, grid, name=f"outlines {source}")
    cols = {c.lower(): c for c in gdf.columns if c != gdf.geometry.name}
    if id_field is not None:
        if id_field not in gdf.columns:
            if id_field.lower() not in cols:
                raise InputError(f"id field {id_field!r} is not a column of the outlines "
                                 f"{source}; columns are {sorted(cols.values())}.")
            id_field = cols[id_field.lower()]
        col = id_field
    else:
        col = next((cols[c] for c in _ID_FIELDS if c in cols), None)
    if col is not None:
        ids = gdf[col].astype(str).to_numpy()
    else:
        ids = np.array([str(i + 1) for i in range(len(gdf))])
    names = list(dict.fromkeys(ids))  # first-appearance order
    value = {n: i + 1 for i, n in enumerate(names)}
    gdf = gdf.assign(_gid=[value[i] for i in ids])
    arr = rasterize(gdf, grid, column="_gid", fill=0, dtype="int32",
                    name=f"outlines {source}")
    present = np.unique(arr[arr > 0])
    if present.size == 0:
        raise InputError(f"outlines {source} do not cover any pixel centre of the scene "
                         f"({grid.describe()}); check that they belong to this scene.")
    outside = [n for n in names if value[n] not in set(present.tolist())]
    if outside:
        log.warning("%d of %d glacier(s) of %s cover no pixel of the scene and are left out "
                    "of the area table: %s%s", len(outside), len(names), source,
                    outside[:10], " …" if len(outside) > 10 else "")
    info = {"file": source, "id_field": col or "(row number, 1-based)",
            "n_glaciers": len(names) - len(outside), "n_outside_scene": len(outside),
            "reprojected": bool(reprojected)}
    return arr, names, info


def _feature_count(path: Any) -> int | None:
    """Number of features of a vector file's first layer (None if it cannot be read)."""
    import pyogrio

    try:
        return int(pyogrio.read_info(path)["features"])
    except Exception:  # unreadable: read_vector's error says why
        return None


def _area_table(facies: np.ndarray, gid: np.ndarray, names: Sequence[str],
                classes: Sequence[str], pixel_km2: float) -> pd.DataFrame:
    """Per glacier: total, observed and per-facies areas (km²) and shares (% of the total)."""
    n = len(names)
    k = len(classes)
    g = gid.ravel()
    f = facies.ravel()
    total = np.bincount(g, minlength=n + 1)[1:]
    ok = (g > 0) & (f != FACIES_NODATA)
    per = np.bincount(g[ok].astype(np.int64) * k + f[ok], minlength=(n + 1) * k)
    per = per.reshape(n + 1, k)[1:]
    rows = []
    with np.errstate(invalid="ignore", divide="ignore"):
        for i, name in enumerate(names):
            if total[i] == 0:
                continue
            row: dict[str, Any] = {"id": name, "area_km2": total[i] * pixel_km2,
                                   "observed_km2": per[i].sum() * pixel_km2,
                                   "observed_pct": 100.0 * per[i].sum() / total[i]}
            for c, cname in enumerate(classes):
                row[f"{cname}_km2"] = per[i, c] * pixel_km2
                row[f"{cname}_pct"] = 100.0 * per[i, c] / total[i]
            rows.append(row)
    cols = ["id", "area_km2", "observed_km2", "observed_pct",
            *[f"{c}_{u}" for c in classes for u in ("km2", "pct")]]
    return pd.DataFrame(rows, columns=cols)


def _write_text(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _describe_vocabulary(bundle: Any) -> tuple[str, dict[str, Any]]:
    from glacierkit.facies.vocab import Vocabulary

    spec = dict((bundle.training or {}).get("vocabulary") or {})
    if not spec:
        return (f"facies {list(bundle.classes)} (the model file records no label table)", {})
    try:
        return Vocabulary.from_spec(spec).describe(), spec
    except InputError as e:  # a record from another version: report it as it is
        return f"vocabulary record not understood ({e}); classes {list(bundle.classes)}", spec


# ---------------------------------------------------------------------------- entry point
@reports_output("out_dir")
def classify_scene(model: Any, sources: Mapping[str, Any], out_dir: str | os.PathLike[str],
                   *, outlines: Any = None, id_field: str | None = None, majority: int = 0,
                   backend: str = "auto", tile_size: int | None = None,
                   align: bool | str | Grid = False, overwrite: bool = False,
                   progress: bool = False, allow_domain_shift: bool = False,
                   max_memory: str | int | None = None) -> FaciesResult:
    """Map glacier surface facies on a scene and measure them per glacier.

    Args:
        model: A facies model file (``.gkm``) or a loaded
            :class:`~glacierkit.dl.bundle.ModelBundle` with ``training["task"] == "facies"``.
        sources: ``{group: raster(s)}`` for the model's source groups, as
            :func:`~glacierkit.dl.predict.predict_scene` takes them, e.g.
            ``{"optical": "scene.tif", "dem": "dem.tif"}``; the optical file holds the
            model's bands in the model's order (band descriptions that disagree are logged
            as a warning).
        out_dir: Folder for the products (created if needed); they appear all together, or
            not at all after an error or interrupt.
        outlines: Glacier outlines: a vector file (any CRS; reprojected to the scene CRS,
            logged) or a GeoDataFrame. ``None``: the whole valid scene is one glacier
            (``id`` ``"scene"``; stated in the report).
        id_field: Outline attribute naming the glaciers (default: the first of ``rgi_id``,
            ``glac_id``, ``glacier_id``, ``sgi_id``, ``id``, ``name`` present, else the
            1-based row number). Rows with the same id form one glacier.
        majority: Majority-filter window in pixels (odd: 3, 5, ...; 0 or 1 = off), applied
            inside the glaciers only (:func:`majority_filter`).
        backend: ``"auto"``, ``"onnx"`` (ONNX Runtime, CPU) or ``"torch"``.
        tile_size: Tile size in pixels (default: the model file's).
        align: As for predict_scene: ``False`` (the sources share one grid), ``True``, a
            group name or a :class:`~glacierkit.io.grid.Grid` to resample onto.
        overwrite: Replace existing products (default: refuse before any work).
        progress: Show predict_scene's progress bar.
        allow_domain_shift: Classify even when the scene's values lie far outside the
            model's training domain (logged as a warning); by default such a scene is refused
            before anything is computed (:func:`glacierkit.dl.domain.check_scene_domain`).
        max_memory: Working-memory budget of the tiled inference (see
            :func:`~glacierkit.dl.predict.predict_scene`; default half the available memory).

    Returns:
        A :class:`FaciesResult` with the paths and the area table.

    Raises:
        ModelKindError: not a facies model (the message names the command for its task).
        DomainShiftError: the scene lies far outside the training domain (the message names
            the channel, both ranges and the likely cause).
        InputError: a scene whose band count differs from the model's
            (the message names the expected bands); outlines that do not overlap the scene;
            an invalid ``majority``.
        OutputExistsError: a product exists and ``overwrite`` is False.
        DatasetNotFoundError: ``out_dir`` or an input file does not exist.
        GridMismatchError: sources on different grids and ``align`` is False.
    """
    from glacierkit.dl.predict import predict_scene
    from glacierkit.dl.sources import SourceLayout, pixel_size_m
    from glacierkit.facies.vocab import colour_table
    from glacierkit.io.raster import open_raster
    from glacierkit.io.writer import write_raster

    t0 = time.perf_counter()
    bundle = _load_facies_bundle(model)
    majority = int(majority or 0)
    if majority < 0 or (majority > 1 and majority % 2 == 0):
        raise InputError(f"majority must be 0 (off) or an odd window size in pixels (3, 5, "
                         f"...); got {majority}.")
    out = Path(out_dir)
    # The products are staged inside ``out`` and published together (report last).
    products = ProductSet(out, [_FILENAMES[k] for k in _PRODUCTS], overwrite=overwrite)
    targets = {k: out / v for k, v in _FILENAMES.items()}
    if not isinstance(sources, Mapping):
        raise InputError(f"sources must map source-group names to rasters, e.g. "
                         f"{{'optical': 'scene.tif'}}; got {type(sources).__name__}.")
    layout = SourceLayout.from_dict(bundle.layout)
    classes = tuple(str(c) for c in bundle.classes)
    band_warnings = _check_band_names(layout, sources)
    from glacierkit.dl.domain import check_scene_domain

    domain_check = check_scene_domain(
        bundle.domain, layout,
        {k: _group_paths(v) for k, v in sources.items() if v is not None and
         k in layout.group_names},
        allow_domain_shift=allow_domain_shift, model_name=str(bundle.path or "the model"))

    # Outlines first: a wrong file fails before the model runs.
    grid0 = _scene_grid(sources, align)
    if outlines is not None:
        gid, names, outline_info = _glacier_ids(outlines, grid0, id_field)
    else:
        gid, names = None, ["scene"]
        outline_info = {"file": None, "note": "no outlines given: the whole valid scene is "
                        "treated as one glacier (id 'scene')"}
        log.info("no outlines: the whole valid scene is treated as one glacier")

    with products:
        work = products.staging
        res = predict_scene(bundle, sources, work / "predict", backend=backend,  # type: ignore[arg-type]
                            tile_size=tile_size, outlines=False, progress=progress,
                            align=align, overwrite=False, task="facies", check_domain=False,
                            max_memory=max_memory)
        grid = res.grid
        if not grid.almost_equals(grid0):  # pragma: no cover - predict_scene's grid rule
            raise InputError(f"the prediction grid {grid.describe()} differs from the "
                             f"expected {grid0.describe()}.")
        pred = open_raster(res.classes, as_float=False).data[0]
        conf = open_raster(res.confidence).data[0].astype(np.float32, copy=False)
        valid = pred != FACIES_NODATA
        if gid is None:
            gid = valid.astype(np.int32)
            if not valid.any():
                raise InputError("the scene has no valid pixel to classify.")
        inside = gid > 0
        facies = np.where(inside & valid, pred, FACIES_NODATA).astype(np.uint8)
        changed = 0
        if majority > 1:
            filtered = majority_filter(facies, majority, mask=inside & valid,
                                       n_classes=len(classes))
            changed = int((filtered != facies).sum())
            facies = filtered
            log.info("majority filter %d×%d px changed %d pixel(s)", majority, majority,
                     changed)
        conf = np.where(facies != FACIES_NODATA, conf, np.float32(np.nan)).astype(np.float32)

        px, py = pixel_size_m(grid)
        pixel_km2 = px * py / 1e6
        table = _area_table(facies, gid, names, classes, pixel_km2)
        counts = {c: int(n) for c, n in zip(
            classes, np.bincount(facies[facies != FACIES_NODATA], minlength=len(classes)),
            strict=False)}
        vocab_text, vocab_dict = _describe_vocabulary(bundle)
        tags = {"MODEL": {"arch": bundle.arch,
                          "file": bundle.path.name if bundle.path else None,
                          "trained_with": bundle.glacierkit_version},
                "FACIES": {"backend": res.backend, "majority": majority,
                           "outlines": outline_info.get("file"), "glacierkit": __version__}}
        cmap = {**colour_table(classes), FACIES_NODATA: (0, 0, 0, 0)}
        written = {
            "facies": write_raster(
                work / _FILENAMES["facies"], facies, grid, nodata=FACIES_NODATA,
                band_names=["facies"], units="",
                tags={**tags, "CLASS_NAMES": list(classes),
                      "CLASSES": {str(i): c for i, c in enumerate(classes)},
                      "VOCABULARY": vocab_text},
                colormap=cmap, overview_resampling="nearest"),
            "confidence": write_raster(
                work / _FILENAMES["confidence"], conf, grid, band_names=["confidence"],
                units="1", tags={**tags, "CALIBRATION": "uncalibrated" if bundle.calibration is None
                                 else str(bundle.calibration.get("kind", "custom"))}),
        }
        table.to_csv(work / _FILENAMES["areas"], index=False, float_format="%.6g")
        written["areas"] = work / _FILENAMES["areas"]
        observed_px = int((facies != FACIES_NODATA).sum())
        warnings = []
        if observed_px == 0:
            warnings.append(f"no glacier pixel was classified: the {int(inside.sum())} "
                            f"pixel(s) inside the outlines have no data in the scene, so "
                            f"facies.tif is empty and every area is 0. Check that the outlines "
                            f"belong to this scene and that it has data (no cloud/nodata mask) "
                            f"over the glaciers.")
            log.warning("%s", warnings[-1])
        report = {
            "glacierkit": __version__,
            "model": {"file": str(bundle.path) if bundle.path else None, "arch": bundle.arch,
                      "classes": list(classes), "trained_with": bundle.glacierkit_version,
                      "receptive_field_px": (bundle.training or {}).get("receptive_field_px"),
                      "calibration": "uncalibrated" if bundle.calibration is None
                      else bundle.calibration.get("kind", "custom"),
                      "task": bundle.task},
            "domain_check": domain_check,
            "vocabulary": vocab_text, "vocabulary_record": vocab_dict,
            "sources": {k: [str(p) for p, _ in _group_paths(v)] for k, v in sources.items()
                        if v is not None},
            "band_warnings": band_warnings,
            "backend": res.backend, "device": res.device,
            "grid": grid.describe(), "pixel_size_m": [px, py], "pixel_area_km2": pixel_km2,
            "outlines": outline_info,
            "majority": {"window_px": majority, "pixels_changed": changed},
            "counts_px": counts,
            "glacier_px": int(inside.sum()), "observed_px": observed_px,
            "observed_share": observed_px / max(int(inside.sum()), 1), "warnings": warnings,
            "areas": table.to_dict(orient="records"),
            "seconds": {"predict": res.total_seconds, "total": time.perf_counter() - t0},
        }
        written["report"] = _write_text(work / _FILENAMES["report"],
                                        json.dumps(jsonable(report), indent=2))
        # Leaving the block publishes the four products together.
    total = time.perf_counter() - t0
    log.info("facies of %d glacier(s) on %s in %.1f s → %s", len(table), grid.describe(),
             total, out)
    return FaciesResult(facies=targets["facies"], confidence=targets["confidence"],
                        areas_csv=targets["areas"], report=targets["report"], areas=table,
                        classes=classes, backend=res.backend, grid=grid, majority=majority,
                        seconds=total)
