"""The classic multitemporal SAR wet-snow / glacier baseline of Nagler and Rott (2000).

Nagler, T. and Rott, H. (2000): Retrieval of wet snow by means of multitemporal SAR data.
IEEE Transactions on Geoscience and Remote Sensing, 38(2), 754–765.

Liquid water in snow absorbs C-band microwaves: the backscatter of wet snow (and of a melting
glacier surface) drops by several dB compared with the same place when it is dry (winter) or
snow-free. The method divides a melt-season backscatter by a reference backscatter of the
same viewing geometry, i.e. takes the difference in dB, and calls a pixel wet snow where the
ratio is below a threshold, −3 dB by default (Nagler and Rott's value).

Here the melt-season and the reference backscatter are the means in dB over all dates of the
stack in two seasons (any year): by default July–August (melt) and January–February
(reference), which fits the northern hemisphere and the monsoon-season melt of High Mountain
Asia. Users set both (southern hemisphere: ``melt=(1, 2), reference=(7, 8)``). Class 1
("glacier": wet snow or melting ice) is where ``ratio_db < threshold_db``, class 0 elsewhere,
255 where a window has no valid observation of the pixel. This is a baseline to beat:
wet seasonal snow off the glaciers is class 1 as well, debris-covered ice shows little change
and is mostly class 0, layover/shadow are nodata, and the ratio only makes sense within one
orbit pass (one viewing geometry), which :func:`run_sar_ratio` enforces. Strictly it compares
one relative orbit with itself; file names of ASF HyP3 products do not carry the relative
orbit, and acquisitions of one pass whose times of day differ by minutes (e.g. 12:13 and
12:22 UTC) come from neighbouring tracks: subset such a stack by time of day when it matters.

Torch-free.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rasterio.windows import Window

from glacierkit.errors import InputError
from glacierkit.io.products import reports_output
from glacierkit.io.vector import MIN_AREA_KM2
from glacierkit.series.select import Season, _as_dates, in_season, parse_season
from glacierkit.series.stack import SeriesStack

__all__ = [
    "DEFAULT_MELT",
    "DEFAULT_REFERENCE",
    "DEFAULT_THRESHOLD_DB",
    "NODATA",
    "SarRatioResult",
    "run_sar_ratio",
    "sar_ratio",
]

log = logging.getLogger(__name__)

DEFAULT_MELT: Season = (7, 8)
"""Melt season: July–August (northern hemisphere)."""

DEFAULT_REFERENCE: Season = (1, 2)
"""Reference (dry-snow / winter) season: January–February (northern hemisphere)."""

DEFAULT_THRESHOLD_DB = -3.0
"""Wet snow where melt − reference backscatter is below this (dB; Nagler and Rott 2000)."""

NODATA = 255
"""Class value of pixels without an observation in one of the seasons."""

COLORMAP = {0: (0, 0, 0, 0), 1: (80, 170, 255, 255), NODATA: (0, 0, 0, 0)}
"""Colour table of ``classes.tif`` (the same as ``glacierkit map baseline``)."""


@dataclass(frozen=True)
class SarRatioResult:
    """What :func:`sar_ratio` found.

    Attributes:
        ratio_db: Melt-season minus reference backscatter (dB), float32 (H, W); NaN where a
            season has no valid observation of the pixel.
        classes: uint8 (H, W): 1 wet snow / melting glacier (``ratio_db < threshold_db``),
            0 otherwise, 255 nodata.
        melt_index: Positions of the melt-season dates in the input, int64 (Tm,).
        reference_index: Positions of the reference dates in the input, int64 (Tr,).
        threshold_db: The threshold used (dB).
    """

    ratio_db: np.ndarray
    classes: np.ndarray
    melt_index: np.ndarray
    reference_index: np.ndarray
    threshold_db: float


def _windows(dates: np.ndarray, melt: Season, reference: Season
             ) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the melt and reference dates; errors for empty or overlapping seasons."""
    parse_season(melt, what="melt")
    parse_season(reference, what="reference")
    m = in_season(dates, melt)
    r = in_season(dates, reference)
    if (m & r).any():
        raise InputError(f"the melt season {tuple(melt)} and the reference season "
                         f"{tuple(reference)} overlap; a date cannot be both.")
    months = sorted({int(str(d)[5:7]) for d in dates.astype("datetime64[D]")})
    for name, mask, season in (("melt", m, melt), ("reference", r, reference)):
        if not mask.any():
            raise InputError(
                f"no date of the series falls in the {name} season {tuple(season)} "
                f"(the {dates.size} dates are in months {months}).",
                hint=f"Set {name}=(start, end) (months or 'MM-DD') to a season the series "
                     f"covers, or add acquisitions.")
    return np.flatnonzero(m).astype(np.int64), np.flatnonzero(r).astype(np.int64)


