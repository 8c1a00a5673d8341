"""Classic glacier mapping without training: band ratio, NDSI or brightness thresholds.

This is the practice behind most outlines of the Randolph Glacier Inventory: clean ice and
snow are bright in the visible and near-infrared and dark in the short-wave infrared (SWIR),
so a ratio ``red / SWIR`` (or ``NIR / SWIR``) above about 2.0, or the normalised difference
snow index ``NDSI = (green − SWIR) / (green + SWIR)`` above about 0.4, separates them from rock,
vegetation and water. Without a SWIR band (e.g. an RGB + NIR scene) only brightness is left:
the mean of the available visible and NIR bands, thresholded by Otsu's method on the scene.
Debris-covered ice is not found by any of these (it looks like rock), and seasonal snow
outside glaciers is found as glacier; this is a baseline to beat, not a product.

Band names: ``"blue"``, ``"green"``, ``"red"``, ``"nir"``, ``"swir1"``, ``"swir2"``; values are
reflectances or digital numbers (any consistent scale; NaN = nodata). ``"swir1"`` (≈ 1.6 µm)
is used as SWIR when present, else ``"swir2"``.

Torch-free.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy import ndimage

from glacierkit.errors import InputError
from glacierkit.io.products import reports_output
from glacierkit.io.vector import MIN_AREA_KM2, drop_small_outlines

log = logging.getLogger(__name__)

BAND_NAMES = ("blue", "green", "red", "nir", "swir1", "swir2")
"""Band names :func:`baseline_classes` understands."""

METHODS = ("auto", "ratio", "ndsi", "brightness")
"""Methods of :func:`baseline_classes`."""

DEFAULT_THRESHOLDS = {"ratio": 2.0, "ndsi": 0.4}
"""Fixed thresholds used when none is given (brightness uses Otsu)."""

NODATA = 255
"""Class value of nodata pixels in the output."""


def _swir(bands: Mapping[str, np.ndarray]) -> str | None:
    return "swir1" if "swir1" in bands else ("swir2" if "swir2" in bands else None)


def _resolve_method(bands: Mapping[str, np.ndarray], method: str) -> str:
    if method not in METHODS:
        raise InputError(f"method must be one of {METHODS}; got {method!r}.")
    swir = _swir(bands)
    if method == "auto":
        if swir and "green" in bands:
            return "ndsi"
        if swir and ("red" in bands or "nir" in bands):
            return "ratio"
        return "brightness"
    need = {"ndsi": "green + swir1 (or swir2)", "ratio": "red or nir, and swir1 (or swir2)",
            "brightness": "at least one of blue, green, red, nir"}[method]
    ok = {"ndsi": bool(swir and "green" in bands),
          "ratio": bool(swir and ("red" in bands or "nir" in bands)),
          "brightness": any(b in bands for b in ("blue", "green", "red", "nir"))}[method]
    if not ok:
        raise InputError(f"method={method!r} needs the bands {need}; got {sorted(bands)}. Use "
                         f"method='auto' to pick what the bands allow.")
    return method


def spectral_index(bands: Mapping[str, np.ndarray], method: str
                   ) -> tuple[np.ndarray, str, tuple[str, ...]]:
    """The index a method thresholds, as float64 ``(H, W)`` (NaN where an input is NaN).

    * ``"ratio"``: ``red / swir`` (``nir / swir`` without red); ``+inf`` where ``swir = 0`` and
      the numerator is > 0, 0 where both are 0.
    * ``"ndsi"``: ``(green − swir) / (green + swir)``; 0 where the sum is 0.
    * ``"brightness"``: mean of the available ``blue, green, red, nir`` bands.

    Returns:
        ``(index, formula, bands used)``.
    """
    def f(name: str) -> np.ndarray:
        return np.asarray(bands[name], dtype=np.float64)

    swir = _swir(bands)
    if method == "ratio":
        num = "red" if "red" in bands else "nir"
        a, b = f(num), f(swir)
        out = np.where(a > 0, np.inf, 0.0)
        np.divide(a, b, out=out, where=b != 0)
        out[np.isnan(a) | np.isnan(b)] = np.nan
        return out, f"{num}/{swir}", (num, swir)
    if method == "ndsi":
        g, s = f("green"), f(swir)
        den = g + s
        out = np.zeros(den.shape)
        np.divide(g - s, den, out=out, where=den != 0)
        out[np.isnan(den)] = np.nan
        return out, f"(green-{swir})/(green+{swir})", ("green", swir)
    used = tuple(b for b in ("blue", "green", "red", "nir") if b in bands)
    return np.mean([f(b) for b in used], axis=0), f"mean({', '.join(used)})", used


def baseline_classes(bands: Mapping[str, np.ndarray], *, method: str = "auto",
                     threshold: float | str | None = None, min_area_px: int = 0,
                     fill_holes: bool | int = False, valid: np.ndarray | None = None,
                     ) -> tuple[np.ndarray, dict[str, Any]]:
    """Glacier / off-glacier classes of a scene by a classic threshold (no training).

    Steps: index (:func:`spectral_index`) → ``glacier = index > threshold`` → remove glacier
    clumps (8-connected) smaller than ``min_area_px`` → fill holes → nodata back to 255.

    Args:
        bands: ``{name: (H, W) array}`` with names from :data:`BAND_NAMES`; NaN = nodata.
        method: ``"ndsi"``, ``"ratio"``, ``"brightness"`` or ``"auto"`` (NDSI with green +
            SWIR, else the ratio with red or NIR + SWIR, else brightness).
        threshold: Index threshold. None: 0.4 for NDSI, 2.0 for the ratio, Otsu's threshold
            (:func:`skimage.filters.threshold_otsu` over the valid pixels) for brightness;
            ``"otsu"``: Otsu for any method; a number: that value (index units; brightness in
            the bands' units).
        min_area_px: Remove glacier clumps with fewer pixels than this (0 keeps all).
        fill_holes: ``True`` fills every enclosed non-glacier hole; an integer ``N`` fills
            holes smaller than ``N`` pixels; ``False``/0 fills none. Holes are 4-connected.
        valid: Optional boolean ``(H, W)``; False pixels become nodata.

    Returns:
        ``(classes, info)``: ``classes`` uint8 ``(H, W)`` with 0 = off-glacier, 1 = glacier,
        255 = nodata; ``info`` a JSON-serialisable dict with ``method``, ``index`` (formula),
        ``bands_used``, ``threshold``, ``threshold_source`` (``"default"``, ``"given"`` or
        ``"otsu"``), ``min_area_px``, ``removed_px``, ``filled_px``, ``n_glacier_px``,
        ``n_valid_px``, ``n_nodata_px``, ``glacier_fraction``.

    Raises:
        InputError: unknown band names, bands of different shapes, a method the bands do not
            allow, no valid pixel, or a constant scene for Otsu.
    """
    if not bands:
        raise InputError(f"no bands given; pass e.g. {{'red': ..., 'nir': ...}} with names "
                         f"from {BAND_NAMES}.")
    unknown = sorted(set(bands) - set(BAND_NAMES))
    if unknown:
        raise InputError(f"unknown band name(s) {unknown}; use {BAND_NAMES}.")
    shapes = {k: np.shape(v) for k, v in bands.items()}
    if len(set(shapes.values())) != 1 or len(next(iter(shapes.values()))) != 2:
        raise InputError(f"all bands must be 2-D arrays (H, W) of one shape; got {shapes}.")
    shape = next(iter(shapes.values()))
    m = _resolve_method(bands, method)
    index, formula, used = spectral_index(bands, m)
    ok = ~np.isnan(index)
    if valid is not None:
        v = np.asarray(valid, dtype=bool)
        if v.shape != shape:
            raise InputError(f"valid mask shape {v.shape} differs from the band shape {shape}.")
        ok &= v
    if not ok.any():
        raise InputError("no valid pixel: every pixel is NaN in a used band or masked by valid.")

    if threshold is None and m in DEFAULT_THRESHOLDS:
        thr, source = DEFAULT_THRESHOLDS[m], "default"
    elif threshold is None or (isinstance(threshold, str) and threshold == "otsu"):
        from skimage.filters import threshold_otsu

        vals = index[ok & np.isfinite(index)]
        if vals.size == 0 or vals.min() == vals.max():
            raise InputError(f"cannot choose an Otsu threshold: the {formula} values of the "
                             f"valid pixels are constant; give threshold= explicitly.")
        thr, source = float(threshold_otsu(vals)), "otsu"
    elif isinstance(threshold, str):
        raise InputError(f"threshold must be a number, 'otsu' or None; got {threshold!r}.")
    else:
        thr, source = float(threshold), "given"

    glacier = ok & (index > thr)
    removed = filled = 0
    if min_area_px and min_area_px > 1:
        lab, _ = ndimage.label(glacier, structure=np.ones((3, 3), bool))
        sizes = np.bincount(lab.ravel())
        small = sizes < min_area_px
        small[0] = False
        drop = small[lab]
        removed = int(drop.sum())
        glacier &= ~drop
    if fill_holes is True or (not isinstance(fill_holes, bool) and fill_holes > 0):
        holes = ndimage.binary_fill_holes(glacier) & ~glacier
        if fill_holes is not True:
            lab, _ = ndimage.label(holes)
            sizes = np.bincount(lab.ravel())
            keep = sizes < int(fill_holes)
            keep[0] = False
            holes = keep[lab]
        holes &= ok
        filled = int(holes.sum())
        glacier |= holes

    classes = np.full(shape, NODATA, dtype=np.uint8)
    classes[ok] = glacier[ok]
    n_valid = int(ok.sum())
    n_gl = int(glacier.sum())
    info = {
        "method": m, "index": formula, "bands_used": list(used), "threshold": thr,
        "threshold_source": source, "min_area_px": int(min_area_px), "removed_px": removed,
        "filled_px": filled, "n_glacier_px": n_gl, "n_valid_px": n_valid,
        "n_nodata_px": int(ok.size - n_valid), "glacier_fraction": n_gl / n_valid,
    }
    return classes, info


def _band_key(text: str) -> str:
    return "".join(ch for ch in text.lower() if ch.isalnum())


#: Band descriptions understood by :func:`band_names_from_descriptions`, compared in lower
#: case without spaces, dashes or underscores. Band numbers (``B4``) are not among them: they
#: mean different bands on different sensors (Landsat 7 B4 is NIR, Landsat 8 and Sentinel-2
#: B4 are red), and neither is a bare ``swir`` (1.6 µm or 2.2 µm?).
BAND_DESCRIPTIONS: dict[str, str] = {
    **{_band_key(b): b for b in BAND_NAMES},
    "nearinfrared": "nir", "shortwaveinfrared1": "swir1", "shortwaveinfrared2": "swir2",
}


def band_names_from_descriptions(path: str | os.PathLike[str]) -> list[str]:
    """The :data:`BAND_NAMES` of a raster's bands, read from its band descriptions.

    Descriptions are the band names GDAL, rasterio and glacierkit write (``gdalinfo`` shows
    them as ``Description``). Each must name one band of :data:`BAND_NAMES` (case-insensitive;
    ``"NIR"``, ``"Red"``, ``"SWIR 1"``, ``"near infrared"`` and ``"shortwave infrared 2"`` are
    understood; see :data:`BAND_DESCRIPTIONS`); nothing is guessed from band numbers or
    order.

    Args:
        path: A raster file.

    Returns:
        One band name per band, in band order.

    Raises:
        InputError: A band has no description or one that is not a known band name; the
            message names the file and the bands, and how to name them (``band_names=``;
            ``--bands`` on the command line).
    """
    import rasterio

    with rasterio.open(path) as ds:
        descriptions = list(ds.descriptions)
    names: list[str] = []
    problems: list[str] = []
    for i, d in enumerate(descriptions, start=1):
        name = BAND_DESCRIPTIONS.get(_band_key(d or ""))
        if name is None:
            problems.append(f"band {i} {'has no description' if not d else f'is {d!r}'}")
        names.append(name or "")
    if problems:
        raise InputError(
            f"{path}: cannot name its bands from the band descriptions ({'; '.join(problems)}); "
            f"known names are {list(BAND_NAMES)} (case-insensitive).",
            hint=f"Name the {len(names)} band(s) of this file with band_names=, one name per "
                 f"band in band order, '_' to skip one: e.g. ['red', 'green', 'blue'] for an "
                 f"RGB file.",
            cli_hint=f"Name the {len(names)} band(s) of this file with --bands, one name per "
                     f"band in band order, '_' to skip one: e.g. --bands red,green,blue for an "
                     f"RGB file ('auto' takes the descriptions of another file).")
    return names


def resolve_band_names(paths: Sequence[str | os.PathLike[str]],
                       band_names: Sequence[Sequence[str] | str | None] | None
                       ) -> list[list[str]]:
    """Band names per file: as given, or from the file's band descriptions.

    Args:
        paths: Raster files.
        band_names: None (every file's names from its band descriptions) or one entry per
            file: a sequence of names (:data:`BAND_NAMES`, ``"_"`` to skip a band), a
            comma-separated string, or None / ``""`` / ``"auto"`` for the descriptions
            (:func:`band_names_from_descriptions`).

    Returns:
        One list of names per file; names read from descriptions are logged.

    Raises:
        InputError: The number of entries differs from the number of files, or a file's
            descriptions do not name its bands.
    """
    entries = [None] * len(paths) if band_names is None else list(band_names)
    if len(entries) != len(paths):
        raise InputError(f"give band names for each of the {len(paths)} files (or none, to "
                         f"read them from the band descriptions); got {len(entries)}.")
    out: list[list[str]] = []
    for p, entry in zip(paths, entries, strict=True):
        if isinstance(entry, str):
            entry = [b.strip() for b in entry.split(",")] if entry.strip() not in (
                "", "auto") else None
        if entry is None:
            names = band_names_from_descriptions(p)
            log.info("%s: band names %s from the band descriptions", p, names)
        else:
            names = [str(b) for b in entry]
        out.append(names)
    return out


@reports_output("out_dir")
def run_baseline(paths: Sequence[str | os.PathLike[str]],
                 band_names: Sequence[Sequence[str] | str | None] | None,
                 out_dir: str | os.PathLike[str], *, method: str = "auto",
                 threshold: float | str | None = None, min_area_px: int = 0,
                 fill_holes: bool | int = False, min_area_km2: float = MIN_AREA_KM2,
                 overwrite: bool = False) -> dict[str, Any]:
    """``glacierkit map baseline``: classify rasters and write georeferenced products.

    Writes ``classes.tif`` (uint8: 0 off-glacier, 1 glacier, 255 nodata; colour table),
    ``outlines.gpkg`` (layer ``outlines``: glacier polygons with ``area_km2``; layer
    ``footprint``: the valid-data area, :func:`glacierkit.io.vector.write_outlines`) and
    ``baseline.json`` (the
    ``info`` of :func:`baseline_classes` plus the glacier area) into ``out_dir``. The three
    files appear together (:class:`~glacierkit.io.products.ProductSet`, report last) or,
    after an error or interrupt, not at all. A scene without any glacier pixel is written
    (an empty outline layer), with a warning that is logged and listed in the report's
    ``warnings``.

    Args:
        paths: Raster files on one grid (checked; align them first otherwise).
        band_names: Per file, one name per band (:data:`BAND_NAMES`; ``"_"`` skips a band),
            or None for that file's band descriptions; None for all files
            (:func:`resolve_band_names`).
        out_dir: Output folder (created if needed).
        method, threshold, min_area_px, fill_holes: As :func:`baseline_classes`
            (``min_area_px`` removes clumps from ``classes.tif`` itself).
        min_area_km2: Drop outline polygons smaller than this from ``outlines.gpkg`` (km²;
            default 0.01 km², the RGI's minimum glacier size, as ``map predict``; 0 keeps
            all). ``classes.tif`` keeps them.
        overwrite: Replace existing products.

    Returns:
        The ``info`` dict with ``glacier_km2`` and the output ``paths``.
    """
    import json
    from pathlib import Path

    from glacierkit.io import check_same_grid, open_raster, polygonize, write_raster
    from glacierkit.io.products import ProductSet
    from glacierkit.io.vector import footprint_frame, write_outlines

    band_names = resolve_band_names(paths, band_names)
    if min_area_km2 < 0:
        raise InputError(f"min_area_km2 must be >= 0 (km²; 0 keeps every polygon); got "
                         f"{min_area_km2}.")
    out = Path(out_dir)
    files = {"classes": "classes.tif", "outlines": "outlines.gpkg", "report": "baseline.json"}
    products = ProductSet(out, list(files.values()), overwrite=overwrite)  # checks up front
    targets = products.targets
    rasters = [open_raster(p) for p in paths]
    check_same_grid({str(p): r.grid for p, r in zip(paths, rasters, strict=True)})
    bands: dict[str, np.ndarray] = {}
    valid = np.ones(rasters[0].grid.shape, dtype=bool)
    for p, r, names in zip(paths, rasters, band_names, strict=True):
        if len(names) != r.count:
            raise InputError(f"{p} has {r.count} band(s) but {len(names)} name(s) were given "
                             f"({list(names)}); name every band, '_' to skip one.")
        for name, arr in zip(names, r.data, strict=True):
            if name == "_":
                continue
            if name in bands:
                raise InputError(f"band name {name!r} given twice.")
            bands[name] = arr
            valid &= np.isfinite(arr)
    classes, info = baseline_classes(bands, method=method, threshold=threshold,
                                     min_area_px=min_area_px, fill_holes=fill_holes,
                                     valid=valid)
    grid = rasters[0].grid
    warnings: list[str] = []
    if info["n_glacier_px"] == 0:
        warnings.append(f"no glacier pixel: no valid pixel has {info['index']} > "
                        f"{info['threshold']:.4g} ({info['threshold_source']} threshold), so "
                        f"outlines.gpkg is empty. Check the band names and order (--bands), "
                        f"the method and the threshold, and that the scene shows glaciers.")
    with products:
        write_raster(products.path(files["classes"]), classes, grid, nodata=NODATA,
                     band_names=["class"],
                     tags={"CLASSES": "0=off_glacier,1=glacier", "BASELINE": json.dumps(info)},
                     colormap={0: (0, 0, 0, 0), 1: (80, 170, 255, 255), NODATA: (0, 0, 0, 0)})
        gdf = polygonize(classes, grid, class_names={1: "glacier"}, ignore=(0,), nodata=NODATA)
        gdf, small = drop_small_outlines(gdf, min_area_km2)
        # The footprint layer records where the scene was classified (outline evaluation
        # clips to it).
        write_outlines(gdf, products.path(files["outlines"]),
                       footprint=footprint_frame(classes != NODATA, grid))
        for w in warnings:
            log.warning("%s", w)
        info = {**info, "glacier_km2": float(gdf["area_km2"].sum()) if len(gdf) else 0.0,
                "n_outlines": len(gdf), **small, "warnings": warnings,
                "paths": {k: str(targets[f]) for k, f in files.items()}}
        products.path(files["report"]).write_text(json.dumps(info, indent=2))
    return info
