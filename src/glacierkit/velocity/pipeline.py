"""The velocity pipeline: image pair → offsets → filtered, corrected velocity products.

:func:`track_pair` is the array-level core (pre-filter, match, node grid). :func:`run_velocity`
adds files: it reads the pair, checks grids, finds dt, tracks, converts pixel offsets to map
displacement, and writes the products of :mod:`glacierkit.velocity.outputs`. Filtering of
high-frequency noise and the stable-ground corrections plug in between matching and writing.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from glacierkit import __version__
from glacierkit.io import Grid, Raster, rasterize, read_vector
from glacierkit.velocity.dates import TimeSeparation, pair_time_separation
from glacierkit.velocity.field import (
    VelocityUnits,
    node_grid_georef,
    pixel_to_map,
    velocity,
)
from glacierkit.velocity.inputs import ImageKind, prepare_image, read_pair
from glacierkit.velocity.kernels import MatchResult, match
from glacierkit.velocity.outputs import (
    check_outputs,
    write_products,
    write_quicklook,
    write_report,
)
from glacierkit.velocity.prefilter import PrefilterName
from glacierkit.velocity.status import Status

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrackingParams:
    """Matching parameters (pixels of the input images).

    Attributes:
        chip_size_px: Chip (template) size.
        search_px: Largest offset searched in each direction (coarse-to-fine finds larger).
        step_px: Node spacing; the output grid has ``step_px`` × the image pixel size.
        method: ``"ncc"`` or ``"oc"`` (orientation correlation).
        prefilter: ``"none"``, ``"highpass"``, ``"wallis"`` or ``"orientation"``.
        levels: Pyramid depth (``None``: automatic).
        min_peak_corr: Peaks below this correlation are LOW_QUALITY.
        min_snr: Peaks with a lower SNR (peak / mean |corr|) are LOW_QUALITY.
        min_peak_ratio: Peaks with a lower 1st/2nd peak ratio are LOW_QUALITY.
    """

    chip_size_px: int = 32
    search_px: int = 32
    step_px: int = 8
    method: Literal["ncc", "oc"] = "ncc"
    prefilter: PrefilterName = "wallis"
    levels: int | None = None
    min_peak_corr: float = 0.0
    min_snr: float = 0.0
    min_peak_ratio: float = 0.0


@dataclass(frozen=True)
class TrackedPair:
    """Offsets of a pair on its node grid."""

    result: MatchResult
    image_grid: Grid
    node_grid: Grid
    seconds: float


@dataclass
class VelocityResult:
    """What :func:`run_velocity` produced."""

    out_dir: Path
    outputs: list[Path]
    report: dict[str, Any] = field(default_factory=dict)


def track_pair(reference: Raster, secondary: Raster, params: TrackingParams, *,
               kind: ImageKind = "optical", speckle_filter: bool = False,
               ignore: np.ndarray | None = None, workers: int = 1) -> TrackedPair:
    """Pre-filter and match a pair already on one grid.

    Args:
        reference: Earlier image ``(1, rows, cols)``.
        secondary: Later image on the same grid.
        params: Matching parameters.
        kind: ``"optical"`` or ``"sar"`` (amplitude; log-transformed, optional Lee filter).
        speckle_filter: Lee-filter SAR amplitude before the log.
        ignore: Boolean ``(rows, cols)`` mask of pixels to ignore (set to nodata in both).
        workers: FFT threads.
    """
    t0 = time.perf_counter()
    ref = reference.data[0].astype(np.float64)
    sec = secondary.data[0].astype(np.float64)
    if ignore is not None:
        ref = np.where(ignore, np.nan, ref)
        sec = np.where(ignore, np.nan, sec)
    a = prepare_image(ref, kind=kind, speckle_filter=speckle_filter, prefilter=params.prefilter)
    b = prepare_image(sec, kind=kind, speckle_filter=speckle_filter, prefilter=params.prefilter)
    res = match(a, b, chip_size_px=params.chip_size_px, search_px=params.search_px,
                step_px=params.step_px, method=params.method, levels=params.levels,
                min_peak_corr=params.min_peak_corr, min_snr=params.min_snr,
                min_peak_ratio=params.min_peak_ratio, workers=workers)
    grid = node_grid_georef(reference.grid, res.rows, res.cols, params.step_px)
    return TrackedPair(res, reference.grid, grid, time.perf_counter() - t0)


def status_counts(status: np.ndarray) -> dict[str, int]:
    """Number of nodes per status name."""
    return {s.name: int((status == s).sum()) for s in Status}


def run_velocity(reference: str | os.PathLike[str], secondary: str | os.PathLike[str],
                 out_dir: str | os.PathLike[str], *, params: TrackingParams | None = None,
                 kind: ImageKind = "optical", speckle_filter: bool = False,
                 dt_days: float | None = None, dates: tuple[str, str] | None = None,
                 ignore: str | os.PathLike[str] | None = None,
                 align: Literal["reference"] | None = None, units: VelocityUnits = "m/yr",
                 band: int = 1, pixel_size_m: float | None = None, quicklook: bool = True,
                 overwrite: bool = False, workers: int = 1) -> VelocityResult:
    """Track a pair and write velocity, displacement, quality, report and quicklook.

    Args:
        reference: Earlier image (GeoTIFF, or a plain image with ``pixel_size_m``).
        secondary: Later image, on the same grid (else pass ``align="reference"``).
        out_dir: Output folder (created).
        params: Matching parameters (default :class:`TrackingParams`).
        kind: ``"optical"`` or ``"sar"``.
        speckle_filter: Lee filter for SAR amplitude.
        dt_days: Time separation (days); default from ``dates``, MTL files or file names.
        dates: ``(reference, secondary)`` ISO dates.
        ignore: Polygons of areas to ignore (clouds, water, layover).
        align: ``"reference"`` to resample the secondary onto the reference grid.
        units: ``"m/yr"`` (default) or ``"m/day"``.
        band: 1-based band to track.
        pixel_size_m: Pixel size of non-georeferenced images.
        quicklook: Write ``quicklook.png``.
        overwrite: Replace existing products.
        workers: FFT threads.

    Returns:
        A :class:`VelocityResult` with the written paths and the report.
    """
    t0 = time.perf_counter()
    out = Path(out_dir)
    params = params or TrackingParams()
    ts: TimeSeparation = pair_time_separation(reference, secondary, dt_days=dt_days,
                                              dates=dates)
    ref, sec = read_pair(reference, secondary, band=band, align=align,
                         pixel_size_m=pixel_size_m)
    check_outputs(out, overwrite=overwrite)
    ignore_mask = None
    if ignore is not None:
        ignore_mask = rasterize(read_vector(ignore), ref.grid, all_touched=True,
                                name=f"ignore polygons {Path(ignore).name}").astype(bool)
    tracked = track_pair(ref, sec, params, kind=kind, speckle_filter=speckle_filter,
                         ignore=ignore_mask, workers=workers)
    res = tracked.result
    dx_m, dy_m = pixel_to_map(res.dy_px, res.dx_px, ref.grid)
    vx, vy, v = velocity(dx_m, dy_m, ts.dt_days, units=units)
    report: dict[str, Any] = {
        "glacierkit_version": __version__,
        "inputs": {"reference": str(reference), "secondary": str(secondary),
                   "ignore": str(ignore) if ignore else None, "kind": kind,
                   "speckle_filter": speckle_filter, "band": band,
                   "image_grid": ref.grid.describe()},
        "time": ts.as_dict(),
        "tracking": {**asdict(params), **res.settings, "seconds": round(tracked.seconds, 2)},
        "node_grid": {"grid": tracked.node_grid.describe(),
                      "georeferencing": "cell centres = chip centres (node-centre)"},
        "units": {"velocity": units, "displacement": "m"},
        "status_counts": status_counts(res.status),
    }
    tags = {"glacierkit_version": __version__, "reference": Path(reference).name,
            "secondary": Path(secondary).name, "dt_days": ts.dt_days,
            "chip_size_px": params.chip_size_px, "search_px": params.search_px,
            "step_px": params.step_px, "method": params.method,
            "prefilter": params.prefilter,
            "georeferencing": "node-centre: cell centre = chip centre"}
    out.mkdir(parents=True, exist_ok=True)
    outputs = write_products(out, tracked.node_grid, vx=vx, vy=vy, v=v, dx_m=dx_m, dy_m=dy_m,
                             peak_corr=res.peak_corr, snr=res.snr, peak_ratio=res.peak_ratio,
                             status=res.status, units=units, tags=tags, overwrite=overwrite)
    if quicklook:
        title = (f"{Path(reference).stem[:24]} → {Path(secondary).stem[:24]}\n"
                 f"dt {ts.dt_days:.2f} d, chip {params.chip_size_px} px, "
                 f"step {params.step_px} px")
        outputs.append(write_quicklook(out / "quicklook.png", ref, tracked.node_grid, vx, vy, v,
                                       units=units, title=title, overwrite=overwrite))
    report["seconds"] = round(time.perf_counter() - t0, 2)
    outputs.append(write_report(out / "report.json", report, overwrite=overwrite))
    return VelocityResult(out, outputs, report)
