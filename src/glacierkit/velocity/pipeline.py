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
from typing import Any, Literal, get_args

import numpy as np

from glacierkit import __version__
from glacierkit.errors import InputError
from glacierkit.io import Grid, Raster, rasterize, read_vector
from glacierkit.io.products import reports_output
from glacierkit.memory import Budget, resolve_budget
from glacierkit.velocity.corrections import (
    ConstantShift,
    CorrectionPipeline,
    ElevationRegression,
    Plane,
    grid_coordinates,
    stable_stats,
)
from glacierkit.velocity.dates import TimeSeparation, pair_time_separation
from glacierkit.velocity.field import (
    VelocityUnits,
    node_grid_georef,
    pixel_to_map,
    velocity,
)
from glacierkit.velocity.filtering import FilterConfig, filter_field, sync_status
from glacierkit.velocity.inputs import (
    ImageKind,
    dem_on_grid,
    prepare_image,
    read_pair,
    stable_mask,
)
from glacierkit.velocity.kernels import METHODS, MatchResult, check_memory, match
from glacierkit.velocity.outputs import (
    check_outputs,
    note_valid_share,
    product_set,
    write_products,
    write_quicklook,
    write_report,
)
from glacierkit.velocity.prefilter import PrefilterName
from glacierkit.velocity.quality import velocity_qa
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
        prefilter: ``"none"``, ``"highpass"`` (default), ``"wallis"`` or ``"orientation"``
            (orientation images are matched by orientation correlation: it implies
            ``method="oc"``). Default chosen by measurement on the real Yahtse pair with rock
            polygons and DEM (stable-ground NMAD dx / dy after corrections, valid share,
            with the EDGE re-search): highpass 0.069 / 0.064 px, 87.4 %; wallis
            0.073 / 0.077 px, 86.4 %; none 0.084 / 0.083 px, 82.4 %; orientation correlation
            0.081 / 0.083 px, 87.2 %.
        levels: Pyramid depth (``None``: automatic).
        min_peak_corr: Peaks below this correlation are LOW_QUALITY.
        min_snr: Peaks with a lower SNR (peak / mean |corr|) are LOW_QUALITY.
        min_peak_ratio: Peaks with a lower 1st/2nd peak ratio are LOW_QUALITY.
        edge_research: Re-search EDGE nodes (peak on the border of the finest search) with
            twice the radius around their neighbours' median offset; the count recovered is
            in the report (``tracking.edge_research``).
    """

    chip_size_px: int = 32
    search_px: int = 32
    step_px: int = 8
    method: Literal["ncc", "oc"] = "ncc"
    prefilter: PrefilterName = "highpass"
    levels: int | None = None
    min_peak_corr: float = 0.0
    min_snr: float = 0.0
    min_peak_ratio: float = 0.0
    edge_research: bool = True


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
               ignore: np.ndarray | None = None, workers: int = 1,
               max_memory: str | int | Budget | None = None) -> TrackedPair:
    """Pre-filter and match a pair already on one grid.

    Args:
        reference: Earlier image ``(1, rows, cols)``.
        secondary: Later image on the same grid.
        params: Matching parameters.
        kind: ``"optical"`` or ``"sar"`` (amplitude; log-transformed, optional Lee filter).
        speckle_filter: Lee-filter SAR amplitude before the log.
        ignore: Boolean ``(rows, cols)`` mask of pixels to ignore (set to nodata in both).
        workers: FFT threads.
        max_memory: Working-memory budget of the matching (see
            :func:`~glacierkit.velocity.kernels.match`; default half the available memory).
    """
    t0 = time.perf_counter()
    ref = reference.data[0].astype(np.float64)
    sec = secondary.data[0].astype(np.float64)
    if ignore is not None:
        ref = np.where(ignore, np.nan, ref)
        sec = np.where(ignore, np.nan, sec)
    # The kernel computes orientation images itself for orientation correlation.
    orient = params.prefilter == "orientation"
    prefilter = "none" if orient else params.prefilter
    method = "oc" if orient else params.method
    a = prepare_image(ref, kind=kind, speckle_filter=speckle_filter, prefilter=prefilter)
    b = prepare_image(sec, kind=kind, speckle_filter=speckle_filter, prefilter=prefilter)
    res = match(a, b, chip_size_px=params.chip_size_px, search_px=params.search_px,
                step_px=params.step_px, method=method, levels=params.levels,
                min_peak_corr=params.min_peak_corr, min_snr=params.min_snr,
                min_peak_ratio=params.min_peak_ratio, edge_research=params.edge_research,
                workers=workers, max_memory=max_memory)
    grid = node_grid_georef(reference.grid, res.rows, res.cols, params.step_px)
    return TrackedPair(res, reference.grid, grid, time.perf_counter() - t0)


def status_counts(status: np.ndarray) -> dict[str, int]:
    """Number of nodes per status name."""
    return {s.name: int((status == s).sum()) for s in Status}


@reports_output("out_dir")
def run_velocity(reference: str | os.PathLike[str], secondary: str | os.PathLike[str],
                 out_dir: str | os.PathLike[str], *, params: TrackingParams | None = None,
                 kind: ImageKind = "optical", speckle_filter: bool = False,
                 dt_days: float | None = None, dates: tuple[str, str] | None = None,
                 ignore: str | os.PathLike[str] | None = None,
                 stable: str | os.PathLike[str] | None = None,
                 outlines: str | os.PathLike[str] | None = None,
                 dem: str | os.PathLike[str] | None = None,
                 filters: FilterConfig | None = FilterConfig(),  # noqa: B008 - frozen config
                 min_stable: int = 100,
                 align: Literal["reference"] | None = None, units: VelocityUnits = "m/yr",
                 band: int = 1, pixel_size_m: float | None = None, quicklook: bool = True,
                 overwrite: bool = False, workers: int = 1,
                 max_memory: str | int | None = None) -> VelocityResult:
    """Track a pair and write velocity, displacement, quality, report and quicklook.

    Args:
        reference: Earlier image (GeoTIFF, or a plain image with ``pixel_size_m``).
        secondary: Later image, on the same grid (else pass ``align="reference"``).
        out_dir: Output folder (created if needed). The products appear all together or
            not at all (:func:`~glacierkit.velocity.outputs.product_set`).
        params: Matching parameters (default :class:`TrackingParams`).
        kind: ``"optical"`` or ``"sar"``.
        speckle_filter: Lee filter for SAR amplitude.
        dt_days: Time separation (days); default from ``dates``, MTL files or file names.
        dates: ``(reference, secondary)`` ISO dates.
        ignore: Polygons of areas to ignore (clouds, water, layover).
        stable: Stable-ground polygons (rock); the corrections are fitted on them.
        outlines: Glacier outlines whose outside is stable ground (instead of ``stable``).
        dem: DEM (any grid; resampled onto the node grid, logged). With it the correction is
            a constant shift + a joint fit of a plane in x, y and a linear elevation term
            ("topography-related offset"); without it, a constant shift + a plane ("global
            deformation"). No correction without ``stable``/``outlines``.
        filters: Outlier filter chain (``None`` to keep raw offsets).
        min_stable: Fewest valid stable nodes for the corrections.
        align: ``"reference"`` to resample the secondary onto the reference grid.
        units: ``"m/yr"`` (default) or ``"m/day"``.
        band: 1-based band to track.
        pixel_size_m: Pixel size of non-georeferenced images.
        quicklook: Write ``quicklook.png``.
        overwrite: Replace existing products.
        workers: FFT threads.
        max_memory: Working-memory budget of the matching, bytes or a size such as ``"4GB"``
            (:func:`glacierkit.memory.parse_memory`): the peak memory of the process while
            tracking stays below its memory when tracking starts plus this budget. Default
            half the available memory (:func:`glacierkit.memory.default_budget`). Work of
            which not even one node fits is refused before tracking
            (:class:`~glacierkit.errors.MemoryBudgetError`).

    Returns:
        A :class:`VelocityResult` with the written paths and the report. The report's
        ``valid_share`` is the share of nodes with a valid velocity; below 1 % a warning is
        logged and added to its ``warnings``.

    Raises:
        InputError: An invalid argument (checked before anything is read or tracked).
        MemoryBudgetError: The tracking cannot fit ``max_memory`` (checked before tracking).
    """
    t0 = time.perf_counter()
    out = Path(out_dir)
    params = params or TrackingParams()
    budget = _check_run_arguments(params, kind=kind, units=units, align=align, band=band,
                                  dt_days=dt_days, min_stable=min_stable, workers=workers,
                                  max_memory=max_memory)
    ts: TimeSeparation = pair_time_separation(reference, secondary, dt_days=dt_days,
                                              dates=dates)
    ref, sec = read_pair(reference, secondary, band=band, align=align,
                         pixel_size_m=pixel_size_m)
    check_outputs(out, overwrite=overwrite)
    _check_tracking_memory(ref.data.shape[-2:], params, budget, workers=workers)
    ignore_mask = None
    if ignore is not None:
        ignore_mask = rasterize(read_vector(ignore), ref.grid, all_touched=True,
                                name=f"ignore polygons {Path(ignore).name}").astype(bool)
    log.info("velocity: tracking %s (%s) on %d×%d px, chips of %d px, search ±%d px, every "
             "%d px", Path(reference).name, kind, ref.grid.width, ref.grid.height,
             params.chip_size_px, params.search_px, params.step_px)
    tracked = track_pair(ref, sec, params, kind=kind, speckle_filter=speckle_filter,
                         ignore=ignore_mask, workers=workers, max_memory=budget)
    res = tracked.result
    log.info("velocity: %d nodes tracked in %.1f s", res.status.size, tracked.seconds)
    dx_px, dy_px, status = res.dx_px, res.dy_px, res.status
    filter_log: list[Any] = []
    if filters is not None:
        fr = filter_field(dx_px, dy_px, status, config=filters, peak_corr=res.peak_corr,
                          snr=res.snr, peak_ratio=res.peak_ratio)
        dx_px, dy_px, status, filter_log = fr.dx, fr.dy, fr.status, fr.log
    corrections_report: dict[str, Any] | None = None
    stable_nodes: np.ndarray | None = None
    if stable is not None or outlines is not None:
        valid = np.isfinite(dx_px) & np.isfinite(dy_px)
        mask, mask_desc = stable_mask(tracked.node_grid, valid, stable=stable,
                                      outlines=outlines, min_nodes=min_stable)
        dx_px, dy_px, corrections_report = _correct(dx_px, dy_px, mask, tracked.node_grid,
                                                    dem=dem, min_stable=min_stable)
        corrections_report["stable_ground"] = mask_desc
        stable_nodes = mask
        corrections_report["stable_after_m_per_unit"] = _stats_in_units(
            dx_px, dy_px, mask, ref.grid, ts.dt_days, units)
        status = sync_status(status, dx_px, dy_px)
    dx_m, dy_m = pixel_to_map(dy_px, dx_px, ref.grid)
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
        "filtering": {"config": filters.to_dict() if filters is not None else None,
                      "log": filter_log},
        "corrections": corrections_report,
        "status_counts": status_counts(status),
    }
    tags = {"glacierkit_version": __version__, "reference": Path(reference).name,
            "secondary": Path(secondary).name, "dt_days": ts.dt_days,
            "chip_size_px": params.chip_size_px, "search_px": params.search_px,
            "step_px": params.step_px, "method": params.method,
            "prefilter": params.prefilter,
            "georeferencing": "node-centre: cell centre = chip centre"}
    note_valid_share(report, v)
    # All products are staged and published together (report last): an interrupt or error
    # leaves none of them.
    with product_set(out, quicklook=quicklook, overwrite=overwrite) as products:
        write_products(products.staging, tracked.node_grid, vx=vx, vy=vy, v=v, dx_m=dx_m,
                       dy_m=dy_m, peak_corr=res.peak_corr, snr=res.snr,
                       peak_ratio=res.peak_ratio, status=status, units=units, tags=tags,
                       overwrite=False)
        if stable_nodes is not None:
            # Accuracy of the final product on stable ground (GLAFT static-area metric, NMAD).
            staged = products.path("velocity.tif")
            qa = velocity_qa(staged, staged, stable=stable_nodes, units=units)
            report["quality"] = {k: v for k, v in qa.items() if not k.startswith("gps")}
        if quicklook:
            title = (f"{Path(reference).stem[:24]} → {Path(secondary).stem[:24]}\n"
                     f"dt {ts.dt_days:.2f} d, chip {params.chip_size_px} px, "
                     f"step {params.step_px} px")
            write_quicklook(products.path("quicklook.png"), ref, tracked.node_grid, vx, vy, v,
                            units=units, title=title, overwrite=False)
        report["seconds"] = round(time.perf_counter() - t0, 2)
        write_report(products.path("report.json"), report, overwrite=False)
    log.info("velocity: done in %.1f s → %s", time.perf_counter() - t0, out)
    return VelocityResult(out, list(products.targets.values()), report)


def _check_run_arguments(params: TrackingParams, *, kind: str, units: str, align: Any,
                         band: Any, dt_days: Any, min_stable: Any, workers: Any,
                         max_memory: str | int | None) -> Budget:
    """Validate :func:`run_velocity`'s arguments before anything is read; return the budget."""
    if not isinstance(params, TrackingParams):
        raise InputError(f"params must be a TrackingParams; got {type(params).__name__}.")
    choices = (("units", units, get_args(VelocityUnits)), ("kind", kind, get_args(ImageKind)),
               ("method", params.method, METHODS),
               ("prefilter", params.prefilter, get_args(PrefilterName)),
               ("align", align, (None, "reference")))
    for name, val, allowed in choices:
        if val not in allowed:
            raise InputError(f"{name} must be one of {allowed}; got {val!r}.")
    for name, val, low in (("chip_size_px", params.chip_size_px, 4),
                           ("search_px", params.search_px, 0),
                           ("step_px", params.step_px, 1), ("band", band, 1),
                           ("min_stable", min_stable, 1), ("workers", workers, 1)):
        if isinstance(val, bool) or not isinstance(val, (int, np.integer)) or val < low:
            raise InputError(f"{name} must be an integer ≥ {low}; got {val!r}.")
    if params.levels is not None and (not isinstance(params.levels, (int, np.integer))
                                      or params.levels < 0):
        raise InputError(f"levels must be None (automatic) or an integer ≥ 0; got "
                         f"{params.levels!r}.")
    if dt_days is not None and not (isinstance(dt_days, (int, float)) and dt_days > 0):
        raise InputError(f"dt_days must be a number of days > 0; got {dt_days!r}.")
    return resolve_budget(max_memory)


def _check_tracking_memory(shape: tuple[int, ...], params: TrackingParams, budget: Budget, *,
                           workers: int) -> None:
    """Refuse, before pre-filtering and tracking, a pair whose matching cannot fit."""
    orient = params.prefilter == "orientation"
    check_memory((int(shape[0]), int(shape[1])), chip_size_px=params.chip_size_px,
                 search_px=params.search_px, method="oc" if orient else params.method,
                 levels=params.levels, edge_research=params.edge_research, workers=workers,
                 max_memory=budget)


def _correct(dx_px: np.ndarray, dy_px: np.ndarray, mask: np.ndarray, grid: Grid, *,
             dem: str | os.PathLike[str] | None,
             min_stable: int) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Fit the correction pipeline on stable nodes (pixel offsets) and apply it everywhere."""
    x, y = grid_coordinates(grid)
    covariates: dict[str, Any] = {"x": x, "y": y}
    report: dict[str, Any] = {}
    if dem is not None:
        elevation, dem_info = dem_on_grid(dem, grid)
        covariates["dem"] = elevation
        report["dem"] = dem_info
        pipe: CorrectionPipeline = (ConstantShift(min_stable=min_stable)
                                    + ElevationRegression(xy_order=1, min_stable=min_stable))
    else:
        pipe = ConstantShift(min_stable=min_stable) + Plane(min_stable=min_stable)
    pipe.fit(dx_px, dy_px, mask, units="px", xy_units="m", **covariates)
    cdx, cdy = pipe.apply(dx_px, dy_px, **covariates)
    report.update(pipe.report())
    return cdx, cdy, report


def _stats_in_units(dx_px: np.ndarray, dy_px: np.ndarray, mask: np.ndarray, image_grid: Grid,
                    dt_days: float, units: VelocityUnits) -> dict[str, Any]:
    """Stable-ground statistics of the corrected field as velocity (east, north)."""
    dx_m, dy_m = pixel_to_map(dy_px, dx_px, image_grid)
    vx, vy, _ = velocity(dx_m, dy_m, dt_days, units=units)
    return stable_stats(vx, vy, mask, units=units)