def _nanmean(db: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Mean over the dates ``index`` of ``db`` (T, H, W), ignoring NaN; NaN without data."""
    total = np.zeros(db.shape[1:], dtype=np.float64)
    count = np.zeros(db.shape[1:], dtype=np.int32)
    for i in index:
        x = db[i]
        ok = np.isfinite(x)
        total += np.where(ok, x, 0.0)
        count += ok
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = total / count
    return mean.astype(np.float32)


def _classify(ratio: np.ndarray, threshold_db: float) -> np.ndarray:
    classes = np.full(ratio.shape, NODATA, dtype=np.uint8)
    ok = np.isfinite(ratio)
    classes[ok] = (ratio[ok] < threshold_db).astype(np.uint8)
    return classes


def sar_ratio(db: np.ndarray, dates: Sequence[object] | np.ndarray, *,
              melt: Season = DEFAULT_MELT, reference: Season = DEFAULT_REFERENCE,
              threshold_db: float = DEFAULT_THRESHOLD_DB) -> SarRatioResult:
    """Nagler–Rott wet-snow classes from a backscatter time series in dB.

    Args:
        db: Backscatter in dB, float (T, H, W), NaN = nodata, of one orbit pass (one viewing
            geometry; use :func:`glacierkit.series.to_db` for linear values).
        dates: Acquisition times, shape (T,).
        melt: Melt season ``(start, end)``: months or ``"MM-DD"``, inclusive, any year (see
            :func:`glacierkit.series.select.parse_season`). Default July–August.
        reference: Reference (dry/winter) season, same form. Default January–February.
        threshold_db: Class 1 where ``melt − reference < threshold_db`` (dB; default −3).

    Returns:
        :class:`SarRatioResult`: each season's backscatter is the NaN-ignoring mean in dB of
        its dates (a pixel without a valid value in a season is nodata, 255).

    Raises:
        InputError: ``db`` is not 3-D, ``dates`` does not have T entries, a season has no
            date, the seasons overlap, or the threshold is not a finite number.
    """
    a = np.asarray(db)
    if a.ndim != 3:
        raise InputError(f"db must be (T, H, W) backscatter in dB; got shape {a.shape} (for a "
                         f"(T, B, H, W) read pick one band: a[:, 0]).")
    t = _as_dates(dates)
    if t.shape != (a.shape[0],):
        raise InputError(f"dates has {t.size} entries but db has {a.shape[0]} dates (axis 0).")
    if not np.isfinite(threshold_db):
        raise InputError(f"threshold_db must be a finite number of dB; got {threshold_db!r}.")
    mi, ri = _windows(t, melt, reference)
    ratio = _nanmean(a, mi)
    ratio -= _nanmean(a, ri)
    return SarRatioResult(ratio_db=ratio, classes=_classify(ratio, float(threshold_db)),
                          melt_index=mi, reference_index=ri, threshold_db=float(threshold_db))


@reports_output("out_dir")
def run_sar_ratio(stack: SeriesStack, out_dir: str | os.PathLike[str], *, band: int = 1,
                  melt: Season = DEFAULT_MELT, reference: Season = DEFAULT_REFERENCE,
                  threshold_db: float = DEFAULT_THRESHOLD_DB,
                  min_area_km2: float = MIN_AREA_KM2, max_memory: str | int = "256MiB",
                  overwrite: bool = False) -> dict[str, Any]:
    """Run :func:`sar_ratio` on a stack, block by block, and write georeferenced products.

    Writes into ``out_dir``, all together or (after an error or interrupt) none
    (:class:`~glacierkit.io.products.ProductSet`):

    * ``classes.tif``: uint8, 0 no wet snow, 1 glacier (wet snow / melting ice), 255 nodata;
      colour table and ``CLASSES`` tag as ``glacierkit map baseline``.
    * ``ratio_db.tif``: float32 melt − reference backscatter (dB), NaN nodata.
    * ``outlines.gpkg``: class-1 polygons with ``area_km2`` (layer ``outlines``, polygons
      below ``min_area_km2`` dropped) and the valid-data ``footprint`` layer.
    * ``sar_ratio.json``: the dates used, seasons, threshold, areas (written last).

    Memory: the stack is read in blocks of full rows, only the dates of the two seasons and
    one band, with about 8·(Tm + Tr)·W bytes per row (a read and its dB copy) kept within
    ``max_memory``; the outputs take 5 bytes per pixel (float32 ratio + uint8 classes) and
    two float64/int32 accumulators per block row.

    Args:
        stack: A single-pass series (:func:`glacierkit.series.open_series`).
        out_dir: Output folder (created if needed).
        band: 1-based band of the files to use (e.g. VV).
        melt, reference, threshold_db: As :func:`sar_ratio`.
        min_area_km2: Smallest outline polygon kept in ``outlines.gpkg`` (km²; 0 keeps all).
        max_memory: Memory for one block of reads (bytes or ``"256MiB"``-style).
        overwrite: Replace existing products.

    Returns:
        The report (as written to ``sar_ratio.json``) with the output ``paths``.

    Raises:
        InputError: the stack mixes ascending and descending dates, a bad band, or as
            :func:`sar_ratio`.
        OutputExistsError: a product exists and ``overwrite`` is False.
    """
    from glacierkit.io import polygonize, write_raster
    from glacierkit.io.products import ProductSet
    from glacierkit.io.vector import drop_small_outlines, footprint_frame, write_outlines
    from glacierkit.memory import format_bytes, items_per_batch, resolve_budget

    known = sorted({d for d in stack.directions if d is not None})
    if len(known) > 1:
        raise InputError(
            "the stack mixes ascending and descending dates; the backscatter ratio compares "
            "one viewing geometry with itself.",
            hint="Open one pass: open_series(..., direction='ascending') or 'descending'.")
    if not 1 <= int(band) <= stack.bands:
        raise InputError(f"band={band}: the stack has {stack.bands} band(s) per file "
                         f"(1-based).")
    if min_area_km2 < 0:
        raise InputError(f"min_area_km2 must be >= 0 (km²; 0 keeps every polygon); got "
                         f"{min_area_km2}.")
    if not np.isfinite(threshold_db):
        raise InputError(f"threshold_db must be a finite number of dB; got {threshold_db!r}.")
    out = Path(out_dir)
    files = {"classes": "classes.tif", "ratio": "ratio_db.tif", "outlines": "outlines.gpkg",
             "report": "sar_ratio.json"}
    products = ProductSet(out, list(files.values()), overwrite=overwrite)  # checks up front
    mi, ri = _windows(stack.dates, melt, reference)
    sub = stack.subset(np.concatenate([mi, ri]))
    # Positions within ``sub`` (which keeps time order).
    sub_dates = sub.dates
    sub_mi, sub_ri = _windows(sub_dates, melt, reference)

    grid = stack.grid
    h, w = grid.shape
    budget = resolve_budget(max_memory)
    rows = items_per_batch(8.0 * sub.n_dates * w, budget, limit=h,
                           what=f"one row of {sub.n_dates} dates × {w} px",
                           fix="raise max_memory.")
    ratio = np.empty((h, w), dtype=np.float32)
    for r0 in range(0, h, rows):
        win = Window(0, r0, w, min(rows, h - r0))
        block = sub.to_db(sub.read(win, bands=[int(band)])[:, 0])
        part = _nanmean(block, sub_mi)
        part -= _nanmean(block, sub_ri)
        ratio[r0:r0 + int(win.height)] = part
        del block
    classes = _classify(ratio, float(threshold_db))
    log.info("sar ratio: %d melt and %d reference date(s), %d block(s) of %d row(s) (%s)",
             mi.size, ri.size, -(-h // rows), rows, format_bytes(budget.bytes))

    valid = classes != NODATA
    n_valid = int(valid.sum())
    n_wet = int((classes == 1).sum())
    warnings: list[str] = []
    if n_valid == 0:
        warnings.append("no pixel has a valid observation in both seasons: every pixel is "
                        "nodata. Check the seasons and the stack's nodata.")
    elif n_wet == 0:
        warnings.append(f"no pixel drops below {threshold_db:g} dB from the reference to the "
                        f"melt season, so outlines.gpkg is empty. Check the seasons (melt "
                        f"{tuple(melt)}, reference {tuple(reference)}) and the pass.")
    info: dict[str, Any] = {
        "method": "nagler_rott_2000_sar_ratio",
        "scale": stack.scale,
        "band": int(band),
        "melt_season": list(melt),
        "reference_season": list(reference),
        "threshold_db": float(threshold_db),
        "melt_dates": [str(d) for d in stack.dates[mi]],
        "reference_dates": [str(d) for d in stack.dates[ri]],
        "passes": sorted({str(d) for d in sub.directions}),
        "n_valid_px": n_valid,
        "n_glacier_px": n_wet,
        "glacier_fraction": n_wet / n_valid if n_valid else 0.0,
        "median_ratio_db": float(np.nanmedian(ratio)) if n_valid else None,
    }
    with products:
        write_raster(products.path(files["classes"]), classes, grid, nodata=NODATA,
                     band_names=["class"],
                     tags={"CLASSES": "0=off_glacier,1=glacier",
                           "SAR_RATIO": json.dumps({k: info[k] for k in (
                               "method", "melt_season", "reference_season", "threshold_db")})},
                     colormap=COLORMAP)
        write_raster(products.path(files["ratio"]), ratio, grid, nodata=float("nan"),
                     band_names=["ratio_db"], units="dB")
        gdf = polygonize(classes, grid, class_names={1: "glacier"}, ignore=(0,),
                         nodata=NODATA)
        gdf, small = drop_small_outlines(gdf, min_area_km2)
        write_outlines(gdf, products.path(files["outlines"]),
                       footprint=footprint_frame(valid, grid))
        for msg in warnings:
            log.warning("%s", msg)
        info = {**info, "glacier_km2": float(gdf["area_km2"].sum()) if len(gdf) else 0.0,
                "n_outlines": len(gdf), **small, "warnings": warnings,
                "paths": {k: str(products.targets[f]) for k, f in files.items()}}
        products.path(files["report"]).write_text(json.dumps(info, indent=2))
    return info
